"""``python -m worker``: the OCR worker daemon with its Flask health app.

One process runs WORKER_CONCURRENCY job threads (default: CPU cores), each with its own
processing list, sharing a pool of as many warm Tesseract engines that read pages of any job;
plus the health app on WORKER_HEALTH_PORT.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from pathlib import Path
from types import FrameType

import redis
from PIL import Image
from werkzeug.serving import make_server

from common.logs import configure_logging
from common.settings import Settings
from worker.db import TaskStore
from worker.health import create_app
from worker.loop import WorkerLoop
from worker.ocr import OcrPool
from worker.processor import JobProcessor
from worker.queue import JobQueue, live_workers, queue_lengths
from worker.recovery import Recovery
from worker.state import WorkerState
from worker.storage import ObjectStore

log = logging.getLogger("untxt.worker")

SHUTDOWN_GRACE_SECONDS = 60.0


def private_work_dir(work_dir: str) -> str:
    """This process's own temp folder under WORK_DIR, after removing those of dead processes.

    Several worker processes may share WORK_DIR; each only ever deletes folders whose owner
    (named by pid) is gone, i.e. what a crashed run left behind.
    """
    root = Path(work_dir)
    root.mkdir(parents=True, exist_ok=True)
    for child in root.iterdir():
        owner = child.name.removeprefix("worker-")
        if child.is_dir() and owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(child, ignore_errors=True)
    mine = root / f"worker-{os.getpid()}"
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir(mode=0o700)
    return str(mine)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _heartbeats(loops: list[WorkerLoop], state: WorkerState, settings: Settings, done: threading.Event) -> None:
    """Until ``done`` (set once every loop has finished, not at the stop request: a job still
    finishing its page must not be reaped from under it)."""
    interval = max(0.5, settings.heartbeat_ttl_seconds / 3)
    while True:
        try:
            for loop in loops:
                loop.queue.heartbeat(settings.heartbeat_ttl_seconds, state.current(loop.slot))
        except Exception:
            log.warning("could not refresh heartbeats", exc_info=True)
        if done.wait(interval):
            return


def _recovery(recovery: Recovery, settings: Settings, stop: threading.Event) -> None:
    """Reaper + reconciler, right away (a restart after a crash) and then periodically."""
    while True:
        try:
            done = recovery.run_once()
            if any(done.values()):
                log.warning("recovery pass moved jobs", extra=done)
        except Exception:
            log.warning("recovery pass failed", exc_info=True)
        if stop.wait(settings.recovery_interval_seconds):
            return


def main() -> int:
    settings = Settings.from_env()
    configure_logging("worker", settings.log_dir, settings.log_level)
    Image.MAX_IMAGE_PIXELS = settings.max_image_pixels
    settings = dataclasses.replace(settings, work_dir=private_work_dir(settings.work_dir))

    host_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    state = WorkerState(host_id, settings.worker_job_slots, settings.worker_concurrency)
    stop = threading.Event()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, health_check_interval=30)
    store = ObjectStore(settings)

    pool = OcrPool(settings.tessdata_dir, settings.worker_concurrency)
    loops: list[WorkerLoop] = []
    for index in range(settings.worker_job_slots):
        slot_id = f"{host_id}-{index}"
        queue = JobQueue(client, slot_id)
        processor = JobProcessor(settings, slot_id, TaskStore(settings.database_url), store, queue, pool, stop)
        loops.append(WorkerLoop(str(index), queue, processor, state, stop))
    recovery = Recovery(
        client, TaskStore(settings.database_url), settings.max_worker_crashes, settings.reconcile_grace_seconds
    )

    health_db = TaskStore(settings.database_url)
    db_lock = threading.Lock()

    def check_db() -> None:
        with db_lock:
            health_db.ping()

    def queue_report() -> dict[str, object]:
        return {"queues": queue_lengths(client), "liveWorkers": live_workers(client)}

    app = create_app(state, {"redis": client.ping, "database": check_db}, queue_report, settings.job_timeout_seconds)
    server = make_server(settings.health_host, settings.health_port, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # Heartbeats come from their own thread: a loop busy with a 200-page PDF is alive, and a
    # killed process stops them all at once.
    loops_done = threading.Event()
    heartbeat = threading.Thread(
        target=_heartbeats, args=(loops, state, settings, loops_done), name="heartbeat", daemon=True
    )
    heartbeat.start()
    threading.Thread(target=_recovery, args=(recovery, settings, stop), name="recovery", daemon=True).start()
    for loop in loops:
        loop.start()
    log.info(
        "worker started",
        extra={"worker_id": host_id, "slots": len(loops), "health": f"{settings.health_host}:{settings.health_port}"},
    )
    while not stop.wait(1.0):
        pass
    deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
    for loop in loops:
        loop.join(max(0.0, deadline - time.monotonic()))
    pool.close()
    loops_done.set()
    heartbeat.join(10)
    # Stop heartbeating only now, and say so: jobs still in our lists are reaped at once.
    for loop in loops:
        with contextlib.suppress(Exception):
            loop.queue.retire()
    server.shutdown()
    shutil.rmtree(settings.work_dir, ignore_errors=True)
    log.info("worker stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
