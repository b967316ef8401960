"""The one home of every Redis key and S3 key name both services use."""

from __future__ import annotations

from datetime import datetime

# Redis: the job queue — one list per priority band, LPUSH by the API, moved from the right
# by workers, most urgent band first — plus a wake-up list for idle workers, the per-worker
# in-flight lists, the worker heartbeats, and the pub/sub channel for task events.
TASK_QUEUE = "ocr:task:queue"
PRIORITIES = range(1, 11)  # 10 is the most urgent
QUEUE_SIGNAL = f"{TASK_QUEUE}:signal"
QUEUE_SIGNAL_CAP = 64
PROCESSING_PREFIX = "ocr:task:processing"
WORKER_HEARTBEAT_PREFIX = "ocr:worker:heartbeat"
TASK_EVENTS_CHANNEL = "ocr:task:events"
# Revoked API key hashes (JSON list), so every API process drops them from its key cache.
AUTH_REVOKED_CHANNEL = "ocr:auth:revoked"
TASK_STATUS_PREFIX = "ocr:task:status"
TASK_STATUS_TTL_SECONDS = 24 * 3600
# Jobs that killed their worker too often; kept for inspection, never retried automatically.
DEAD_LETTER = "ocr:task:dead"
# Held by whichever worker runs the reaper/reconciler pass, so only one does at a time.
RECOVERY_LOCK = "ocr:worker:recovery-lock"


def queue_band(priority: int) -> str:
    return f"{TASK_QUEUE}:p{priority:02d}"


# Most urgent first: the order in which workers look for work.
QUEUE_BANDS = tuple(queue_band(p) for p in reversed(PRIORITIES))


def processing_list(worker_id: str) -> str:
    return f"{PROCESSING_PREFIX}:{worker_id}"


def worker_heartbeat(worker_id: str) -> str:
    return f"{WORKER_HEARTBEAT_PREFIX}:{worker_id}"


def task_status(task_id: str) -> str:
    return f"{TASK_STATUS_PREFIX}:{task_id}"


# S3: uploads and results share the user/month/file prefix so one file's objects sit together.
RESULT_HTML = "result.html"
RESULT_TXT = "result.txt"
RESULT_JSON = "result.json"
RESULT_FORMATS = {"html": RESULT_HTML, "txt": RESULT_TXT, "json": RESULT_JSON}


def _month(when: datetime) -> str:
    return when.strftime("%Y-%m")


def upload_key(user_id: str, file_id: str, safe_filename: str, when: datetime) -> str:
    return f"uploads/{user_id}/{_month(when)}/{file_id}/{safe_filename}"


def result_key(user_id: str, file_id: str, when: datetime, name: str = RESULT_HTML) -> str:
    return f"results/{user_id}/{_month(when)}/{file_id}/{name}"


def result_variant(html_key: str, fmt: str) -> str:
    """The key of another result format stored beside ``result.html``."""
    return html_key.rsplit("/", 1)[0] + "/" + RESULT_FORMATS[fmt]
