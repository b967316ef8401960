"""Webhooks in-process against the real PostgreSQL, Redis and S3: the routes, the outbox trigger on
every path that ends a task, and the dispatcher's checks at delivery time."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks.webhooks import Webhook

from backend.app import create_app
from backend.resources import _init_connection
from backend.webhooks.dispatcher import Dispatcher, client_session
from common.settings import Settings
from tests.integration.conftest import error_of, form, user_headers
from worker.db import TaskStore


def _with(settings: Settings, **webhooks: Any) -> Settings:
    return settings.replace(webhooks=settings.webhooks.replace(**webhooks))


@pytest.fixture
async def dev_client(aiohttp_client: Any, settings: Settings) -> TestClient:
    """An API that allows private targets (as in development) and delivers nothing itself, so
    these tests see the outbox exactly as the trigger wrote it."""
    return await aiohttp_client(create_app(_with(settings, allow_private_targets=True, concurrency=0)))


@pytest.fixture
async def strict_client(aiohttp_client: Any, settings: Settings) -> TestClient:
    """An API with the production rules (https, public addresses only)."""
    return await aiohttp_client(create_app(_with(settings, allow_private_targets=False, concurrency=0)))


async def _register(client: TestClient, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("url", "http://127.0.0.1:9/hook")
    resp = await client.post("/api/webhooks", json=body, headers=auth)
    data = await resp.json()
    assert resp.status == 201, data
    assert resp.headers["Location"] == f"/api/webhooks/{data['data']['webhookId']}"
    return data["data"]


async def _upload(client: TestClient, auth: dict[str, str], **fields: str) -> str:
    resp = await client.post("/api/tasks", data=form(**fields), headers=auth)
    assert resp.status == 202, await resp.text()
    return (await resp.json())["data"]["taskId"]


def _outbox(pg: Any, task_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    with pg.cursor() as cur:
        cur.execute(
            "SELECT webhook_id, event, payload FROM webhook_deliveries WHERE task_id = %s ORDER BY created_at, id",
            (task_id,),
        )
        return [(str(w), e, p) for w, e, p in cur.fetchall()]


async def test_register_list_read_delete(dev_client: TestClient, settings: Settings) -> None:
    _, auth = await user_headers(settings)
    created = await _register(dev_client, auth, url="http://127.0.0.1:9/hook", events=["task.failed", "task.completed"])
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["task.completed", "task.failed"]  # canonical order
    every = await _register(dev_client, auth, url="https://hooks.example.com/untxt")
    assert every["events"] == ["task.completed", "task.failed", "task.cancelled"]

    listed = (await (await dev_client.get("/api/webhooks", headers=auth)).json())["data"]["webhooks"]
    assert [w["webhookId"] for w in listed] == [created["webhookId"], every["webhookId"]]
    assert all("secret" not in w for w in listed)  # shown once, at registration
    one = await dev_client.get(f"/api/webhooks/{created['webhookId']}", headers=auth)
    assert (await one.json())["data"] == {k: v for k, v in created.items() if k != "secret"}

    gone = await dev_client.delete(f"/api/webhooks/{created['webhookId']}", headers=auth)
    assert (await gone.json())["data"] == {"webhookId": created["webhookId"], "deleted": True}
    again = await dev_client.delete(f"/api/webhooks/{created['webhookId']}", headers=auth)
    assert (await error_of(again, 404))["code"] == "webhook_not_found"
    listed = (await (await dev_client.get("/api/webhooks", headers=auth)).json())["data"]["webhooks"]
    assert [w["webhookId"] for w in listed] == [every["webhookId"]]


async def test_users_see_only_their_own_webhooks(dev_client: TestClient, settings: Settings) -> None:
    _, alice = await user_headers(settings)
    _, bob = await user_headers(settings)
    hook = await _register(dev_client, alice)
    for method, path in (
        ("GET", f"/api/webhooks/{hook['webhookId']}"),
        ("GET", f"/api/webhooks/{hook['webhookId']}/deliveries"),
        ("DELETE", f"/api/webhooks/{hook['webhookId']}"),
    ):
        resp = await dev_client.request(method, path, headers=bob)
        assert (await error_of(resp, 404))["code"] == "webhook_not_found", (method, path)
    assert (await (await dev_client.get("/api/webhooks", headers=bob)).json())["data"]["webhooks"] == []
    still = await dev_client.get(f"/api/webhooks/{hook['webhookId']}", headers=alice)
    assert still.status == 200
    assert (await error_of(await dev_client.get("/api/webhooks"), 401))["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"[]", 400, "invalid_json"),
        (b'"https://hooks.example.com"', 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"{}", 400, "invalid_webhook_url"),
        (b'{"url": 42}', 400, "invalid_webhook_url"),
        (b'{"url": "hooks.example.com/in"}', 400, "invalid_webhook_url"),
        (b'{"url": "ftp://hooks.example.com/in"}', 400, "invalid_webhook_url"),
        (b'{"url": "https://u:p@hooks.example.com/in"}', 400, "invalid_webhook_url"),
        (b'{"url": "http://127.0.0.1:9/hook", "events": []}', 400, "invalid_events"),
        (b'{"url": "http://127.0.0.1:9/hook", "events": "task.completed"}', 400, "invalid_events"),
        (b'{"url": "http://127.0.0.1:9/hook", "events": ["task.completed", 1]}', 400, "invalid_events"),
        (b'{"url": "http://127.0.0.1:9/hook", "events": ["task.queued"]}', 400, "invalid_events"),
        (b'{"url": "http://127.0.0.1:9/hook", "secret": "whsec_mine"}', 400, "invalid_field"),
        (b'{"url": "' + b"x" * 20_000 + b'"}', 413, "request_too_large"),
    ],
)
async def test_bad_registrations_get_the_error_envelope(
    dev_client: TestClient, settings: Settings, body: bytes, status: int, code: str
) -> None:
    _, auth = await user_headers(settings)
    resp = await dev_client.post("/api/webhooks", data=body, headers={**auth, "Content-Type": "application/json"})
    assert (await error_of(resp, status))["code"] == code


async def test_bad_ids_and_cursors(dev_client: TestClient, settings: Settings) -> None:
    _, auth = await user_headers(settings)
    resp = await dev_client.get("/api/webhooks/not-a-uuid", headers=auth)
    assert (await error_of(resp, 400))["code"] == "invalid_webhook_id"
    resp = await dev_client.get(f"/api/webhooks/{uuid.uuid4()}/deliveries", headers=auth)
    assert (await error_of(resp, 404))["code"] == "webhook_not_found"
    hook = await _register(dev_client, auth)
    for query, code in (("limit=0", "invalid_limit"), ("limit=x", "invalid_limit"), ("cursor=%%%", "invalid_cursor")):
        resp = await dev_client.get(f"/api/webhooks/{hook['webhookId']}/deliveries?{query}", headers=auth)
        assert (await error_of(resp, 400))["code"] == code, query


async def test_webhooks_per_user_are_limited(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(
        create_app(_with(settings, allow_private_targets=True, concurrency=0, max_per_user=3))
    )
    _, auth = await user_headers(settings)
    _, other = await user_headers(settings)
    # At once: the limit holds under concurrent registrations too.
    answers = await asyncio.gather(
        *(client.post("/api/webhooks", json={"url": f"http://127.0.0.1:9/{n}"}, headers=auth) for n in range(5))
    )
    assert sorted(a.status for a in answers) == [201, 201, 201, 409, 409]
    refused = next(a for a in answers if a.status == 409)
    assert (await error_of(refused, 409))["code"] == "webhook_limit_reached"
    assert (await client.post("/api/webhooks", json={"url": "http://127.0.0.1:9/x"}, headers=other)).status == 201


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://127.0.0.1/hook", "127.0.0.1 is not an allowed webhook target (loopback)"),
        ("https://[::1]:8443/hook", "::1 is not an allowed webhook target (loopback)"),
        ("https://10.1.2.3/hook", "private"),
        ("https://192.168.0.10:8443/hook", "private"),
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata service"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://localhost:8443/hook", "localhost resolves to 127.0.0.1, which is not an allowed webhook target"),
        ("https://2130706433/hook", "loopback"),  # 127.0.0.1 as one decimal number
        ("https://0.0.0.0/hook", "unspecified"),
        ("http://hooks.example.com/hook", "webhook URLs must use https"),
    ],
)
async def test_internal_targets_are_refused(strict_client: TestClient, settings: Settings, url: str, says: str) -> None:
    _, auth = await user_headers(settings)
    resp = await strict_client.post("/api/webhooks", json={"url": url}, headers=auth)
    error = await error_of(resp, 400)
    assert error["code"] == "webhook_target_forbidden"
    assert says in error["message"]


async def test_a_host_that_does_not_resolve_is_refused(strict_client: TestClient, settings: Settings) -> None:
    _, auth = await user_headers(settings)
    resp = await strict_client.post("/api/webhooks", json={"url": "https://no-such-host.invalid/hook"}, headers=auth)
    assert (await error_of(resp, 400))["code"] == "invalid_webhook_url"


async def test_every_path_to_a_terminal_status_writes_the_outbox(
    dev_client: TestClient, settings: Settings, pg
) -> None:
    user_id, auth = await user_headers(settings)
    every = await _register(dev_client, auth)
    only_done = await _register(dev_client, auth, events=["task.completed"])
    _, stranger = await user_headers(settings)
    theirs = await _register(dev_client, stranger)
    tasks = TaskStore(settings.database_url)
    try:
        # The worker completes (with the result's formats), fails, and cancels at a page boundary.
        done = await _upload(dev_client, auth, tag="invoices")
        claimed = tasks.claim(done, "w1")
        assert claimed is not None
        tasks.set_progress(done, "w1", 50)
        tasks.complete(claimed, "w1", f"results/{user_id}/r/result.html", {"pages": 1, "formats": ["html", "txt"]})
        failed = await _upload(dev_client, auth)
        tasks.claim(failed, "w1")
        tasks.fail(failed, "w1", "corrupt_file", "the file could not be decoded")
        stopped = await _upload(dev_client, auth)
        tasks.claim(stopped, "w1")
        tasks.cancel(stopped, "w1")
        # The reaper fails a job that killed too many workers; a handed-back job is no event.
        crashed = await _upload(dev_client, auth)
        tasks.claim(crashed, "w1")
        assert tasks.hand_back(crashed, "w1")
        tasks.claim(crashed, "w2")
        assert tasks.release_dead(crashed, "w2", max_crashes=1) == "failed"
        # The API cancels a queued task outright.
        queued = await _upload(dev_client, auth)
        assert (await dev_client.post(f"/api/tasks/{queued}/cancel", headers=auth)).status == 200
    finally:
        tasks.close()

    e, o = every["webhookId"], only_done["webhookId"]
    [(w1, ev1, completed), (w2, ev2, _)] = _outbox(pg, done)
    assert {(w1, ev1), (w2, ev2)} == {(e, "task.completed"), (o, "task.completed")}
    assert completed["type"] == "task.completed"
    assert completed["data"] == {
        "taskId": done,
        "status": "completed",
        "tag": "invoices",
        "formats": ["html", "txt"],
        "error": None,
        "completedAt": completed["data"]["completedAt"],
    }
    assert completed["timestamp"].endswith("Z")
    assert completed["data"]["completedAt"].endswith("Z")
    [(_, _, failure)] = _outbox(pg, failed)
    assert failure["data"]["error"] == {"code": "corrupt_file", "message": "the file could not be decoded"}
    assert failure["data"]["formats"] is None
    assert [(w, ev) for w, ev, _ in _outbox(pg, stopped)] == [(e, "task.cancelled")]
    [(_, ev, poison)] = _outbox(pg, crashed)
    assert (ev, poison["data"]["error"]["code"]) == ("task.failed", "worker_crashed")
    [(_, ev, cancelled)] = _outbox(pg, queued)
    assert (ev, cancelled["data"]["status"]) == ("task.cancelled", "cancelled")
    with pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM webhook_deliveries WHERE webhook_id = %s", (theirs["webhookId"],))
        assert cur.fetchone() == (0,)  # another user's webhook hears nothing of these tasks


async def test_a_retried_task_is_a_new_event_and_changes_within_a_status_are_none(
    dev_client: TestClient, settings: Settings, pg
) -> None:
    _, auth = await user_headers(settings)
    hook = await _register(dev_client, auth)
    tasks = TaskStore(settings.database_url)
    try:
        task_id = await _upload(dev_client, auth)
        tasks.claim(task_id, "w1")
        tasks.fail(task_id, "w1", "timeout", "too slow")
        assert not tasks.fail(task_id, "w1", "timeout", "again")  # a stale repeat changes nothing
        with pg.cursor() as cur:  # a terminal row touched without a status change
            cur.execute("UPDATE tasks SET status = status, progress = progress WHERE id = %s", (task_id,))
        assert (await dev_client.post(f"/api/tasks/{task_id}/retry", headers=auth)).status == 202
        claimed = tasks.claim(task_id, "w1")
        assert claimed is not None
        tasks.complete(claimed, "w1", "results/x/result.html", {"formats": ["html"]})
    finally:
        tasks.close()
    assert [ev for _, ev, _ in _outbox(pg, task_id)] == ["task.failed", "task.completed"]
    # Deleting the webhook drops its undelivered messages with it.
    await dev_client.delete(f"/api/webhooks/{hook['webhookId']}", headers=auth)
    assert _outbox(pg, task_id) == []


class Receiver:
    """An HTTP endpoint on loopback that records what reaches it."""

    def __init__(self, answer_after: float = 0.0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.server: TestServer | None = None
        self.arrived = asyncio.Event()
        self._answer_after = answer_after

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append({"headers": dict(request.headers), "body": await request.read()})
        self.arrived.set()
        await asyncio.sleep(self._answer_after)
        return web.Response(status=204)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        await self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        assert self.server.port is not None
        return self.server.port


async def _dispatch_until_attempted(settings: Settings, delivery_id: str, **overrides: Any) -> list[asyncpg.Record]:
    """Run a dispatcher with these webhook settings until the delivery has an attempt."""
    webhook_settings = settings.webhooks.replace(poll_seconds=0.05, concurrency=4, **overrides)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2, init=_init_connection)
    try:
        async with client_session(webhook_settings) as session:
            runner = asyncio.create_task(Dispatcher(pool, webhook_settings, session).run())
            try:
                for _ in range(200):
                    attempts = await pool.fetch(
                        "SELECT * FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id", uuid.UUID(delivery_id)
                    )
                    if attempts:
                        return attempts
                    await asyncio.sleep(0.05)
                raise AssertionError("no attempt within 10 s")
            finally:
                runner.cancel()
    finally:
        await pool.close()


async def _one_delivery(client: TestClient, settings: Settings, url: str) -> tuple[dict[str, Any], str]:
    _, auth = await user_headers(settings)
    hook = await _register(client, auth, url=url)
    tasks = TaskStore(settings.database_url)
    try:
        task_id = await _upload(client, auth)
        tasks.claim(task_id, "w1")
        tasks.fail(task_id, "w1", "corrupt_file", "bad")
    finally:
        tasks.close()
    log = await client.get(f"/api/webhooks/{hook['webhookId']}/deliveries", headers=auth)
    [delivery] = (await log.json())["data"]["deliveries"]
    return hook, delivery["deliveryId"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_addresses_are_checked_again_at_delivery(dev_client: TestClient, settings: Settings, host: str) -> None:
    """A webhook registered while private targets were allowed (or whose name resolves elsewhere
    now) is refused when it is delivered, before any connection is made."""
    async with Receiver() as receiver:
        _, delivery_id = await _one_delivery(dev_client, settings, f"https://{host}:{receiver.port}/hook")
        [attempt] = await _dispatch_until_attempted(settings, delivery_id, allow_private_targets=False)
        assert attempt["status_code"] is None
        assert attempt["error"].startswith("refused: ")
        assert "is not an allowed webhook target (loopback)" in attempt["error"]
        assert attempt["next_attempt_at"] is not None  # retried: DNS may say otherwise later
        assert receiver.requests == []


async def test_a_delivery_past_its_window_is_given_up(dev_client: TestClient, settings: Settings, pg) -> None:
    _, delivery_id = await _one_delivery(dev_client, settings, "http://127.0.0.1:9/closed-port")
    [attempt] = await _dispatch_until_attempted(
        settings, delivery_id, allow_private_targets=True, retry_window_seconds=0.0
    )
    assert attempt["status_code"] is None
    assert "ClientConnectorError" in attempt["error"]
    assert attempt["next_attempt_at"] is None
    with pg.cursor() as cur:
        cur.execute(
            "SELECT status, attempts, finished_at IS NOT NULL FROM webhook_deliveries WHERE id = %s", (delivery_id,)
        )
        assert cur.fetchone() == ("failed", 1, True)


async def test_a_delivery_is_signed_and_logged(dev_client: TestClient, settings: Settings) -> None:
    async with Receiver() as receiver:
        hook, delivery_id = await _one_delivery(dev_client, settings, f"http://127.0.0.1:{receiver.port}/in")
        [attempt] = await _dispatch_until_attempted(settings, delivery_id, allow_private_targets=True)
        assert (attempt["status_code"], attempt["error"], attempt["next_attempt_at"]) == (204, None, None)
        [request] = receiver.requests
        payload = Webhook(hook["secret"]).verify(request["body"], request["headers"])
        assert request["headers"]["webhook-id"] == delivery_id
        assert request["headers"]["Content-Type"] == "application/json"
        assert payload["type"] == "task.failed"
        assert json.loads(request["body"]) == payload


async def test_stopping_hands_attempts_in_flight_back(dev_client: TestClient, settings: Settings, pg) -> None:
    """Shutdown does not wait for a slow receiver: the attempt is cut, nothing is recorded, and
    the row is due again at once for any process (not only when its lease ends)."""
    async with Receiver(answer_after=30) as receiver:
        _, delivery_id = await _one_delivery(dev_client, settings, f"http://127.0.0.1:{receiver.port}/slow")
        webhook_settings = settings.webhooks.replace(poll_seconds=0.05, concurrency=4, allow_private_targets=True)
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2, init=_init_connection)
        try:
            async with client_session(webhook_settings) as session:
                dispatcher = Dispatcher(pool, webhook_settings, session)
                runner = asyncio.create_task(dispatcher.run())
                await asyncio.wait_for(receiver.arrived.wait(), 10)
                leased = await pool.fetchval(
                    "SELECT next_attempt_at > now() + interval '30 seconds' FROM webhook_deliveries WHERE id = $1",
                    uuid.UUID(delivery_id),
                )
                assert leased
                runner.cancel()
                started = asyncio.get_running_loop().time()
                await dispatcher.stop()
                assert asyncio.get_running_loop().time() - started < 2
        finally:
            await pool.close()
    with pg.cursor() as cur:
        cur.execute(
            "SELECT status, attempts, claim_token, next_attempt_at <= now() FROM webhook_deliveries WHERE id = %s",
            (delivery_id,),
        )
        assert cur.fetchone() == ("pending", 0, None, True)
        cur.execute("SELECT count(*) FROM webhook_attempts WHERE delivery_id = %s", (delivery_id,))
        assert cur.fetchone() == (0,)
    # Nothing else should deliver it to the closed receiver after this test.
    with pg.cursor() as cur:
        cur.execute("DELETE FROM webhook_deliveries WHERE id = %s", (delivery_id,))


async def test_a_database_outage_does_not_stop_the_dispatcher(settings: Settings) -> None:
    webhook_settings = settings.webhooks.replace(poll_seconds=0.05, concurrency=4)
    pool = await asyncpg.create_pool("postgresql://untxt@127.0.0.1:1/none", min_size=0, timeout=1)
    try:
        async with client_session(webhook_settings) as session:
            runner = asyncio.create_task(Dispatcher(pool, webhook_settings, session).run())
            await asyncio.sleep(0.5)
            assert not runner.done()  # failed claims are logged and retried, never fatal
            runner.cancel()
            with pytest.raises(asyncio.CancelledError):
                await runner
    finally:
        await pool.close()
