"""WebSocket fan-out: many live clients, real jobs, latency from the worker's publish to receipt.

    RATE_LIMIT_WS_CONNECTS_PER_MINUTE=0 ./start_services.sh && .venv/bin/python -m scripts.bench.ws_fanout

(The stack's default limit of 120 WebSocket handshakes a minute per client address would refuse
this one-address load generator.)

Opens --clients sockets spread over --users users, uploads --jobs small real pages (spread over
the same users) and waits until every socket of each job's owner has seen it completed.
Latency of a message = its receipt time minus the event's own timestamp (set by the publisher
just before publishing; same machine clock). Prints p50/p99/max, messages lost (a socket that
never saw a job of its owner complete), and the API process's RSS before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import datetime
from pathlib import Path

import aiohttp

from backend.users import create_user_with_key
from common.settings import REPO_ROOT, effective_environ
from tests.support import text_page_png


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def parse_ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def main_async(api: str, database_url: str, users: int, clients: int, jobs: int) -> None:
    api_pid = int((REPO_ROOT / "var" / "run" / "api.pid").read_text())
    keys = [(await create_user_with_key(database_url, f"ws-bench-{n}@untxt.local"))[1] for n in range(users)]
    ws_base = api.replace("http://", "ws://")
    latencies: list[float] = []
    done: dict[int, set[str]] = {}  # socket index -> completed task ids seen
    rss_before = rss_mb(api_pid)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = []
        for i in range(clients):
            ws = await session.ws_connect(f"{ws_base}/ws?token={keys[i % users]}", heartbeat=None)
            sockets.append(ws)
        rss_connected = rss_mb(api_pid)

        async def reader(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            done[index] = set()
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                body = msg.json()
                if body["type"] != "task_update":
                    continue
                received = time.time()
                if body["data"]["status"] == "completed" or body["data"]["page"]:
                    latencies.append(received - parse_ts(body["timestamp"]))
                if body["data"]["status"] == "completed":
                    done[index].add(body["data"]["taskId"])

        readers = [asyncio.get_running_loop().create_task(reader(i, ws)) for i, ws in enumerate(sockets)]
        await asyncio.sleep(1)  # snapshots delivered
        latencies.clear()
        page = text_page_png(["fan out"])
        owner_of: dict[str, int] = {}
        started = time.perf_counter()
        for n in range(jobs):
            user = n % users
            form = aiohttp.FormData()
            form.add_field("file", page, filename=f"{n}.png")
            async with session.post(
                f"{api}/api/tasks", data=form, headers={"Authorization": f"Bearer {keys[user]}"}
            ) as resp:
                owner_of[(await resp.json())["data"]["taskId"]] = user
        expected = {i: {t for t, u in owner_of.items() if u == i % users} for i in range(clients)}
        deadline = time.monotonic() + 300
        while any(not expected[i] <= done[i] for i in range(clients)) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        rss_after = rss_mb(api_pid)
        lost = sum(len(expected[i] - done[i]) for i in range(clients))
        for ws in sockets:
            await ws.close()
        for task in readers:
            task.cancel()

    ordered = sorted(latencies)
    print(f"{clients} sockets over {users} users; {jobs} real jobs in {elapsed:.1f}s; {len(latencies)} messages timed")
    print(
        f"publish → receipt: p50 {statistics.median(ordered) * 1000:.1f} ms  "
        f"p99 {ordered[int(0.99 * (len(ordered) - 1))] * 1000:.1f} ms  max {ordered[-1] * 1000:.1f} ms"
    )
    print(f"completions lost: {lost} (of {sum(len(e) for e in expected.values())} expected)")
    print(
        f"API RSS: {rss_before:.0f} MB before, {rss_connected:.0f} MB with {clients} sockets, "
        f"{rss_after:.0f} MB after the run"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default=None)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    env = effective_environ()
    api = args.api or f"http://{env.get('API_HOST', '127.0.0.1')}:{env.get('API_PORT', '8080')}"
    asyncio.run(main_async(api, env["DATABASE_URL"], args.users, args.clients, args.jobs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
