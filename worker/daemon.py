"""The worker process as an object, in the manner of arq's ``Worker``: built from settings,
``run()`` until SIGTERM/SIGINT (or ``start()`` … ``close()`` inside a test), nothing global."""

from __future__ import annotations

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
from flask import Flask
from PIL import Image
from werkzeug.serving import BaseWSGIServer, make_server

from common.jobqueue import JobQueue, RedisNames
from common.settings import Settings
from worker.db import TaskStore
from worker.health import create_app
from worker.loop import WorkerLoop
from worker.pool import OcrPool
from worker.processor import JobProcessor
from worker.recovery import Recovery
from worker.slotshare import SlotShare
from worker.state import WorkerState
from worker.storage import ObjectStore

log = logging.getLogger("untxt.worker")

SHUTDOWN_GRACE_SECONDS = 60.0


class Worker:
    """One worker process: ``settings.worker_job_slots`` job slots (threads, each with its own
    processing list and PostgreSQL connection) whose pages share an OCR pool of
    ``settings.worker_concurrency`` warm Tesseract engines; a heartbeat thread for the slots; a
    recovery thread (reaper + reconciler); optionally the Flask health app.

    ``serve_health``: listen on ``settings.health_host:health_port`` (tests build the app with
    ``health_app()`` instead). ``run_recovery``: run the recovery pass every
    ``settings.recovery_interval_seconds`` (tests may call ``recovery.run_once()`` themselves).
    """

    def __init__(self, settings: Settings, *, serve_health: bool = True, run_recovery: bool = True) -> None:
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.settings = settings.replace(work_dir=private_work_dir(settings.work_dir, self.worker_id))
        self.serve_health = serve_health
        self.run_recovery = run_recovery
        self.stop = threading.Event()
        self.state = WorkerState(self.worker_id, settings.worker_job_slots, settings.worker_concurrency)
        self.client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, health_check_interval=30)
        self.queue = JobQueue(self.client, RedisNames(settings.redis_key_prefix))
        self.store = ObjectStore(settings)
        self.pool = OcrPool(settings)
        self.slot_ids = [f"{self.worker_id}-{index}" for index in range(settings.worker_job_slots)]
        self.share = SlotShare(len(self.slot_ids))
        self.loops = [self._slot(slot_id) for slot_id in self.slot_ids]
        self.recovery = Recovery(
            self.queue,
            TaskStore(settings.database_url),
            settings.max_worker_crashes,
            settings.reconcile_grace_seconds,
            own_slots=frozenset(self.slot_ids),
        )
        self._health_db = TaskStore(settings.database_url)
        self._health_db_lock = threading.Lock()
        self._slots_done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: BaseWSGIServer | None = None
        self._closed = False

    def _slot(self, slot_id: str) -> WorkerLoop:
        tasks = TaskStore(self.settings.database_url)
        processor = JobProcessor(self.settings, slot_id, tasks, self.store, self.queue, self.pool, self.stop)
        return WorkerLoop(slot_id, self.queue, processor, self.state, self.stop, self.share)

    def health_app(self) -> Flask:
        def check_db() -> None:
            with self._health_db_lock:
                self._health_db.ping()

        def queue_report() -> dict[str, object]:
            return {"queues": self.queue.stats().lengths(), "liveWorkers": self.queue.live_slots()}

        checks = {"redis": self.client.ping, "database": check_db}
        return create_app(self.state, checks, queue_report, self.settings.job_timeout_seconds)

    def start(self) -> None:
        """Start every thread and return. Each slot's first heartbeat is written before any slot
        takes a job, so no reaper can take a live slot's job for a dead one's."""
        Image.MAX_IMAGE_PIXELS = self.settings.max_image_pixels
        self._beat()
        self._spawn(self._heartbeats, "heartbeat")
        if self.run_recovery:
            self._spawn(self._recover, "recovery")
        for loop in self.loops:
            loop.start()
        if self.serve_health:
            self._server = make_server(
                self.settings.health_host, self.settings.health_port, self.health_app(), threaded=True
            )
            self._spawn(self._server.serve_forever, "health")
        log.info(
            "worker started",
            extra={
                "worker_id": self.worker_id,
                "slots": len(self.loops),
                "engines": self.pool.size,
                "health": f"{self.settings.health_host}:{self.settings.health_port}" if self.serve_health else None,
            },
        )

    def run(self, handle_signals: bool = True) -> None:
        """Start, wait for a stop request (SIGTERM/SIGINT with ``handle_signals``), then close."""
        if handle_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self.start()
        while not self.stop.wait(1.0):
            pass
        self.close()

    def close(self) -> None:
        """No new jobs; a job in progress stops at its next page boundary and is handed back (one
        on its last page finishes); then the slots retire and everything is released."""
        if self._closed:
            return
        self._closed = True
        self.stop.set()
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        for loop in self.loops:
            if loop.is_alive():
                loop.join(max(0.0, deadline - time.monotonic()))
        self.pool.close()
        # Heartbeats stop only now: a job still finishing its page must not be reaped meanwhile.
        self._slots_done.set()
        for thread in self._threads:
            if thread.name != "health":
                thread.join(10)
        for slot_id in self.slot_ids:
            try:
                self.queue.retire(slot_id)  # anything left in our lists is reaped at once
            except Exception:  # Redis down: the heartbeats expire on their own
                log.warning("could not retire a slot", exc_info=True, extra={"slot_id": slot_id})
        if self._server is not None:
            self._server.shutdown()
        self.recovery.tasks.close()
        self._health_db.close()
        self.client.close()
        shutil.rmtree(self.settings.work_dir, ignore_errors=True)
        log.info("worker stopped", extra={"worker_id": self.worker_id})

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        self.stop.set()

    def _spawn(self, target: object, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _beat(self) -> None:
        for slot_id in self.slot_ids:
            self.queue.heartbeat(slot_id, self.settings.heartbeat_ttl_seconds, self.state.current(slot_id))

    def _heartbeats(self) -> None:
        """From their own thread: a slot busy with a 200-page PDF is alive, and a killed process
        stops every beat at once. Until the slots are done, not the stop request."""
        interval = max(0.5, self.settings.heartbeat_ttl_seconds / 3)
        while not self._slots_done.wait(interval):
            try:
                self._beat()
            except Exception:  # Redis down: retried at the next beat
                log.warning("could not refresh heartbeats", exc_info=True)

    def _recover(self) -> None:
        """Reaper + reconciler, right away (a restart after a crash) and then periodically."""
        # A killed worker may die holding the lock; it expires after a few passes' time. Two
        # passes overlapping (a slow one outliving its lock) are harmless: every move and every
        # requeue is conditional.
        lock_seconds = max(10, 3 * self.settings.recovery_interval_seconds)
        while True:
            try:
                done = self.recovery.run_once(lock_seconds)
                if any(done.values()):
                    log.warning("recovery pass moved jobs", extra=done)
            except Exception:  # a store down: the next pass tries again
                log.warning("recovery pass failed", exc_info=True)
            if self.stop.wait(self.settings.recovery_interval_seconds):
                return


def private_work_dir(work_dir: str, worker_id: str) -> str:
    """This worker's own temp folder under WORK_DIR, after removing those of dead processes.

    Several worker processes may share WORK_DIR; each only ever deletes folders whose owner
    (named by pid) is gone, i.e. what a crashed run left behind.
    """
    root = Path(work_dir)
    root.mkdir(parents=True, exist_ok=True)
    for child in root.iterdir():
        owner = child.name.removeprefix("worker-").split("-", 1)[0]
        if child.is_dir() and owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(child, ignore_errors=True)
    mine = root / f"worker-{os.getpid()}-{worker_id.rsplit('-', 1)[-1]}"
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
