"""The Alertmanager v2 silences client against a local stand-in of the API."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
from am_standin import StandIn

from bot.models import Matcher
from bot.silences.alertmanager import AlertmanagerSilences, AlertmanagerUnavailable, RemoteSilence

API = Matcher(name="service", value="api")
DISK = Matcher(name="alertname", value="Disk.*", is_regex=True)


def now() -> datetime:
    return datetime.now(UTC)


async def test_create_sends_the_v2_body_and_returns_the_id(am: StandIn) -> None:
    client = AlertmanagerSilences(am.url + "/")  # a trailing slash is fine
    start = now()
    sid = await client.create([API, DISK], start, start + timedelta(hours=2), "alice (opsgate)",
                              "deploy in progress")

    method, path, body = am.requests[-1]
    assert (method, path) == ("POST", "/api/v2/silences")
    assert body["matchers"] == [
        {"name": "service", "value": "api", "isRegex": False, "isEqual": True},
        {"name": "alertname", "value": "Disk.*", "isRegex": True, "isEqual": True},
    ]
    assert body["createdBy"] == "alice (opsgate)"
    assert body["comment"] == "deploy in progress"
    assert body["startsAt"].endswith("Z") and body["endsAt"].endswith("Z")
    assert datetime.fromisoformat(body["endsAt"]) - datetime.fromisoformat(
        body["startsAt"]) == timedelta(hours=2)
    assert sid in am.silences
    assert am.silences[sid]["status"]["state"] == "active"


async def test_create_converts_local_times_to_utc(am: StandIn) -> None:
    from zoneinfo import ZoneInfo

    taipei = now().astimezone(ZoneInfo("Asia/Taipei"))
    await AlertmanagerSilences(am.url).create([API], taipei, taipei + timedelta(hours=1), "a", "b")
    body = am.requests[-1][2]
    assert datetime.fromisoformat(body["startsAt"]) == taipei.replace(
        microsecond=taipei.microsecond // 1000 * 1000)


async def test_create_refuses_naive_times(am: StandIn) -> None:
    naive = datetime(2030, 1, 1)
    with pytest.raises(ValueError, match="aware"):
        await AlertmanagerSilences(am.url).create([API], naive, naive, "a", "b")


async def test_list_active_keeps_only_active_silences(am: StandIn) -> None:
    client = AlertmanagerSilences(am.url)
    t = now()
    active = await client.create([API], t, t + timedelta(hours=1), "alice", "now")
    pending = await client.create([API], t + timedelta(hours=1), t + timedelta(hours=2),
                                  "bob", "later")
    expired = await client.create([DISK], t, t + timedelta(hours=1), "carol", "done")
    await client.expire(expired)

    silences = await client.list_active()

    assert [s.id for s in silences] == [active]
    (only,) = silences
    assert isinstance(only, RemoteSilence)
    assert only.matchers == [API]
    assert (only.created_by, only.comment) == ("alice", "now")
    assert only.starts_at.tzinfo is not None and only.ends_at > only.starts_at
    assert not only.has_negative_matchers
    assert am.silences[pending]["status"]["state"] == "pending"
    assert am.silences[expired]["status"]["state"] == "expired"


async def test_list_active_reads_alertmanager_shapes(am: StandIn) -> None:
    """Nanosecond timestamps as Go writes them; negative matchers are flagged, not kept."""
    am.silences["8d7f4a1c-1b2e-4a7c-9a61-3f7d2c9b0e11"] = {
        "id": "8d7f4a1c-1b2e-4a7c-9a61-3f7d2c9b0e11",
        "status": {"state": "active"},
        "updatedAt": "2026-01-01T10:00:00.123456789Z",
        "matchers": [
            {"name": "namespace", "value": "prod", "isRegex": False, "isEqual": True},
            {"name": "severity", "value": "info", "isRegex": False, "isEqual": False},
        ],
        "startsAt": "2020-01-01T10:00:00.123456789Z",
        "endsAt": "2099-01-01T10:00:00Z",
        "createdBy": "amtool",
        "comment": "made outside opsgate",
    }
    (remote,) = await AlertmanagerSilences(am.url).list_active()
    assert remote.matchers == [Matcher(name="namespace", value="prod")]
    assert remote.has_negative_matchers
    assert remote.starts_at == datetime(2020, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert remote.ends_at == datetime(2099, 1, 1, 10, 0, tzinfo=UTC)


async def test_expire_ends_an_active_silence(am: StandIn) -> None:
    client = AlertmanagerSilences(am.url)
    t = now()
    sid = await client.create([API], t, t + timedelta(hours=1), "alice", "x")

    await client.expire(sid)

    assert am.requests[-1][:2] == ("DELETE", f"/api/v2/silence/{sid}")
    assert am.silences[sid]["status"]["state"] == "expired"
    assert await client.list_active() == []
    await client.expire(sid)  # already expired: Alertmanager treats it as done


async def test_expire_of_an_unknown_silence_is_done(am: StandIn) -> None:
    await AlertmanagerSilences(am.url).expire("00000000-0000-4000-8000-000000000000")
    assert am.requests[-1][:2] == ("DELETE", "/api/v2/silence/00000000-0000-4000-8000-000000000000")


async def test_expire_quotes_the_id(am: StandIn) -> None:
    # One path segment: it reaches DELETE /silence/{id}, not a normalized /api/v2/silences.
    uuid_error = r'422 .*must be of type uuid: "\.\./silences"'
    with pytest.raises(AlertmanagerUnavailable, match=uuid_error):
        await AlertmanagerSilences(am.url).expire("../silences")
    assert am.requests[-1][0] == "DELETE"


async def test_unreachable_alertmanager() -> None:
    # A port that was free a moment ago and has nobody listening.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = AlertmanagerSilences(f"http://127.0.0.1:{port}")
    t = now()
    with pytest.raises(AlertmanagerUnavailable, match=f"127.0.0.1:{port} is unreachable"):
        await client.create([API], t, t + timedelta(hours=1), "a", "b")
    with pytest.raises(AlertmanagerUnavailable, match="unreachable"):
        await client.list_active()
    with pytest.raises(AlertmanagerUnavailable, match="unreachable"):
        await client.expire("00000000-0000-4000-8000-000000000000")


async def test_closed_standin_is_unreachable(am: StandIn) -> None:
    url = am.url
    await am.close()
    with pytest.raises(AlertmanagerUnavailable, match="unreachable"):
        await AlertmanagerSilences(url).list_active()


async def test_slow_alertmanager_times_out(am: StandIn) -> None:
    am.delay = 1.0
    with pytest.raises(AlertmanagerUnavailable, match=r"did not answer within 0.2s"):
        await AlertmanagerSilences(am.url, timeout=0.2).list_active()


@pytest.mark.parametrize("method", ["create", "expire", "list_active"])
async def test_server_error(am: StandIn, method: str) -> None:
    am.fail_next(500, "failed to gossip silence")
    client = AlertmanagerSilences(am.url)
    t = now()
    with pytest.raises(AlertmanagerUnavailable, match=r"answered 500 .*failed to gossip silence"):
        if method == "create":
            await client.create([API], t, t + timedelta(hours=1), "a", "b")
        elif method == "expire":
            await client.expire("00000000-0000-4000-8000-000000000000")
        else:
            await client.list_active()


async def test_bad_request_carries_alertmanagers_message(am: StandIn) -> None:
    client = AlertmanagerSilences(am.url)
    t = now()
    with pytest.raises(AlertmanagerUnavailable) as caught:
        await client.create([API], t + timedelta(hours=1), t, "a", "b")
    assert str(caught.value) == (
        "Alertmanager answered 400 to POST /api/v2/silences: "
        "Failed to create silence: start time must be before end time"
    )


@pytest.mark.parametrize(
    ("matchers", "message"),
    [
        ([], "422 .*matchers in body should have at least 1 items"),
        ([Matcher(name="alertname", value=".*", is_regex=True)],
         "400 .*at least one matcher must not match the empty string"),
        ([Matcher(name="bad-name", value="x")], '400 .*invalid label name "bad-name"'),
        ([Matcher(name="alertname", value="Disk(", is_regex=True)],
         "400 .*invalid regular expression"),
    ],
)
async def test_rejected_silences(am: StandIn, matchers: list[Matcher], message: str) -> None:
    t = now()
    with pytest.raises(AlertmanagerUnavailable, match=message):
        await AlertmanagerSilences(am.url).create(matchers, t, t + timedelta(hours=1), "a", "b")
    assert am.silences == {}


async def test_end_in_the_past_is_rejected(am: StandIn) -> None:
    t = now() - timedelta(hours=3)
    with pytest.raises(AlertmanagerUnavailable, match="end time can't be in the past"):
        await AlertmanagerSilences(am.url).create([API], t, t + timedelta(hours=1), "a", "b")


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, {"unexpected": True}, "has no silenceID"),
        (200, ["not", "an", "object"], "has no silenceID"),
        (502, "<html>Bad Gateway</html>", "answered 502 .*Bad Gateway"),
        (401, {"code": 401, "message": "unauthenticated"}, "answered 401 .*unauthenticated"),
    ],
)
async def test_odd_answers_to_create(am: StandIn, status: int, body: object, message: str) -> None:
    am.fail_next(status, body)
    t = now()
    with pytest.raises(AlertmanagerUnavailable, match=message):
        await AlertmanagerSilences(am.url).create([API], t, t + timedelta(hours=1), "a", "b")


async def test_malformed_list_is_unavailable(am: StandIn) -> None:
    am.fail_next(200, [{"id": "x", "status": {"state": "active"}}])
    with pytest.raises(AlertmanagerUnavailable, match="malformed"):
        await AlertmanagerSilences(am.url).list_active()
    am.fail_next(200, {"not": "a list"})
    with pytest.raises(AlertmanagerUnavailable, match="not a list"):
        await AlertmanagerSilences(am.url).list_active()


async def test_credentials_in_the_url_are_not_shown() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = AlertmanagerSilences(f"http://ops:s3cret@127.0.0.1:{port}")
    with pytest.raises(AlertmanagerUnavailable) as caught:
        await client.list_active()
    assert "s3cret" not in str(caught.value)
    assert f"http://127.0.0.1:{port}" in str(caught.value)


def test_base_url_needs_a_scheme() -> None:
    with pytest.raises(ValueError, match="http"):
        AlertmanagerSilences("alertmanager:9093")
