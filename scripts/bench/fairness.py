"""Fairness between users: one user's backlog against another user's single page, in one run.

    ./start_services.sh --infra-only && .venv/bin/python -m scripts.bench.fairness

Starts its own API and worker process (as scripts/bench/pipeline_vs_cli.py does; the stack's
own worker must not be running). User A uploads fifteen 6-page scanned PDFs (90 pages) at once;
a moment later user B uploads one page. Printed, each the median of ``--rounds`` runs:

* B idle: B's page alone, upload → completed;
* B behind A: the same page uploaded 2 s after A's backlog;
* A alone / A with B: A's total time, first upload → last completion.

Target (issue 11): B behind A ≤ B idle + 2 page-times, and A with B ≤ 1.05 × A alone. A
page-time is what one engine spends on one of these pages: A alone × engines / pages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import redis

from backend.users import create_user_with_key
from common.jobqueue import RedisNames
from common.settings import Settings
from scripts.bench.pipeline_vs_cli import Client, Services
from tests.support import dense_page_png, pdf_of

BACKLOG_DOCUMENTS, PAGES_PER_DOCUMENT = 15, 6
B_DELAY_SECONDS = 2.0
TERMINAL = ("completed", "failed", "cancelled")


def write_inputs(folder: Path) -> tuple[list[Path], Path]:
    backlog = []
    for n in range(BACKLOG_DOCUMENTS):
        path = folder / f"a-{n:02d}.pdf"
        path.write_bytes(pdf_of([dense_page_png(n * PAGES_PER_DOCUMENT + p) for p in range(PAGES_PER_DOCUMENT)]))
        backlog.append(path)
    single = folder / "b.png"
    single.write_bytes(dense_page_png(999))
    return backlog, single


def completion_times(client: Client, task_ids: set[str], timeout: float = 900) -> dict[str, float]:
    """perf_counter() at which each task's terminal event arrived; raises if one did not complete."""
    done: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(task_ids):
        if time.monotonic() > deadline:
            raise TimeoutError(task_ids - set(done))
        message = client.events.get_message(timeout=1)
        if not message or message["type"] != "message":
            continue
        event = json.loads(message["data"])
        if event["taskId"] in task_ids and event["status"] in TERMINAL:
            if event["status"] != "completed":
                raise SystemExit(f"task {event['taskId']} ended {event['status']}: {event.get('message')}")
            done.setdefault(event["taskId"], time.perf_counter())
    return done


def breakdown(client: Client, task_id: str) -> str:
    """Where a task's time went: waiting for a slot, then the worker's own phases."""
    task = client.session.get(f"{client.api}/api/tasks/{task_id}", timeout=10).json()["data"]
    created, started = (datetime.fromisoformat(task[k].replace("Z", "+00:00")) for k in ("createdAt", "startedAt"))
    phases = ", ".join(f"{k} {v:.2f}" for k, v in task["result"]["seconds"].items())
    return f"queued {(started - created).total_seconds():.2f}, then {phases}"


def run(a: Client, b: Client, backlog: list[Path], single: Path | None) -> tuple[float | None, float | None]:
    """(A's total, B's latency); either None when that user sends nothing this run."""
    started = time.perf_counter()
    a_ids: set[str] = set()
    if backlog:
        with ThreadPoolExecutor(max_workers=len(backlog)) as pool:
            a_ids = set(pool.map(a.upload, backlog))
    b_ids: set[str] = set()
    b_started = 0.0
    if single is not None:
        time.sleep(max(0.0, started + (B_DELAY_SECONDS if backlog else 0) - time.perf_counter()))
        b_started = time.perf_counter()
        b_ids = {b.upload(single)}
    done = completion_times(a, a_ids | b_ids)
    a_total = max(done[t] for t in a_ids) - started if a_ids else None
    b_latency = None
    if b_ids:
        b_id = next(iter(b_ids))
        b_latency = done[b_id] - b_started
        print(f"  B {'behind A' if backlog else 'idle'}: {b_latency:.2f}s ({breakdown(b, b_id)})", flush=True)
    return a_total, b_latency


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each case (medians shown)")
    args = parser.parse_args()
    settings = Settings.from_env()
    names = RedisNames(settings.redis_key_prefix)
    if redis.Redis.from_url(settings.redis_url).keys(names.heartbeat_prefix + ":*"):
        raise SystemExit("a worker is running; start the stores only (./start_services.sh --infra-only)")
    run_id = uuid.uuid4().hex[:8]
    _, key_a = asyncio.run(create_user_with_key(settings.database_url, f"bench-a-{run_id}@untxt.local"))
    _, key_b = asyncio.run(create_user_with_key(settings.database_url, f"bench-b-{run_id}@untxt.local"))
    engines = settings.worker_concurrency
    services = Services({})
    try:
        a, b = Client(services.api, key_a, settings), Client(services.api, key_b, settings)
        with tempfile.TemporaryDirectory() as tmp:
            backlog, single = write_inputs(Path(tmp))
            run(a, b, [], single)  # warm-up: engines loaded
            idle, behind, alone, shared = [], [], [], []
            for _ in range(args.rounds):
                idle.append(run(a, b, [], single)[1])
                alone.append(run(a, b, backlog, None)[0])
                a_total, b_latency = run(a, b, backlog, single)
                shared.append(a_total)
                behind.append(b_latency)
    finally:
        services.stop()
    pages = BACKLOG_DOCUMENTS * PAGES_PER_DOCUMENT
    b_idle, b_behind = statistics.median(idle), statistics.median(behind)
    a_alone, a_shared = statistics.median(alone), statistics.median(shared)
    page_time = a_alone * engines / pages
    backlog_text = f"{BACKLOG_DOCUMENTS} PDFs × {PAGES_PER_DOCUMENT} pages = {pages} pages"
    print(f"A: {backlog_text}; B: 1 page, {B_DELAY_SECONDS:.0f} s later")
    print(f"engines: {engines}  rounds: {args.rounds}  page-time (A alone × engines / pages): {page_time:.2f}s")
    print(f"B idle:     {b_idle:.2f}s  (all: {', '.join(f'{t:.2f}' for t in idle)})")
    print(f"B behind A: {b_behind:.2f}s  (all: {', '.join(f'{t:.2f}' for t in behind)})")
    print(f"  B's extra wait: {b_behind - b_idle:.2f}s = {(b_behind - b_idle) / page_time:.2f} page-times (target ≤ 2)")
    print(f"A alone:    {a_alone:.2f}s  (all: {', '.join(f'{t:.2f}' for t in alone)})")
    print(f"A with B:   {a_shared:.2f}s  (all: {', '.join(f'{t:.2f}' for t in shared)})")
    print(f"  A's total with B / alone: {a_shared / a_alone:.3f}  (target ≤ 1.05)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
