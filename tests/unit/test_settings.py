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
