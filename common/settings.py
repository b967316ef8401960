"""Configuration shared by the API, the worker and the scripts, read from the environment.

Standard variable names (DATABASE_URL, REDIS_URL, AWS_*, S3_*, KMS_KEY_ID) so that the same
process runs against the local stack or against managed services without code changes.
The local stack writes its generated credentials to an env file (``var/local.env``); values
already present in the process environment always win over that file.

Declared with pydantic-settings: each field has one default, its type and range are checked,
and its variable is its alias (``AWS_REGION`` or ``AWS_DEFAULT_REGION``, say). An empty
variable counts as unset, as the stack's scripts write them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    Field,
    IPvAnyNetwork,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from common.jobqueue.names import DEFAULT_PREFIX, PRIORITIES, check_prefix

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ENV_FILE = REPO_ROOT / "var" / "local.env"
REQUIRED = ("DATABASE_URL", "REDIS_URL", "S3_BUCKET", "KMS_KEY_ID")
# The shortest lifetime of a result URL a caller may ask for (?expiresIn=), so
# PRESIGN_MAX_SECONDS is at least this.
PRESIGN_MIN_SECONDS = 60


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=value`` file (the subset of shell syntax the stack scripts write)."""
    if not path.is_file():
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def effective_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The env file overlaid by the real environment (the environment wins)."""
    env = dict(os.environ if environ is None else environ)
    env_file = Path(env.get("UNTXT_ENV_FILE", str(DEFAULT_ENV_FILE)))
    merged = read_env_file(env_file)
    merged.update(env)
    return merged


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``:
    the env file under the real environment (whose ``UNTXT_ENV_FILE`` names the file), or a
    test's own environment."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        # Set after the parent's __init__, which loads os.environ; the parent has no public
        # parameter for another mapping (pydantic-settings 2.16, pinned).
        # Case-insensitive, as pydantic-settings reads os.environ by default.
        self.env_vars = {key.lower(): value for key, value in environ.items() if value.strip()}


class _EnvSettings(BaseSettings):
    """Constructed with keywords (tests, tools), a settings class reads nothing else; from the
    environment only through ``from_env``, so one call site says where values come from."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True, validate_default=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    @classmethod
    def _from_mapping(cls, env: Mapping[str, str], **extra: Any) -> Self:
        try:
            return cls.model_validate({**_MappingSource(cls, env)(), **extra})
        except ValidationError as exc:
            problems = "; ".join(f"{cls._variable(e['loc'][0])}: {e['msg']}" for e in exc.errors() if e["loc"])
            raise ValueError(f"invalid configuration: {problems}") from None

    @classmethod
    def _variable(cls, key: object) -> str:
        """The environment variable behind an error's location (a field name or an alias)."""
        field = cls.model_fields.get(str(key))
        if field is None:
            return str(key)
        if isinstance(field.validation_alias, str):
            return field.validation_alias
        if isinstance(field.validation_alias, AliasChoices):
            return " or ".join(str(choice) for choice in field.validation_alias.choices)
        return (cls.model_config.get("env_prefix", "") + str(key)).upper()

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed, validated like the original."""
        return self.model_validate({**self.model_dump(), **changes})


class WebhookSettings(_EnvSettings):
    """Delivery of task notifications to users' endpoints (backend/webhooks/)."""

    model_config = SettingsConfigDict(env_prefix="WEBHOOK_")

    # Local development and tests only: allows http and loopback/private targets.
    allow_private_targets: bool = False
    max_per_user: int = Field(10, ge=0)
    timeout_seconds: float = Field(10.0, gt=0)
    # Retries: base * 2^(n-1) after the n-th failed attempt (with jitter), at most max_delay,
    # for up to window seconds after the event; then the delivery is given up (a window of 0:
    # one attempt, no retries).
    retry_base_seconds: float = Field(10.0, gt=0)
    retry_max_delay_seconds: float = Field(3600.0, gt=0)
    retry_window_seconds: float = Field(86400.0, ge=0)
    poll_seconds: float = Field(1.0, gt=0)
    # 0: this API process delivers nothing (the tests' in-process apps).
    concurrency: int = Field(16, ge=0)


def _env(name: str, *more: str) -> Any:
    return AliasChoices(name, *more) if more else name


class Settings(_EnvSettings):
    database_url: str = Field(validation_alias=_env("DATABASE_URL"))
    redis_url: str = Field(validation_alias=_env("REDIS_URL"))
    s3_bucket: str = Field(validation_alias=_env("S3_BUCKET"))
    kms_key_id: str = Field(validation_alias=_env("KMS_KEY_ID"))
    s3_endpoint_url: str | None = Field(None, validation_alias=_env("S3_ENDPOINT_URL"))
    aws_region: str = Field("us-east-1", validation_alias=_env("AWS_REGION", "AWS_DEFAULT_REGION"))
    aws_access_key_id: str | None = Field(None, validation_alias=_env("AWS_ACCESS_KEY_ID"))
    aws_secret_access_key: str | None = Field(None, validation_alias=_env("AWS_SECRET_ACCESS_KEY"))
    # Local S3-compatible stores need path-style; AWS prefers virtual-hosted style. Unset: path
    # with an endpoint, virtual without.
    s3_addressing_style: Literal["path", "virtual", "auto"] | None = Field(
        None, validation_alias=_env("S3_ADDRESSING_STYLE")
    )
    api_host: str = Field("127.0.0.1", validation_alias=_env("API_HOST"))
    api_port: int = Field(8080, ge=0, le=65535, validation_alias=_env("API_PORT"))
    health_host: str = Field("127.0.0.1", validation_alias=_env("WORKER_HEALTH_HOST"))
    health_port: int = Field(5000, ge=0, le=65535, validation_alias=_env("WORKER_HEALTH_PORT"))
    worker_concurrency: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, validation_alias=_env("WORKER_CONCURRENCY")
    )
    # Jobs in flight per process; unset: two more than engines. One more than engines lets a
    # job's download, decoding and bookkeeping overlap other jobs' OCR (more adds only CPU
    # contention, measured); one user holds at most all slots but one, so the last one stays
    # open for other users' jobs (worker/slotshare.py).
    worker_job_slots: int | None = Field(None, ge=1, validation_alias=_env("WORKER_JOB_SLOTS"))
    max_upload_bytes: int = Field(50 * 1024 * 1024, gt=0, validation_alias=_env("MAX_UPLOAD_BYTES"))
    presign_expires_seconds: int = Field(3600, gt=0, validation_alias=_env("PRESIGN_EXPIRES_SECONDS"))
    # The longest lifetime a caller may ask of a result URL (?expiresIn=): a leaked URL opens the
    # result to anyone until then. SigV4 itself allows 7 days.
    presign_max_seconds: int = Field(
        86400, ge=PRESIGN_MIN_SECONDS, le=7 * 86400, validation_alias=_env("PRESIGN_MAX_SECONDS")
    )
    rate_limit_per_minute: int = Field(600, gt=0, validation_alias=_env("RATE_LIMIT_UPLOADS_PER_MINUTE"))
    rate_limit_burst: int = Field(100, gt=0, validation_alias=_env("RATE_LIMIT_UPLOADS_BURST"))
    # Buckets one minute's worth deep (0: no limit): WebSocket handshakes per client address and
    # per key, subscribe messages per key (each sends a snapshot), invalid keys per client address
    # (each costs a database query).
    ws_connects_per_minute: int = Field(120, ge=0, validation_alias=_env("RATE_LIMIT_WS_CONNECTS_PER_MINUTE"))
    ws_subscribes_per_minute: int = Field(120, ge=0, validation_alias=_env("RATE_LIMIT_WS_SUBSCRIBES_PER_MINUTE"))
    auth_failures_per_minute: int = Field(60, ge=0, validation_alias=_env("RATE_LIMIT_AUTH_FAILURES_PER_MINUTE"))
    # Comma-separated in the environment.
    ws_allowed_origins: Annotated[tuple[str, ...], NoDecode] = Field((), validation_alias=_env("WS_ALLOWED_ORIGINS"))
    # Reverse proxies / load balancers whose X-Forwarded-For is believed (comma-separated
    # addresses or CIDRs). Without them every client behind a proxy shares the proxy's
    # per-address rate-limit buckets; with them, the nearest address a trusted hop reports.
    trusted_proxies: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = Field(
        (), validation_alias=_env("TRUSTED_PROXIES")
    )
    ws_heartbeat_seconds: float = Field(20.0, gt=0, validation_alias=_env("WS_HEARTBEAT_SECONDS"))
    ws_outbox_size: int = Field(256, ge=1, validation_alias=_env("WS_OUTBOX_SIZE"))
    max_image_pixels: int = Field(100_000_000, gt=0, validation_alias=_env("MAX_IMAGE_PIXELS"))
    max_pdf_pages: int = Field(200, gt=0, validation_alias=_env("MAX_PDF_PAGES"))
    pdf_dpi: int = Field(300, ge=72, le=1200, validation_alias=_env("PDF_DPI"))
    default_language: str = Field("eng", validation_alias=_env("OCR_DEFAULT_LANGUAGE"))
    # Priorities order a user's own jobs; between users the queue takes turns. A priority above
    # this, from a user an operator allowed it (scripts/set_limits.sh --express), takes the
    # express lane instead: ahead of every user's turn. 10: no express lane.
    priority_ceiling: int = Field(8, ge=PRIORITIES[0], le=PRIORITIES[-1], validation_alias=_env("PRIORITY_CEILING"))
    # Finished tasks (their rows, upload and results) are removed this many days after their
    # upload; 0 keeps everything. The API's sweep also drops idempotency keys past their 24 h.
    retention_days: int = Field(0, ge=0, validation_alias=_env("RETENTION_DAYS"))
    # Per-user quotas (0: none); a user's own limits (scripts/set_limits.sh) override them.
    quota_max_active_tasks: int = Field(1000, ge=0, validation_alias=_env("QUOTA_MAX_ACTIVE_TASKS"))
    quota_max_active_pages: int = Field(20_000, ge=0, validation_alias=_env("QUOTA_MAX_ACTIVE_PAGES"))
    quota_max_stored_bytes: int = Field(10 * 1024**3, ge=0, validation_alias=_env("QUOTA_MAX_STORED_BYTES"))
    page_timeout_seconds: int = Field(120, gt=0, validation_alias=_env("PAGE_TIMEOUT_SECONDS"))
    job_timeout_seconds: int = Field(1800, gt=0, validation_alias=_env("JOB_TIMEOUT_SECONDS"))
    heartbeat_ttl_seconds: int = Field(15, gt=0, validation_alias=_env("WORKER_HEARTBEAT_TTL_SECONDS"))
    recovery_interval_seconds: int = Field(10, gt=0, validation_alias=_env("RECOVERY_INTERVAL_SECONDS"))
    reconcile_grace_seconds: int = Field(30, ge=0, validation_alias=_env("RECONCILE_GRACE_SECONDS"))
    max_worker_crashes: int = Field(2, ge=1, validation_alias=_env("MAX_WORKER_CRASHES"))
    tessdata_dir: str = Field("/usr/share/tesseract-ocr/5/tessdata", validation_alias=_env("TESSDATA_DIR"))
    rotate_pages: bool = Field(True, validation_alias=_env("ROTATE_PAGES"))
    rotate_pages_threshold: float = Field(5.0, ge=0, validation_alias=_env("ROTATE_PAGES_THRESHOLD"))
    deskew: bool = Field(True, validation_alias=_env("DESKEW"))
    deskew_min_degrees: float = Field(2.0, ge=0, le=15, validation_alias=_env("DESKEW_MIN_DEGREES"))
    sandbox_memory_mb: int = Field(3072, ge=64, validation_alias=_env("SANDBOX_MEMORY_MB"))
    sandbox_isolate_network: bool = Field(True, validation_alias=_env("SANDBOX_ISOLATE_NETWORK"))
    work_dir: str = Field(str(REPO_ROOT / "var" / "work"), validation_alias=_env("WORK_DIR"))
    log_dir: str = Field(str(REPO_ROOT / "logs"), validation_alias=_env("LOG_DIR"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", validation_alias=_env("LOG_LEVEL")
    )
    redis_key_prefix: str = Field(DEFAULT_PREFIX, validation_alias=_env("REDIS_KEY_PREFIX"))
    # Tracing (common/tracing.py): OTLP over http/protobuf to this collector's base URL; "console"
    # writes spans to stderr instead; no endpoint (or "none"): off. The SDK reads the other
    # OTEL_* variables (headers, timeout, sampler) from the process environment itself.
    otlp_endpoint: str | None = Field(None, validation_alias=_env("OTEL_EXPORTER_OTLP_ENDPOINT"))
    traces_exporter: Literal["otlp", "console", "none"] | None = Field(
        None, validation_alias=_env("OTEL_TRACES_EXPORTER")
    )
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)

    @field_validator("ws_allowed_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_key_prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        return check_prefix(value)

    @field_validator("presign_max_seconds")
    @classmethod
    def _cap_above_default(cls, value: int, info: ValidationInfo) -> int:
        default = info.data.get("presign_expires_seconds")
        if default is not None and value < default:
            raise ValueError(f"must be at least PRESIGN_EXPIRES_SECONDS ({default})")
        return value

    @model_validator(mode="after")
    def _derived_defaults(self) -> Self:
        # Defaults that follow other fields; frozen, so set through object.__setattr__ once.
        if self.s3_addressing_style is None:
            object.__setattr__(self, "s3_addressing_style", "path" if self.s3_endpoint_url else "virtual")
        if self.worker_job_slots is None:
            object.__setattr__(self, "worker_job_slots", self.worker_concurrency + 2)
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = effective_environ(environ)
        missing = [name for name in REQUIRED if not env.get(name, "").strip()]
        if missing:
            raise ValueError(
                "missing configuration: "
                + ", ".join(missing)
                + " (run ./start_services.sh once to generate the local stack's env file)"
            )
        return cls._from_mapping(env, webhooks=WebhookSettings._from_mapping(env))
