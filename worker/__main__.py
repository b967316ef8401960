"""``python -m worker``: the OCR worker daemon with its Flask health app.

One process runs WORKER_CONCURRENCY threads (default: CPU cores), each with its own warm
Tesseract engine and processing list, plus the health app on WORKER_HEALTH_PORT.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import threading
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
from worker.ocr import OcrEngine
from worker.processor import JobProcessor
from worker.queue import JobQueue, queue_lengths
from worker.state import WorkerState
from worker.storage import ObjectStore

log = logging.getLogger("untxt.worker")

SHUTDOWN_GRACE_SECONDS = 60.0


def clean_work_dir(work_dir: str) -> None:
    """Remove temp dirs a crashed run left behind (this process owns the folder while it runs)."""
    root = Path(work_dir)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    for child in root.iterdir():
        shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)


def main() -> int:
    settings = Settings.from_env()
    configure_logging("worker", settings.log_dir, settings.log_level)
    Image.MAX_IMAGE_PIXELS = settings.max_image_pixels
    clean_work_dir(settings.work_dir)

    host_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    state = WorkerState(host_id, settings.worker_concurrency)
    stop = threading.Event()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, health_check_interval=30)
    store = ObjectStore(settings)

    loops: list[WorkerLoop] = []
    for index in range(settings.worker_concurrency):
        slot_id = f"{host_id}-{index}"
        queue = JobQueue(client, slot_id)
        processor = JobProcessor(
            settings, slot_id, TaskStore(settings.database_url), store, queue, OcrEngine(settings.tessdata_dir)
        )
        loops.append(WorkerLoop(str(index), queue, processor, state, stop))

    health_db = TaskStore(settings.database_url)
    db_lock = threading.Lock()

    def check_db() -> None:
        with db_lock:
            health_db.ping()

    app = create_app(state, {"redis": client.ping, "database": check_db}, lambda: queue_lengths(client))
    server = make_server(settings.health_host, settings.health_port, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    for loop in loops:
        loop.start()
    log.info(
        "worker started",
        extra={"worker_id": host_id, "slots": len(loops), "health": f"{settings.health_host}:{settings.health_port}"},
    )
    while not stop.wait(1.0):
        pass
    for loop in loops:
        loop.join(SHUTDOWN_GRACE_SECONDS)
    server.shutdown()
    log.info("worker stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
