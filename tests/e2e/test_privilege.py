"""Least privilege of the stack as ./start_services.sh starts it: who each process runs as, who
may read what under var/ and logs/, what the app's database role may do, and that the scripts
parse their env files instead of running them.

Run as root (this machine, CI) each part must be its own system user; run as anyone else,
everything is that user. The API and the worker are started with the scripts when they are not
running (on free ports), and stopped again afterwards.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest

from common.settings import REPO_ROOT, Settings, effective_environ, read_env_file
from tests.support import free_port

pytestmark = pytest.mark.e2e
VAR, LOGS, RUN = REPO_ROOT / "var", REPO_ROOT / "logs", REPO_ROOT / "var" / "run"
AS_ROOT = os.geteuid() == 0
# The part, the user it runs as when started by root, its directory under var/ and its logs.
PARTS = {
    "postgres": ("untxt-pg", None, ["postgres.log"]),
    "redis": ("untxt-redis", "redis", ["redis.log", "redis.out"]),
    "kms": ("untxt-kms", "kms", ["kms.out"]),
    "s3": ("untxt-s3", "seaweedfs", ["s3.out"]),
    "worker": ("untxt-app", "work", ["worker.out", "worker.log"]),
    "api": ("untxt-app", "app", ["api.out", "api.log"]),
}


def _expected_user(part: str) -> str:
    return PARTS[part][0] if AS_ROOT else pwd.getpwuid(os.getuid()).pw_name


def _script(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(args, cwd=REPO_ROOT, check=True, timeout=300, env=env, stdout=subprocess.DEVNULL)


def _pid_alive(name: str) -> int | None:
    try:
        pid = int((RUN / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def _status(pid: int) -> dict[str, list[str]]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return fields


@pytest.fixture(scope="module")
def stack_pids(settings: Settings) -> Iterator[dict[str, int]]:
    state = read_env_file(RUN / "stack.env")
    if not all(state.get(flag) == "1" for flag in ("LOCAL_PG", "LOCAL_REDIS", "LOCAL_S3")):
        pytest.skip("needs the embedded stack of ./start_services.sh (every store local)")
    started = not (_pid_alive("api") and _pid_alive("worker"))
    if started:
        env = {**os.environ, "API_PORT": str(free_port()), "WORKER_HEALTH_PORT": str(free_port())}
        _script("./start_services.sh", env=env)
    # PostgreSQL's server process is found through a connection of ours: its backend.
    conn = psycopg2.connect(effective_environ()["DATABASE_URL"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pids = {"postgres": cur.fetchone()[0]}
    finally:
        conn.close()
    for name in ("redis", "kms", "s3", "worker", "api"):
        pid = _pid_alive(name)
        assert pid, f"{name} is not running"
        pids[name] = pid
    try:
        yield pids
    finally:
        if started:
            _script("./stop_services.sh", "--app-only")


def test_each_part_runs_as_its_own_unprivileged_user(stack_pids: dict[str, int]) -> None:
    uids = {}
    for part, pid in stack_pids.items():
        user = pwd.getpwnam(_expected_user(part))
        status = _status(pid)
        # Real, effective, saved and file-system ids: all the service's, none left at root.
        assert set(status["Uid"]) == {str(user.pw_uid)}, (part, status["Uid"])
        assert set(status["Gid"]) == {str(user.pw_gid)}, (part, status["Gid"])
        uids[part] = user.pw_uid
        if AS_ROOT:
            assert user.pw_uid != 0
            # Root's supplementary groups are gone: only the user's own group, if any.
            assert set(status["Groups"]) <= {str(user.pw_gid)}, (part, status["Groups"])
            assert int(status["CapEff"][0], 16) == 0, part
    if AS_ROOT:
        # Four stores/services and the app: five users, the API and the worker sharing one.
        assert len({uids[p] for p in ("postgres", "redis", "kms", "s3", "api")}) == 5
        assert uids["api"] == uids["worker"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _owner(path: Path) -> str:
    return pwd.getpwuid(path.lstat().st_uid).pw_name


def test_var_is_roots_and_each_part_keeps_to_its_own_directory(stack_pids: dict[str, int]) -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    for folder in (VAR, LOGS):
        assert _owner(folder) == me
        assert _mode(folder) & 0o022 == 0, folder  # nobody else may plant files here
    assert _owner(RUN) == me
    assert _mode(RUN) == 0o700
    for env_file in (VAR / "secrets.env", VAR / "local.env", RUN / "stack.env"):
        assert (_owner(env_file), _mode(env_file)) == (me, 0o600), env_file
    for part, (_, folder, logs) in PARTS.items():
        user = _expected_user(part)
        if folder:
            assert (_owner(VAR / folder), _mode(VAR / folder)) == (user, 0o700), folder
        for name in logs:
            assert (_owner(LOGS / name), _mode(LOGS / name)) == (user, 0o600), name
    for private in (VAR / "app" / "app.env", VAR / "kms" / "kms.env", VAR / "kms" / "keys.json"):
        assert _mode(private) == 0o600, private
    if (VAR / "postgres" / "PG_VERSION").exists():
        assert (_owner(VAR / "postgres"), _mode(VAR / "postgres")) == (_expected_user("postgres"), 0o700)


def test_files_the_stores_write_are_private(stack_pids: dict[str, int]) -> None:
    """umask 077: Redis's AOF and the filer's metadata are readable by their owner only."""
    written = [*(VAR / "redis").rglob("*"), *(VAR / "seaweedfs" / "data" / "filerldb2").rglob("*")]
    assert any(p.name.endswith(".aof") for p in written)
    assert any(p.name == "CURRENT" for p in written)  # the filer's leveldb is there to look at
    loose = [f"{_mode(p):o} {p}" for p in written if _mode(p) & 0o077]
    assert loose == []


def _read_as(user: str, path: Path) -> subprocess.CompletedProcess[bytes]:
    gid = pwd.getpwnam(user).pw_gid
    return subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={gid}", "--init-groups", "--", "cat", str(path)],
        capture_output=True,
        timeout=10,
    )


@pytest.mark.skipif(not AS_ROOT, reason="one user per part only when started as root")
def test_no_part_can_read_another_parts_secrets(stack_pids: dict[str, int]) -> None:
    keys, aof = VAR / "kms" / "keys.json", next((VAR / "redis").rglob("*.aof"))
    assert _read_as("untxt-kms", keys).returncode == 0  # the control: the probe itself works
    for user, path in [
        ("untxt-app", keys),  # the worker parses hostile files: it must not reach master keys
        ("untxt-app", VAR / "secrets.env"),
        ("untxt-app", VAR / "local.env"),  # holds the superuser's password
        ("untxt-kms", aof),
        ("untxt-redis", VAR / "app" / "app.env"),
        ("untxt-s3", VAR / "kms" / "kms.env"),
        ("untxt-pg", VAR / "seaweedfs" / "security.toml"),
    ]:
        denied = _read_as(user, path)
        assert denied.returncode != 0, (user, path)
        assert b"Permission denied" in denied.stderr, (user, path)


def test_env_files_are_parsed_never_run(stack_pids: dict[str, int], tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    stack_env = RUN / "stack.env"
    original = stack_env.read_bytes()
    try:
        stack_env.write_text(f"LOCAL_PG=1\n$(touch {marker})\ntouch {marker}\nLOCAL_REDIS=$(touch {marker})\n")
        out = subprocess.run(["./status.sh"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    finally:
        stack_env.write_bytes(original)
    assert not marker.exists()
    assert "redis      up" in out.stdout  # the bad value was ignored, not taken as "no local Redis"


@pytest.mark.parametrize("which", ["the tests' database", "the stack's database"])
def test_the_app_role_reads_and_writes_rows_and_nothing_more(settings: Settings, which: str) -> None:
    env = effective_environ()
    if "DATABASE_ADMIN_URL" not in env:
        pytest.skip("roles are set up only on the embedded stack's cluster")
    url = settings.database_url if which == "the tests' database" else env["DATABASE_URL"]
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = current_user"
            )
            assert cur.fetchone() == (False, False, False, False)
            cur.execute(
                "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
            )
            assert cur.fetchone()[0] == 0  # owns nothing
            cur.execute("INSERT INTO users (email) VALUES ('role-probe@example.com') RETURNING id")
            cur.execute("DELETE FROM users WHERE id = %s", (cur.fetchone()[0],))  # the control: DML works
            for statement in (
                "CREATE TABLE sneaky (i int)",
                "CREATE TEMP TABLE sneaky (i int)",
                "ALTER TABLE tasks ADD COLUMN sneaky int",
                "DROP TABLE idempotency_keys",
                "TRUNCATE users",
                "SELECT * FROM schema_migrations",
                "COPY users TO PROGRAM 'true'",
            ):
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(statement)
    finally:
        conn.close()
    owner = psycopg2.connect(env["MIGRATION_DATABASE_URL"])
    try:
        with owner.cursor() as cur:
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert cur.fetchone() == (False,)
            cur.execute("SELECT tableowner = current_user FROM pg_tables WHERE tablename = 'tasks'")
            assert cur.fetchone() == (True,)
    finally:
        owner.close()
