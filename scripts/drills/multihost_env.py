"""Configuration of the multi-host drill (``scripts/drills/multihost.sh``).

``python -m scripts.drills.multihost_env STATE --stores-ip IP --api NAME=IP … --worker NAME …``
writes, under STATE only (never the checkout's ``var/``):

* ``stack.env`` — every credential and URL, the stores' on the stores host's address (what
  ``var/local.env`` is to the local stack: for the migrations, the bucket bootstrap, the checks);
* ``stores/kms/kms.env`` — the key service's SigV4 credentials;
* ``stores/seaweedfs/`` — SeaweedFS's configuration, listening on the stores host's address;
* ``hosts/NAME/app.env`` — one per API or worker host: the app's names only (no superuser, no
  KMS keys), plus that host's own listen address, log and work directories.

The credentials, role names and URL shapes are the local stack's own (``devstack.localenv``), so
the drill deploys what ``start_services.sh`` would, only spread over several hosts.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit, urlunsplit

from common.settings import read_env_file
from devstack import localenv, s3store
from devstack.weedsecurity import write_private

API_PORT = 8080
WORKER_HEALTH_PORT = 5000
# The URLs build_local_env points at 127.0.0.1; on several hosts they name the stores host.
_STORE_URLS = (
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "DATABASE_ADMIN_URL",
    "REDIS_URL",
    "S3_ENDPOINT_URL",
    "UNTXT_KMS_ENDPOINT",
)


def with_host(url: str, host: str) -> str:
    parts = urlsplit(url)
    credentials, _, address = parts.netloc.rpartition("@")
    port = address.rpartition(":")[2]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def stack_env(state: Path, stores_ip: str) -> dict[str, str]:
    """The local stack's credentials and URLs, generated into STATE, moved to the stores host."""
    # ensure_secrets writes the module's SECRETS_FILE: pointed at the drill's own file, so the
    # checkout's var/secrets.env is neither read nor written (patch.object fails loudly if the
    # name ever goes away, instead of silently writing there).
    with mock.patch.object(localenv, "SECRETS_FILE", state / "secrets.env"):
        secrets = localenv.ensure_secrets()
    env = localenv.build_local_env(secrets, True, True, True, dict(localenv.DEFAULT_PORTS))
    for name in _STORE_URLS:
        env[name] = with_host(env[name], stores_ip)
    return env


def write_env(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, "".join(f"{key}={value}\n" for key, value in values.items()).encode())


def app_env(env: dict[str, str], state: Path, name: str) -> dict[str, str]:
    """What every app host shares (localenv.APP_NAMES) and the per-host directories."""
    values = {key: env[key] for key in localenv.APP_NAMES if key in env}
    host_dir = state / "hosts" / name
    values |= {"LOG_DIR": str(host_dir / "logs"), "WORK_DIR": str(host_dir / "work")}
    return values


def api_env(env: dict[str, str], state: Path, name: str, ip: str) -> dict[str, str]:
    # The drill's webhook receiver runs on the client host, a private address.
    extra = {"API_HOST": ip, "API_PORT": str(API_PORT), "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"}
    return app_env(env, state, name) | extra


def worker_env(env: dict[str, str], state: Path, name: str) -> dict[str, str]:
    # Every interface: /health for probes from other hosts, and loopback for /status and /metrics,
    # which may answer local callers only. One engine per host: two worker hosts share this
    # machine's two cores with everything else.
    extra = {"WORKER_HEALTH_HOST": "0.0.0.0", "WORKER_HEALTH_PORT": str(WORKER_HEALTH_PORT), "WORKER_CONCURRENCY": "1"}
    return app_env(env, state, name) | extra


def write_seaweedfs_config(env_file: Path, config_dir: Path, stores_ip: str) -> None:
    """s3store's configuration, with every component on the stores host's address instead of
    loopback (the S3 port must be reachable from the other hosts)."""
    os.environ["UNTXT_ENV_FILE"] = str(env_file)
    s3store.write_config(config_dir)
    options = s3store.weed_options(read_env_file(env_file), config_dir)
    options |= {"ip": stores_ip, "ip.bind": stores_ip}
    write_private(config_dir / "weed.options", "".join(f"{k}={v}\n" for k, v in options.items()).encode())


def parse_hosts(pairs: list[str]) -> dict[str, str]:
    hosts = {}
    for pair in pairs:
        name, sep, ip = pair.partition("=")
        if not sep or not name or not ip:
            raise SystemExit(f"expected NAME=IP, got {pair!r}")
        hosts[name] = ip
    return hosts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("state", type=Path)
    parser.add_argument("--stores-ip", required=True)
    parser.add_argument("--api", action="append", default=[], metavar="NAME=IP")
    parser.add_argument("--worker", action="append", default=[], metavar="NAME")
    args = parser.parse_args(argv)
    state: Path = args.state.resolve()
    env = stack_env(state, args.stores_ip)
    write_env(state / "stack.env", env)
    write_env(state / "stores" / "kms" / "kms.env", {key: env[key] for key in localenv.KMS_NAMES})
    write_seaweedfs_config(state / "stack.env", state / "stores" / "seaweedfs", args.stores_ip)
    for name, ip in parse_hosts(args.api).items():
        write_env(state / "hosts" / name / "app.env", api_env(env, state, name, ip))
    for name in args.worker:
        write_env(state / "hosts" / name / "app.env", worker_env(env, state, name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
