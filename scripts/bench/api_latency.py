"""Upload latency and status-read throughput of one API process, against the running stack.

    ./start_services.sh && kill $(cat var/run/worker.pid)   # the worker would OCR the uploads
    .venv/bin/python -m scripts.bench.api_latency

Uploads (a 200 KB PNG, one user per client so the per-key rate limit stays out of the way):

* closed loop: 1, 16 and 64 clients, each sending its next upload as soon as the last one is
  answered; p50/p99 of the time to the 202 and the throughput reached;
* CPU per upload of every local process (API, S3 store, key service, PostgreSQL, Redis, this
  load generator), read from /proc around the 16-client round. Their sum against the cores
  gives the machine's ceiling in uploads/s, and by Little's law the lowest mean latency that
  16 closed-loop clients can see on it;
* open loop: 16 clients sending on a fixed schedule at a share of the closed-loop throughput,
  latency counted from each upload's scheduled start (no coordinated omission).

Baseline, in the same run: the same bytes PUT straight to the S3 store (SSE-KMS) by as many
concurrent callers, and the ratio of the API's latencies to those.

Status reads: GET /api/tasks/{id}/status from 32 concurrent clients (Python, then wrk if
installed) for a fixed time. The tasks created are cancelled at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aioboto3
import aiohttp
from PIL import Image

from backend.users import create_user_with_key
from common.s3config import s3_client_kwargs, sse_kms_params
from common.settings import REPO_ROOT, Settings, effective_environ

RATE_LIMIT_BURST = 100  # the default per-key burst: no client sends more per round
OPEN_LOOP_SHARES = (0.25, 0.5, 0.75)
OPEN_LOOP_SECONDS = 6.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def image_200kb() -> bytes:
    """A PNG of about 200 KB (noise does not compress)."""
    out = io.BytesIO()
    Image.frombytes("RGB", (260, 260), os.urandom(260 * 260 * 3)).save(out, format="PNG")
    return out.getvalue()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def describe(latencies: list[float]) -> str:
    return (
        f"n={len(latencies):4d}  p50 {statistics.median(latencies) * 1000:6.1f} ms  "
        f"p99 {percentile(latencies, 0.99) * 1000:6.1f} ms  max {max(latencies) * 1000:6.1f} ms"
    )


# --- CPU accounting of the local stack, from /proc -------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _own_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # exited meanwhile
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _cpu_seconds(pid: int, tree: dict[int, list[int]]) -> float:
    """User + system CPU of ``pid`` and its live descendants (PostgreSQL's backends, say)."""
    total, pending = 0.0, [pid]
    while pending:
        p = pending.pop()
        total += _own_cpu(p)
        pending.extend(tree.get(p, []))
    return total


def _pid_file(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def local_processes() -> dict[str, int]:
    """The local stack's processes that this run can see (none for stores given by URL)."""
    found = {
        name: pid
        for name in ("api", "s3", "kms", "redis")
        if (pid := _pid_file(REPO_ROOT / "var" / "run" / f"{name}.pid")) is not None
    }
    if (pid := _pid_file(REPO_ROOT / "var" / "postgres" / "postmaster.pid")) is not None:
        found["postgres"] = pid
    return found


@dataclass(frozen=True)
class CpuMeter:
    """CPU seconds used by each local process (and this one) between two readings."""

    processes: dict[str, int]

    def read(self) -> dict[str, float]:
        tree = _children()
        seconds = {name: _cpu_seconds(pid, tree) for name, pid in self.processes.items()}
        seconds["load generator"] = time.process_time()
        return seconds

    def per_op_ms(self, start: dict[str, float], ops: int) -> dict[str, float]:
        end = self.read()
        return {name: (end[name] - start[name]) * 1000 / ops for name in end}


# --- load ------------------------------------------------------------------------------------


async def _upload(session: aiohttp.ClientSession, api: str, payload: bytes) -> str:
    form = aiohttp.FormData()
    form.add_field("file", payload, filename="noise.png")
    form.add_field("priority", "1")
    async with session.post(f"{api}/api/tasks", data=form) as resp:
        body = await resp.json()
    if resp.status != 202:
        raise RuntimeError(f"upload answered {resp.status}: {body}")
    return str(body["data"]["taskId"])


async def _clients(api: str, keys: list[str], run: Callable[[int, aiohttp.ClientSession], Awaitable[None]]) -> None:
    async def one(index: int, key: str) -> None:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as session:
            await run(index, session)

    await asyncio.gather(*(one(i, k) for i, k in enumerate(keys)))


async def closed_loop(
    api: str, keys: list[str], per_client: int, payload: bytes, created: dict[str, str]
) -> tuple[list[float], float]:
    """Each client sends its next upload when the last is answered. Returns latencies, seconds."""
    latencies: list[float] = []

    async def run(index: int, session: aiohttp.ClientSession) -> None:
        for _ in range(per_client):
            started = time.perf_counter()
            created[await _upload(session, api, payload)] = keys[index]
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await _clients(api, keys, run)
    return latencies, time.perf_counter() - began


async def open_loop(
    api: str, keys: list[str], rate: float, seconds: float, payload: bytes, created: dict[str, str]
) -> list[float]:
    """Clients send on a fixed, staggered schedule summing to ``rate`` per second. Latency counts
    from the scheduled start, so an upload that had to wait for the previous one is charged
    for the wait too."""
    latencies: list[float] = []
    interval = len(keys) / rate
    begin = time.perf_counter() + 0.2

    async def run(index: int, session: aiohttp.ClientSession) -> None:
        scheduled = begin + index * interval / len(keys)
        while scheduled < begin + seconds:
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            created[await _upload(session, api, payload)] = keys[index]
            latencies.append(time.perf_counter() - scheduled)
            scheduled += interval

    await _clients(api, keys, run)
    return latencies


async def store_baseline(clients: int, per_client: int, payload: bytes) -> tuple[list[float], float]:
    """The same bytes PUT straight to the S3 store (SSE-KMS, one aiobotocore client, as the API
    uses): the floor any upload through the API stands on."""
    settings = Settings.from_env()
    latencies: list[float] = []
    prefix = f"bench/{uuid.uuid4()}"
    async with aioboto3.Session().client("s3", **s3_client_kwargs(settings, connections=clients)) as s3:

        async def client(index: int) -> None:
            for n in range(per_client):
                started = time.perf_counter()
                await s3.put_object(
                    Bucket=settings.s3_bucket, Key=f"{prefix}/{index}/{n}", Body=payload, **sse_kms_params(settings)
                )
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        seconds = time.perf_counter() - began
        for index in range(clients):
            for n in range(per_client):
                await s3.delete_object(Bucket=settings.s3_bucket, Key=f"{prefix}/{index}/{n}")
    return latencies, seconds


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


async def cancel_all(api: str, created: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as session:
        for task_id, key in created.items():
            async with session.post(
                f"{api}/api/tasks/{task_id}/cancel", headers={"Authorization": f"Bearer {key}"}
            ) as resp:
                await resp.read()


def print_cpu_budget(per_upload: dict[str, float], clients: int, reached: float) -> None:
    total = sum(per_upload.values())
    cores = os.cpu_count() or 1
    ceiling = cores * 1000 / total
    parts = "  ".join(f"{name} {ms:.2f}" for name, ms in sorted(per_upload.items(), key=lambda kv: -kv[1]))
    print(f"  CPU per upload (ms): {parts}  = {total:.2f} ms")
    print(
        f"  ceiling on {cores} cores: {ceiling:.0f} uploads/s (reached {reached:.0f}); "
        f"Little's law at {clients} closed-loop clients: mean latency >= {clients / ceiling * 1000:.0f} ms"
    )


async def main_async(api: str, database_url: str, read_seconds: float) -> None:
    payload = image_200kb()
    stamp = int(time.time())

    async def new_keys(count: int, label: str) -> list[str]:
        return [
            (await create_user_with_key(database_url, f"bench-{stamp}-{label}-{n}@untxt.local"))[1]
            for n in range(count)
        ]

    created: dict[str, str] = {}
    worker = _pid_file(REPO_ROOT / "var" / "run" / "worker.pid")
    print(f"payload: {len(payload) / 1024:.0f} KB PNG" + ("  (WARNING: a worker is running)" if worker else ""))
    warm = await new_keys(1, "warm")
    await closed_loop(api, warm, 3, payload, created)  # pools and connections open

    meter = CpuMeter(local_processes())
    saturated = 0.0
    for clients in (1, 16, 64):
        keys = await new_keys(clients, f"closed{clients}")
        per_client = max(5, min(RATE_LIMIT_BURST - 10, 600 // clients))
        start = meter.read()
        latencies, seconds = await closed_loop(api, keys, per_client, payload, created)
        cpu = meter.per_op_ms(start, len(latencies))
        rate = len(latencies) / seconds
        print(f"closed loop, {clients:2d} clients: {describe(latencies)}  ({rate:.0f} uploads/s)")
        if clients == 16:
            saturated = rate
            print_cpu_budget(cpu, clients, rate)
        floor, floor_seconds = await store_baseline(clients, per_client, payload)
        print(
            f"  baseline, PUT straight to S3: {describe(floor)}  ({len(floor) / floor_seconds:.0f} PUTs/s)  "
            f"API/PUT: p50 {statistics.median(latencies) / statistics.median(floor):.2f}x  "
            f"p99 {percentile(latencies, 0.99) / percentile(floor, 0.99):.2f}x"
        )

    for share in OPEN_LOOP_SHARES:
        rate = saturated * share
        latencies = await open_loop(api, await new_keys(16, f"open{share}"), rate, OPEN_LOOP_SECONDS, payload, created)
        print(f"open loop, 16 clients at {rate:5.0f}/s ({share:.0%} of closed-loop): {describe(latencies)}")

    some_task = next(iter(created))
    reads = await status_reads(api, created[some_task], some_task, 32, read_seconds)
    print(f"status reads, 32 concurrent Python clients, {read_seconds:.0f} s: {reads / read_seconds:.0f} requests/s")
    if shutil.which("wrk"):
        # A C load generator takes far less of the shared cores than the Python one.
        run = subprocess.run(
            ["wrk", "-t1", "-c32", f"-d{read_seconds:.0f}s", "-H", f"Authorization: Bearer {created[some_task]}",
             f"{api}/api/tasks/{some_task}/status"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rate_line = next(line.split()[-1] for line in run.stdout.splitlines() if line.startswith("Requests/sec"))
        print(f"status reads, wrk -t1 -c32, {read_seconds:.0f} s: {float(rate_line):.0f} requests/s")
    await cancel_all(api, created)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default=None)
    parser.add_argument("--read-seconds", type=float, default=5.0)
    args = parser.parse_args()
    env = effective_environ()
    api = args.api or f"http://{env.get('API_HOST', '127.0.0.1')}:{env.get('API_PORT', '8080')}"
    asyncio.run(main_async(api, env["DATABASE_URL"], args.read_seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
