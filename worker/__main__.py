"""``python -m worker``: the OCR worker daemon with its Flask health app.

One process runs WORKER_JOB_SLOTS job threads (default: engines + 2), each with its own
processing list, whose pages share a pool of WORKER_CONCURRENCY warm Tesseract engines
(default: CPU cores); plus heartbeats, the recovery pass and the health app on
WORKER_HEALTH_PORT. SIGTERM or SIGINT stops it cleanly (see ``worker/daemon.py``).
"""

from __future__ import annotations

from common.logs import configure_logging
from common.settings import Settings
from common.tracing import configure_tracing
from worker.daemon import Worker


def main() -> int:
    settings = Settings.from_env()
    configure_logging("worker", settings.log_dir, settings.log_level)
    configure_tracing("worker", settings)
    Worker(settings).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
