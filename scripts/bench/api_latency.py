"""Upload latency and status-read throughput of one API process, against the running stack.

    ./start_services.sh && .venv/bin/python scripts/bench/api_latency.py

Uploads: a 200 KB PNG, sent by 1, 16 and 64 concurrent clients (one user each, so the per-key
rate limit does not interfere); p50/p99 of the time to the 202. Status reads: GET
/api/tasks/{id}/status from 32 concurrent clients for a fixed time; requests per second.
The tasks created are cancelled at the end. Workers keep running unless stopped first
(`kill $(cat var/run/worker.pid)`): say which when quoting the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from backend.users import create_user_with_key  # noqa: E402
from common.settings import effective_environ  # noqa: E402


def image_200kb() -> bytes:
    """A PNG of about 200 KB (noise does not compress)."""
    out = io.BytesIO()
    Image.frombytes("RGB", (260, 260), os.urandom(260 * 260 * 3)).save(out, format="PNG")
    return out.getvalue()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def upload_round(api: str, keys: list[str], per_client: int, payload: bytes) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    task_ids: list[str] = []

    async def client(key: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            for _ in range(per_client):
                form = aiohttp.FormData()
                form.add_field("file", payload, filename="noise.png")
                form.add_field("priority", "1")
                started = time.perf_counter()
                async with session.post(f"{api}/api/tasks", data=form) as resp:
                    body = await resp.json()
                latencies.append(time.perf_counter() - started)
                if resp.status != 202:
                    raise RuntimeError(f"upload answered {resp.status}: {body}")
                task_ids.append(body["data"]["taskId"])

    await asyncio.gather(*(client(k) for k in keys))
    return latencies, task_ids


async def status_reads(api: str, key: str, task_id: str, clients: int, seconds: float) -> int:
    count = 0
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            async with session.get(f"{api}/api/tasks/{task_id}/status") as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"status answered {resp.status}")
            count += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}, connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return count


async def cancel_all(api: str, key_of: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as session:
        for task_id, key in key_of.items():
            async with session.post(
                f"{api}/api/tasks/{task_id}/cancel", headers={"Authorization": f"Bearer {key}"}
            ) as resp:
                await resp.read()


async def main_async(api: str, database_url: str, per_client: int, read_seconds: float) -> None:
    payload = image_200kb()
    users = [await create_user_with_key(database_url, f"bench-{n}@untxt.local") for n in range(64)]
    keys = [key for _, key in users]
    print(f"payload: {len(payload) / 1024:.0f} KB PNG; uploads per client: {per_client}")
    await upload_round(api, keys[:1], 3, payload)  # warm-up: pools and connections open
    created: dict[str, str] = {}
    for clients in (1, 16, 64):
        latencies, task_ids = await upload_round(api, keys[:clients], per_client, payload)
        created.update({t: keys[i % clients] for i, t in enumerate(task_ids)})
        print(
            f"uploads, {clients:2d} concurrent clients: n={len(latencies)}  "
            f"p50 {statistics.median(latencies) * 1000:.1f} ms  p99 {percentile(latencies, 0.99) * 1000:.1f} ms  "
            f"max {max(latencies) * 1000:.1f} ms  ({len(latencies) / sum(latencies) * clients:.0f} uploads/s)"
        )
    some_task = next(iter(created))
    reads = await status_reads(api, created[some_task], some_task, 32, read_seconds)
    print(f"status reads, 32 concurrent Python clients, {read_seconds:.0f} s: {reads / read_seconds:.0f} requests/s")
    if shutil.which("wrk"):
        # A C load generator takes far less of the shared 2 cores than the Python one.
        run = subprocess.run(
            ["wrk", "-t1", "-c32", f"-d{read_seconds:.0f}s", "-H", f"Authorization: Bearer {created[some_task]}",
             f"{api}/api/tasks/{some_task}/status"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rate = next(line.split()[-1] for line in run.stdout.splitlines() if line.startswith("Requests/sec"))
        print(f"status reads, wrk -t1 -c32, {read_seconds:.0f} s: {float(rate):.0f} requests/s")
    await cancel_all(api, created)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default=None)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--read-seconds", type=float, default=5.0)
    args = parser.parse_args()
    env = effective_environ()
    api = args.api or f"http://{env.get('API_HOST', '127.0.0.1')}:{env.get('API_PORT', '8080')}"
    asyncio.run(main_async(api, env["DATABASE_URL"], args.per_client, args.read_seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
