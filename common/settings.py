"""Configuration shared by the API, the worker and the scripts, read from the environment.

Standard variable names (DATABASE_URL, REDIS_URL, AWS_*, S3_*, KMS_KEY_ID) so that the same
process runs against the local stack or against managed services without code changes.
The local stack writes its generated credentials to an env file (``var/local.env``); values
already present in the process environment always win over that file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common.jobqueue.names import DEFAULT_PREFIX, check_prefix

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ENV_FILE = REPO_ROOT / "var" / "local.env"


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=value`` file (the subset of shell syntax the stack scripts write)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def effective_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The env file overlaid by the real environment (the environment wins)."""
    env = dict(os.environ if environ is None else environ)
    env_file = Path(env.get("UNTXT_ENV_FILE", str(DEFAULT_ENV_FILE)))
    merged = read_env_file(env_file)
    merged.update(env)
    return merged


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class WebhookSettings:
    """Delivery of task notifications to users' endpoints (backend/webhooks/)."""

    # Local development and tests only: allows http and loopback/private targets.
    allow_private_targets: bool = False
    max_per_user: int = 10
    timeout_seconds: float = 10.0
    # Retries: base * 2^(n-1) after the n-th failed attempt (with jitter), at most max_delay,
    # for up to window seconds after the event; then the delivery is given up.
    retry_base_seconds: float = 10.0
    retry_max_delay_seconds: float = 3600.0
    retry_window_seconds: float = 86400.0
    poll_seconds: float = 1.0
    concurrency: int = 16

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookSettings:
        return cls(
            allow_private_targets=_bool(env, "WEBHOOK_ALLOW_PRIVATE_TARGETS", False),
            max_per_user=_int(env, "WEBHOOK_MAX_PER_USER", 10),
            timeout_seconds=_float(env, "WEBHOOK_TIMEOUT_SECONDS", 10.0),
            retry_base_seconds=_float(env, "WEBHOOK_RETRY_BASE_SECONDS", 10.0),
            retry_max_delay_seconds=_float(env, "WEBHOOK_RETRY_MAX_DELAY_SECONDS", 3600.0),
            retry_window_seconds=_float(env, "WEBHOOK_RETRY_WINDOW_SECONDS", 86400.0),
            poll_seconds=_float(env, "WEBHOOK_POLL_SECONDS", 1.0),
            concurrency=_int(env, "WEBHOOK_CONCURRENCY", 16),
        )


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    s3_bucket: str
    kms_key_id: str
    s3_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    s3_addressing_style: str = "path"
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    health_host: str = "127.0.0.1"
    health_port: int = 5000
    worker_concurrency: int = 1
    worker_job_slots: int = 2
    max_upload_bytes: int = 50 * 1024 * 1024
    presign_expires_seconds: int = 3600
    rate_limit_per_minute: int = 600
    rate_limit_burst: int = 100
    ws_allowed_origins: tuple[str, ...] = ()
    ws_heartbeat_seconds: float = 20.0
    ws_outbox_size: int = 256
    max_image_pixels: int = 100_000_000
    max_pdf_pages: int = 200
    pdf_dpi: int = 300
    default_language: str = "eng"
    page_timeout_seconds: int = 120
    job_timeout_seconds: int = 1800
    heartbeat_ttl_seconds: int = 15
    recovery_interval_seconds: int = 10
    reconcile_grace_seconds: int = 30
    max_worker_crashes: int = 2
    tessdata_dir: str = "/usr/share/tesseract-ocr/5/tessdata"
    rotate_pages: bool = True
    rotate_pages_threshold: float = 5.0
    deskew: bool = True
    deskew_min_degrees: float = 2.0
    sandbox_memory_mb: int = 3072
    sandbox_isolate_network: bool = True
    work_dir: str = str(REPO_ROOT / "var" / "work")
    log_dir: str = str(REPO_ROOT / "logs")
    log_level: str = "INFO"
    redis_key_prefix: str = DEFAULT_PREFIX
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = effective_environ(environ)
        missing = [n for n in ("DATABASE_URL", "REDIS_URL", "S3_BUCKET", "KMS_KEY_ID") if not env.get(n)]
        if missing:
            raise ValueError(
                "missing configuration: "
                + ", ".join(missing)
                + " (run ./start_services.sh once to generate the local stack's env file)"
            )
        endpoint = env.get("S3_ENDPOINT_URL") or None
        return cls(
            database_url=env["DATABASE_URL"],
            redis_url=env["REDIS_URL"],
            s3_bucket=env["S3_BUCKET"],
            kms_key_id=env["KMS_KEY_ID"],
            s3_endpoint_url=endpoint,
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            # Local S3-compatible stores need path-style; AWS prefers virtual-hosted style.
            s3_addressing_style=env.get("S3_ADDRESSING_STYLE") or ("path" if endpoint else "virtual"),
            api_host=env.get("API_HOST", "127.0.0.1"),
            api_port=_int(env, "API_PORT", 8080),
            health_host=env.get("WORKER_HEALTH_HOST", "127.0.0.1"),
            health_port=_int(env, "WORKER_HEALTH_PORT", 5000),
            worker_concurrency=_int(env, "WORKER_CONCURRENCY", os.cpu_count() or 1),
            # Jobs in flight per process: one more than engines, so a job's download, decoding
            # and bookkeeping overlap other jobs' OCR; more only adds CPU contention (measured).
            worker_job_slots=_int(env, "WORKER_JOB_SLOTS", 1 + _int(env, "WORKER_CONCURRENCY", os.cpu_count() or 1)),
            max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES", 50 * 1024 * 1024),
            presign_expires_seconds=_int(env, "PRESIGN_EXPIRES_SECONDS", 3600),
            rate_limit_per_minute=_int(env, "RATE_LIMIT_UPLOADS_PER_MINUTE", 600),
            ws_allowed_origins=tuple(o.strip() for o in env.get("WS_ALLOWED_ORIGINS", "").split(",") if o.strip()),
            ws_heartbeat_seconds=float(env.get("WS_HEARTBEAT_SECONDS", "20")),
            ws_outbox_size=_int(env, "WS_OUTBOX_SIZE", 256),
            rate_limit_burst=_int(env, "RATE_LIMIT_UPLOADS_BURST", 100),
            max_image_pixels=_int(env, "MAX_IMAGE_PIXELS", 100_000_000),
            max_pdf_pages=_int(env, "MAX_PDF_PAGES", 200),
            pdf_dpi=_int(env, "PDF_DPI", 300),
            default_language=env.get("OCR_DEFAULT_LANGUAGE", "eng"),
            page_timeout_seconds=_int(env, "PAGE_TIMEOUT_SECONDS", 120),
            job_timeout_seconds=_int(env, "JOB_TIMEOUT_SECONDS", 1800),
            heartbeat_ttl_seconds=_int(env, "WORKER_HEARTBEAT_TTL_SECONDS", 15),
            recovery_interval_seconds=_int(env, "RECOVERY_INTERVAL_SECONDS", 10),
            reconcile_grace_seconds=_int(env, "RECONCILE_GRACE_SECONDS", 30),
            max_worker_crashes=_int(env, "MAX_WORKER_CRASHES", 2),
            tessdata_dir=env.get("TESSDATA_DIR", "/usr/share/tesseract-ocr/5/tessdata"),
            rotate_pages=_bool(env, "ROTATE_PAGES", True),
            rotate_pages_threshold=_float(env, "ROTATE_PAGES_THRESHOLD", 5.0),
            deskew=_bool(env, "DESKEW", True),
            deskew_min_degrees=_float(env, "DESKEW_MIN_DEGREES", 2.0),
            sandbox_memory_mb=_int(env, "SANDBOX_MEMORY_MB", 3072),
            sandbox_isolate_network=_bool(env, "SANDBOX_ISOLATE_NETWORK", True),
            work_dir=env.get("WORK_DIR", str(REPO_ROOT / "var" / "work")),
            log_dir=env.get("LOG_DIR", str(REPO_ROOT / "logs")),
            log_level=env.get("LOG_LEVEL", "INFO"),
            redis_key_prefix=check_prefix(env.get("REDIS_KEY_PREFIX") or DEFAULT_PREFIX),
            webhooks=WebhookSettings.from_env(env),
        )
