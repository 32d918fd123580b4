"""aiohttp front end: Bot API routes, a JSON control API and a browser page."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox.emulator import ApiError, Emulator, FloodLimits
from sandbox.panel import PanelError, SamplePanel

EMULATOR_KEY = web.AppKey("emulator", Emulator)
PANEL_KEY = web.AppKey("panel", SamplePanel)
_PAGE = Path(__file__).with_name("page.html")
_FAVICON = Path(__file__).with_name("favicon.svg")

# Parameters that are always strings: never JSON/int/bool-decode them.
_STRING_KEYS = {
    "text",
    "parse_mode",
    "callback_query_id",
    "url",
    "secret_token",
    "name",
    "icon_custom_emoji_id",
    "description",
    "language_code",
    "inline_message_id",
    "ip_address",
    "short_description",
    "caption",
    "business_connection_id",
}
_INT_KEYS = {
    "chat_id",
    "message_id",
    "message_thread_id",
    "user_id",
    "offset",
    "limit",
    "timeout",
    "reply_to_message_id",
    "cache_time",
    "icon_color",
    "max_connections",
    "from_chat_id",
}


def decode_param(key: str, value: Any) -> Any:
    """Turn a form/query string into what the Bot API server would parse."""
    if not isinstance(value, str) or key in _STRING_KEYS:
        return value
    stripped = value.strip()
    if key in _INT_KEYS:
        try:
            return int(stripped)
        except ValueError:
            return value  # e.g. chat_id="@channel"
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except ValueError:
            return value
    if stripped in ("true", "false"):
        return stripped == "true"
    if stripped.lstrip("-").isdigit():
        return int(stripped)
    return value


async def read_params(request: web.Request) -> dict:
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, "Bad Request: can't parse JSON object") from None
            if not isinstance(body, dict):
                raise ApiError(400, "Bad Request: can't parse JSON object")
            params.update(body)
        else:
            form = await request.post()
            for key, value in form.items():
                # uploaded files are not emulated; keep only text fields
                if isinstance(value, str):
                    params[key] = value
    return {k: decode_param(k, v) for k, v in params.items()}


def _error(exc: ApiError) -> web.Response:
    body: dict[str, Any] = {
        "ok": False,
        "error_code": exc.error_code,
        "description": exc.description,
    }
    if exc.parameters:
        body["parameters"] = exc.parameters
    return web.json_response(body, status=exc.error_code)


async def bot_api(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR_KEY]
    if request.match_info["token"] != emulator.token:
        return _error(ApiError(401, "Unauthorized"))
    try:
        params = await read_params(request)
        result = await emulator.call(request.match_info["method"], params)
    except ApiError as exc:
        return _error(exc)
    return web.json_response({"ok": True, "result": result})


# ----------------------------------------------------------------- control API


def _control(handler: Any) -> Any:
    """Wrap a control handler: JSON out, ValueError/KeyError -> 400/404 JSON."""

    async def wrapped(request: web.Request) -> web.Response:
        try:
            raw = await request.text() if request.can_read_body else ""
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            result = await handler(request.app[EMULATOR_KEY], request, body or {})
        except KeyError as exc:
            return web.json_response({"error": str(exc.args[0] if exc.args else exc)}, status=404)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(result)

    return wrapped


async def _chats_list(emu: Emulator, request: web.Request, body: dict) -> Any:
    return emu.chats()


async def _chats_add(emu: Emulator, request: web.Request, body: dict) -> Any:
    return emu.add_chat(**body)


async def _send(emu: Emulator, request: web.Request, body: dict) -> Any:
    return emu.user_sends(**body)


async def _press(emu: Emulator, request: web.Request, body: dict) -> Any:
    return {"query_id": emu.press_button(**body)}


async def _messages(emu: Emulator, request: web.Request, body: dict) -> Any:
    thread = request.query.get("thread_id")
    chat_id = int(request.match_info["chat_id"])
    return emu.messages(chat_id, int(thread) if thread else None)


async def _calls(emu: Emulator, request: web.Request, body: dict) -> Any:
    return emu.calls(request.query.get("method") or None)


async def _faults(emu: Emulator, request: web.Request, body: dict) -> Any:
    emu.inject_fault(**body)
    return {"ok": True}


async def _faults_clear(emu: Emulator, request: web.Request, body: dict) -> Any:
    return {"cleared": emu.clear_faults(request.query.get("method") or None)}


async def _callbacks(emu: Emulator, request: web.Request, body: dict) -> Any:
    return emu.callback_stats()


async def _callback_answer(emu: Emulator, request: web.Request, body: dict) -> Any:
    return emu.callback_answer(request.match_info["query_id"])


async def _migrate(emu: Emulator, request: web.Request, body: dict) -> Any:
    return emu.migrate_chat(int(body["old_id"]), int(body["new_id"]))


async def _reset(emu: Emulator, request: web.Request, body: dict) -> Any:
    emu.reset()
    return {"ok": True}


async def _topics(emu: Emulator, request: web.Request, body: dict) -> Any:
    return emu.topics(int(request.match_info["chat_id"]))


async def _settings(emu: Emulator, request: web.Request, body: dict) -> Any:
    if "rate_limits" in body:
        # flood_speed divides every period of Telegram's limits (same shape, faster).
        speed = body.get("flood_speed")
        emu.set_rate_limits(bool(body["rate_limits"]),
                            FloodLimits().scaled(float(speed)) if speed else None)
    if "callback_answer_window" in body:
        emu.callback_answer_window = float(body["callback_answer_window"])
    return {"rate_limits": emu.rate_limits, "callback_answer_window": emu.callback_answer_window}


async def _page(request: web.Request) -> web.Response:
    try:
        html = _PAGE.read_text(encoding="utf-8")
    except FileNotFoundError:  # page.html not packaged: the API still works
        html = "<!doctype html><title>sandbox</title><p>page.html missing"
    return web.Response(text=html, content_type="text/html")


async def _favicon(request: web.Request) -> web.Response:
    return web.Response(body=_FAVICON.read_bytes(), content_type="image/svg+xml",
                        headers={"Cache-Control": "max-age=86400"})


async def _panel(request: web.Request) -> web.Response:
    return web.json_response(request.app[PANEL_KEY].describe())


async def _fire(request: web.Request) -> web.Response:
    try:
        result = await request.app[PANEL_KEY].fire(request.match_info["name"])
    except PanelError as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    return web.json_response(result)


def build_app(emulator: Emulator, panel: SamplePanel | None = None) -> web.Application:
    app = web.Application()
    app[EMULATOR_KEY] = emulator
    app[PANEL_KEY] = panel or SamplePanel()
    app.router.add_route("GET", "/bot{token}/{method}", bot_api)
    app.router.add_route("POST", "/bot{token}/{method}", bot_api)
    c = "/_control"
    app.router.add_get(f"{c}/chats", _control(_chats_list))
    app.router.add_post(f"{c}/chats", _control(_chats_add))
    app.router.add_post(f"{c}/send", _control(_send))
    app.router.add_post(f"{c}/press", _control(_press))
    app.router.add_get(f"{c}/chats/{{chat_id}}/messages", _control(_messages))
    app.router.add_get(f"{c}/calls", _control(_calls))
    app.router.add_post(f"{c}/faults", _control(_faults))
    app.router.add_delete(f"{c}/faults", _control(_faults_clear))
    app.router.add_get(f"{c}/callbacks", _control(_callbacks))
    app.router.add_get(f"{c}/callbacks/{{query_id}}", _control(_callback_answer))
    app.router.add_post(f"{c}/migrate", _control(_migrate))
    app.router.add_post(f"{c}/reset", _control(_reset))
    app.router.add_get(f"{c}/topics/{{chat_id}}", _control(_topics))
    app.router.add_post(f"{c}/settings", _control(_settings))
    app.router.add_get("/_sandbox/panel", _panel)
    app.router.add_post("/_sandbox/samples/{name}", _fire)
    app.router.add_get("/favicon.svg", _favicon)
    app.router.add_get("/", _page)
    return app


# -------------------------------------------------------------------- running


@dataclass
class RunningEmulator:
    emulator: Emulator
    runner: web.AppRunner
    base_url: str
    port: int

    async def close(self) -> None:
        # release long polls first so the server shuts down at once
        await self.emulator.aclose()
        await self.runner.cleanup()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def start_emulator(
    host: str = "127.0.0.1", port: int = 0, panel: SamplePanel | None = None,
    **emulator_kwargs: Any,
) -> RunningEmulator:
    """Serve a new Emulator on loopback; ``port=0`` picks a free port."""
    if not _is_loopback(host):
        raise ValueError(f"the sandbox listens on loopback only, not {host!r}")
    emulator = Emulator(**emulator_kwargs)
    runner = web.AppRunner(build_app(emulator, panel), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    url_host = f"[{host}]" if ":" in host else host
    return RunningEmulator(emulator, runner, f"http://{url_host}:{bound_port}", bound_port)
