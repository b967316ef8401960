"""The multi-host drill's client (``scripts/drills/multihost.sh``): load, live view, webhook sink.

    python -m scripts.drills.multihost_load STATE --api NAME=URL … --jobs N --webhook URL --listen IP:PORT

With the key in ``STATE/api.key``: registers a webhook pointing at a receiver this process runs,
opens a WebSocket on every API host, uploads N small real pages (rendered with Pillow, each
with its own text) spread evenly over the API hosts at a steady rate, retrying refused or failed
uploads with the same ``Idempotency-Key``, and follows the tasks (the list route, through every
host in turn) until each is finished or the deadline passes. ``STATE/progress`` says
``submitted terminal`` as it goes (the drill's script paces its disruptions on it);
``STATE/load.json`` gets every task, the WebSocket messages each host relayed and the webhook
deliveries received.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image, ImageDraw, ImageFont

TERMINAL = frozenset({"completed", "failed", "cancelled"})
# A refused upload (Redis restarting: 503; the rate limit: 429) is tried again for this long.
UPLOAD_PATIENCE_SECONDS = 180.0
POLL_SECONDS = 2.0


@dataclass
class Job:
    index: int
    api: str
    task_id: str | None = None
    attempts: int = 0
    refusals: list[str] = field(default_factory=list)
    replayed: bool = False
    status: str | None = None
    submitted_at: float | None = None


@dataclass
class Socket:
    """What one API host's WebSocket relayed: messages after each (re)connect's snapshot are
    live events; the snapshot (sent before the answer to our ping) is kept apart."""

    connects: int = 0
    live: dict[str, list[str]] = field(default_factory=dict)
    snapshot: dict[str, list[str]] = field(default_factory=dict)
    closes: list[str] = field(default_factory=list)


@dataclass
class Run:
    tag: str
    apis: dict[str, str]
    key: str
    jobs: list[Job]
    sockets: dict[str, Socket]
    webhooks: dict[str, list[str]] = field(default_factory=dict)
    webhook_ids: set[str] = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def page_png(index: int, total: int, rows: int = 16) -> bytes:
    """A clean page of a few lines, different for every job (so is its hash): about a second
    of a worker's time, so the queue backs up and a worker host is cut in the middle of jobs."""
    lines = [f"Drill page {index + 1} of {total}"] + [
        f"Line {row}: the quick brown fox jumps over {index * 7 + row} lazy dogs" for row in range(1, rows)
    ]
    font = ImageFont.load_default(size=32)
    width = 160 + max(int(font.getlength(line)) for line in lines)
    image = Image.new("L", (width, 100 + 52 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((80, 50 + row * 52), line, font=font, fill=0)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ---- uploads ------------------------------------------------------------------------------
async def upload_once(session: aiohttp.ClientSession, run: Run, job: Job, body: bytes) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    form.add_field("file", body, filename=f"drill-{job.index:03d}.png", content_type="image/png")
    form.add_field("tag", run.tag)
    form.add_field("language", "eng")
    headers = run.headers() | {"Idempotency-Key": f"{run.tag}-{job.index}"}
    async with session.post(f"{run.apis[job.api]}/api/tasks", data=form, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def upload(session: aiohttp.ClientSession, run: Run, job: Job, total: int) -> None:
    """Until accepted (202, or 200 for a retry whose first try had been accepted after all)."""
    body = page_png(job.index, total)
    deadline = time.monotonic() + UPLOAD_PATIENCE_SECONDS
    for backoff in itertools.chain([0.5, 1.0, 2.0], itertools.repeat(3.0)):
        job.attempts += 1
        try:
            status, answer = await upload_once(session, run, job, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, answer = 0, {"error": {"code": type(exc).__name__}}
        if status in (200, 202) and answer.get("success"):
            job.task_id = answer["data"]["taskId"]
            job.replayed = status == 200
            job.submitted_at = time.time()
            return
        job.refusals.append(f"{status} {answer.get('error', {}).get('code')}")
        if status and status < 500 and status != 429:
            return  # refused for good: the check counts it as not submitted, and says why
        if time.monotonic() + backoff > deadline:
            return
        await asyncio.sleep(backoff)


async def submit_all(session: aiohttp.ClientSession, run: Run, rate: float) -> None:
    """One upload every 1/rate seconds, each to the next API host in turn."""
    started = time.monotonic()
    pending = []
    for job in run.jobs:
        await asyncio.sleep(max(0.0, started + job.index / rate - time.monotonic()))
        pending.append(asyncio.create_task(upload(session, run, job, len(run.jobs))))
    await asyncio.gather(*pending)


# ---- following the tasks ------------------------------------------------------------------
async def list_statuses(session: aiohttp.ClientSession, run: Run, api: str) -> dict[str, str]:
    statuses: dict[str, str] = {}
    cursor = None
    while True:
        params = {"tag": run.tag, "limit": "100"} | ({"cursor": cursor} if cursor else {})
        async with session.get(f"{api}/api/tasks", params=params, headers=run.headers()) as response:
            answer = await response.json(content_type=None)
        if response.status != 200:
            raise RuntimeError(f"list: {response.status} {answer}")
        statuses |= {task["taskId"]: task["status"] for task in answer["data"]["tasks"]}
        cursor = answer["data"].get("next")
        if not cursor:
            return statuses


def counts(run: Run) -> tuple[int, int]:
    submitted = [job for job in run.jobs if job.task_id]
    return len(submitted), sum(job.status in TERMINAL for job in submitted)


async def follow(session: aiohttp.ClientSession, run: Run, state: Path, uploads: asyncio.Task[None]) -> None:
    """Poll until the uploads are over and every accepted task is finished."""
    for api in itertools.cycle(run.apis.values()):
        try:
            statuses = await list_statuses(session, run, api)
            for job in run.jobs:
                if job.task_id in statuses:
                    job.status = statuses[job.task_id]
        except (aiohttp.ClientError, TimeoutError, RuntimeError):
            pass  # a store restarting: the next poll, through the next host, sees it
        submitted, terminal = counts(run)
        write_atomic(state / "progress", f"{submitted} {terminal}\n")
        if uploads.done() and terminal == submitted:
            return
        await asyncio.sleep(POLL_SECONDS)


# ---- live view ----------------------------------------------------------------------------
async def watch(session: aiohttp.ClientSession, run: Run, name: str) -> None:
    """One WebSocket on one API host for the whole run, reconnecting if it drops."""
    sock = run.sockets[name]
    url = run.apis[name].replace("http://", "ws://", 1) + "/ws"
    while not run.done.is_set():
        try:
            async with session.ws_connect(url, headers=run.headers(), heartbeat=20) as ws:
                sock.connects += 1
                await read_socket(ws, sock)
                sock.closes.append(f"closed {ws.close_code}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            sock.closes.append(type(exc).__name__)
        if not run.done.is_set():
            await asyncio.sleep(1)


async def read_socket(ws: aiohttp.ClientWebSocketResponse, sock: Socket) -> None:
    target = sock.snapshot
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        data = json.loads(message.data)
        if data["type"] == "connected":
            # The server reads our messages only after the snapshot: its pong marks the end.
            await ws.send_json({"type": "ping"})
        elif data["type"] == "pong":
            target = sock.live
        elif data["type"] == "task_update":
            target.setdefault(data["data"]["taskId"], []).append(data["data"]["status"])


# ---- webhooks -----------------------------------------------------------------------------
async def start_receiver(run: Run, listen: str) -> web.AppRunner:
    async def hook(request: web.Request) -> web.Response:
        event = await request.json()
        # At least once: a repeat carries the same webhook-id, and is not a second event.
        if request.headers.get("webhook-id") not in run.webhook_ids:
            run.webhook_ids.add(request.headers.get("webhook-id", ""))
            run.webhooks.setdefault(event["data"]["taskId"], []).append(event["type"])
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = listen.rsplit(":", 1)
    await web.TCPSite(runner, host, int(port)).start()
    return runner


async def register_webhook(session: aiohttp.ClientSession, run: Run, url: str) -> None:
    api = next(iter(run.apis.values()))
    body = {"url": url, "events": ["task.completed", "task.failed", "task.cancelled"]}
    async with session.post(f"{api}/api/webhooks", json=body, headers=run.headers()) as response:
        if response.status != 201:
            raise SystemExit(f"could not register the webhook: {response.status} {await response.text()}")


# ---- the run ------------------------------------------------------------------------------
async def drive(args: argparse.Namespace, run: Run) -> None:
    timeout = aiohttp.ClientTimeout(total=60, connect=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        receiver = await start_receiver(run, args.listen)
        await register_webhook(session, run, args.webhook)
        watchers = [asyncio.create_task(watch(session, run, name)) for name in run.apis]
        await asyncio.sleep(1)  # both sockets open before the first upload
        uploads = asyncio.create_task(submit_all(session, run, args.rate))
        try:
            await asyncio.wait_for(follow(session, run, args.state, uploads), args.deadline)
        except TimeoutError:
            print(f"deadline of {args.deadline:.0f}s passed with tasks unfinished")
        await asyncio.sleep(args.settle)  # the last events and webhook deliveries in flight
        run.done.set()
        uploads.cancel()
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(uploads, *watchers, return_exceptions=True)
        await receiver.cleanup()


def report(run: Run) -> dict[str, Any]:
    return {
        "tag": run.tag,
        "jobs": [asdict(job) for job in run.jobs],
        "sockets": {name: asdict(sock) for name, sock in run.sockets.items()},
        "webhooks": run.webhooks,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("state", type=Path)
    parser.add_argument("--api", action="append", required=True, metavar="NAME=URL")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=2.5, help="uploads per second")
    parser.add_argument("--webhook", required=True, help="the URL the API hosts deliver to")
    parser.add_argument("--listen", required=True, help="IP:PORT of this process's receiver")
    parser.add_argument("--deadline", type=float, default=900, help="seconds for every task to finish")
    parser.add_argument("--settle", type=float, default=5)
    args = parser.parse_args(argv)
    apis = dict(pair.split("=", 1) for pair in args.api)
    names = list(apis)
    run = Run(
        tag=f"drill-{uuid.uuid4().hex[:8]}",
        apis=apis,
        key=(args.state / "api.key").read_text(encoding="utf-8").strip(),
        jobs=[Job(index, names[index % len(names)]) for index in range(args.jobs)],
        sockets={name: Socket() for name in names},
    )
    asyncio.run(drive(args, run))
    write_atomic(args.state / "load.json", json.dumps(report(run)))
    submitted, terminal = counts(run)
    print(f"load: {submitted} of {args.jobs} uploads accepted, {terminal} finished")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
