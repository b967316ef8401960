from pathlib import Path

import pytest

from common.settings import Settings, read_env_file

REQUIRED = {"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x/0", "S3_BUCKET": "b", "KMS_KEY_ID": "k"}


def test_environment_wins_over_the_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / "local.env"
    env_file.write_text("S3_BUCKET=from-file\nAPI_PORT='9090'\n# comment\n")
    settings = Settings.from_env({**REQUIRED, "UNTXT_ENV_FILE": str(env_file)})
    assert settings.s3_bucket == "b"
    assert settings.api_port == 9090
    assert read_env_file(env_file)["API_PORT"] == "9090"


def test_missing_configuration_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="KMS_KEY_ID"):
        Settings.from_env({**REQUIRED, "KMS_KEY_ID": "", "UNTXT_ENV_FILE": str(tmp_path / "none")})


def test_addressing_style_follows_the_endpoint(tmp_path: Path) -> None:
    none = str(tmp_path / "none")
    assert Settings.from_env({**REQUIRED, "UNTXT_ENV_FILE": none}).s3_addressing_style == "virtual"
    local = Settings.from_env({**REQUIRED, "S3_ENDPOINT_URL": "http://127.0.0.1:1", "UNTXT_ENV_FILE": none})
    assert local.s3_addressing_style == "path"


def test_webhook_settings_have_safe_defaults_and_read_their_variables(tmp_path: Path) -> None:
    none = str(tmp_path / "none")
    defaults = Settings.from_env({**REQUIRED, "UNTXT_ENV_FILE": none}).webhooks
    assert defaults.allow_private_targets is False
    assert (defaults.retry_window_seconds, defaults.max_per_user) == (86400.0, 10)
    fast = Settings.from_env(
        {
            **REQUIRED,
            "UNTXT_ENV_FILE": none,
            "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "WEBHOOK_RETRY_BASE_SECONDS": "0.3",
            "WEBHOOK_CONCURRENCY": "0",
        }
    ).webhooks
    assert (fast.allow_private_targets, fast.retry_base_seconds, fast.concurrency) == (True, 0.3, 0)
    with pytest.raises(ValueError, match="WEBHOOK_ALLOW_PRIVATE_TARGETS"):
        Settings.from_env({**REQUIRED, "UNTXT_ENV_FILE": none, "WEBHOOK_ALLOW_PRIVATE_TARGETS": "maybe"})


def test_values_out_of_range_or_of_the_wrong_type_name_their_variable(tmp_path: Path) -> None:
    none = str(tmp_path / "none")
    with pytest.raises(ValueError, match="API_PORT"):
        Settings.from_env({**REQUIRED, "UNTXT_ENV_FILE": none, "API_PORT": "70000"})
    with pytest.raises(ValueError, match="WORKER_CONCURRENCY"):
        Settings.from_env({**REQUIRED, "UNTXT_ENV_FILE": none, "WORKER_CONCURRENCY": "0"})
    with pytest.raises(ValueError, match="LOG_LEVEL"):
        Settings.from_env({**REQUIRED, "UNTXT_ENV_FILE": none, "LOG_LEVEL": "loud"})
    with pytest.raises(ValueError, match="REDIS_KEY_PREFIX"):
        Settings.from_env({**REQUIRED, "UNTXT_ENV_FILE": none, "REDIS_KEY_PREFIX": "has space"})


def test_defaults_that_follow_other_settings_and_empty_variables_count_as_unset(tmp_path: Path) -> None:
    none = str(tmp_path / "none")
    settings = Settings.from_env({**REQUIRED, "UNTXT_ENV_FILE": none, "WORKER_CONCURRENCY": "3", "API_PORT": " "})
    assert (settings.worker_job_slots, settings.api_port) == (5, 8080)
    pinned = Settings.from_env({**REQUIRED, "UNTXT_ENV_FILE": none, "WORKER_CONCURRENCY": "3", "WORKER_JOB_SLOTS": "7"})
    assert pinned.worker_job_slots == 7
    origins = Settings.from_env(
        {**REQUIRED, "UNTXT_ENV_FILE": none, "WS_ALLOWED_ORIGINS": "https://a.example, http://b:8"}
    )
    assert origins.ws_allowed_origins == ("https://a.example", "http://b:8")


def test_replace_validates_like_construction(tmp_path: Path) -> None:
    settings = Settings.from_env({**REQUIRED, "UNTXT_ENV_FILE": str(tmp_path / "none")})
    assert settings.replace(max_pdf_pages=3).max_pdf_pages == 3
    assert settings.max_pdf_pages == 200
    with pytest.raises(ValueError, match="max_pdf_pages"):
        settings.replace(max_pdf_pages=0)


def test_the_presigned_lifetime_cap_is_one_day_and_never_below_the_default(tmp_path: Path) -> None:
    none = str(tmp_path / "none")
    assert Settings.from_env({**REQUIRED, "UNTXT_ENV_FILE": none}).presign_max_seconds == 86400
    with pytest.raises(ValueError, match="PRESIGN_EXPIRES_SECONDS"):
        Settings.from_env({**REQUIRED, "UNTXT_ENV_FILE": none, "PRESIGN_MAX_SECONDS": "600"})
    with pytest.raises(ValueError, match="PRESIGN_MAX_SECONDS"):
        Settings.from_env({**REQUIRED, "UNTXT_ENV_FILE": none, "PRESIGN_MAX_SECONDS": str(8 * 86400)})
