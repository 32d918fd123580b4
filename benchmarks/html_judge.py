"""The emulator's HTML judge: TDLib's parser against the hand-written fallback.

    ./dev bench html_judge
Both judge the same texts in the same run (a card-sized text, a 3,000-emoji note, a
CJK text, a tag-heavy text); the ratio TDLib/fallback of the medians is what to compare.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from sandbox import judge, tdlib
from sandbox.telegram_html import ParsedText, parse_html

TEXTS = {
    "card": (
        "🔴 <b>CRITICAL</b> · <b>KubePodCrashLooping</b> — cart\n"
        "<code>INC-7K3F9Q</code> · shop · 3 alerts firing · since 2026-11-27 13:07 UTC\n"
        "Pod shop/cart-5d8f is crash looping &amp; restarting &lt;fast&gt;\n"
        "<blockquote expandable>" + "description &quot;quoted&quot; " * 40 + "</blockquote>\n"
        "<code>kubectl rollout restart deployment/cart --namespace shop</code>\n"
        "⏳ Awaiting approval · 1/2 (alice)"
    ),
    "emoji_note": "✅ Done\n<pre>" + "😀" * 2000 + "</pre>",
    "cjk": "<b>中文</b>" + "輸出內容" * 900,
    "tags": "<b><i>x</i></b> &amp; " * 400,
}
ROUNDS = 300


def median_us(fn: Callable[[str], object], text: str) -> float:
    samples = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        fn(text)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def by_tdlib(text: str) -> ParsedText:
    return judge.fix_text(ParsedText(*tdlib.parse_html(text)))


def by_fallback(text: str) -> ParsedText:
    return judge.fix_text(parse_html(text))


def main() -> None:
    if not tdlib.AVAILABLE:
        raise SystemExit("tdjson is not installed: nothing to compare")
    for name, text in TEXTS.items():
        td, fb = median_us(by_tdlib, text), median_us(by_fallback, text)
        print(f"{name}: {len(text)} chars  tdlib median={td:.0f} us  "
              f"fallback median={fb:.0f} us  ratio tdlib/fallback={td / fb:.2f}")


if __name__ == "__main__":
    main()
