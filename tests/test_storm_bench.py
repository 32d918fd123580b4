"""./dev bench storm measures the bot it means to: a small storm through the benchmark's own
code (the bot's process, the emulator's flood control on, the bench's settings) draws no 429.

The test harness starts its bot process without pacing; a storm bench that inherited that
measured an unpaced bot (bursts of three, then a 429 for every next card) as if the pacer
had failed.
"""

from __future__ import annotations

from benchmarks.storm import Results, storm


async def test_the_storm_bench_runs_a_paced_bot_and_draws_no_429() -> None:
    out = Results()
    await storm(groups=8, per_group=2, speed=20, cap=60, out=out)
    rows = {r.measure: r for r in out.rows}
    assert rows["b) 429 answers"].value == "0", rows["b) 429 answers"].note
    assert rows["b) every incident visible after"].met, rows["b) every incident visible after"]
