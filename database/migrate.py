"""Apply database/migrations/NNNN_*.sql in order, each once, recorded in schema_migrations.

Safe to run concurrently and repeatedly: an advisory lock serialises runners, and each file runs
in its own transaction together with its bookkeeping row. An applied file whose text has since
changed is reported, never silently re-run. Migrations run as the schema owner
(``MIGRATION_DATABASE_URL``); with ``DATABASE_ADMIN_URL`` (the local stack) the roles and the
database are prepared first and the app role granted its rows after (``database/roles.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from common.settings import effective_environ
from database.roles import DatabaseUrls, grant_app, prepare

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_LOCK_ID = 0x756E747874  # "untxt"


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def ensure_database(database_url: str) -> bool:
    """Create the URL's database if it does not exist (connecting to ``postgres``); True if created."""
    params = psycopg2.extensions.parse_dsn(database_url)
    name = params.get("dbname", "")
    if not name:
        raise ValueError("DATABASE_URL names no database")
    params["dbname"] = "postgres"
    conn = psycopg2.connect(**params)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    finally:
        conn.close()


def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; returns the versions applied by this call."""
    applied_now: list[str] = []
    conn = psycopg2.connect(database_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT version, checksum FROM schema_migrations")
            done = dict(cur.fetchall())
        for path in migration_files():
            version = path.stem
            script = path.read_text(encoding="utf-8")
            checksum = hashlib.sha256(script.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    raise RuntimeError(f"migration {version} changed after it was applied; add a new one instead")
                continue
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute(script)
                cur.execute("INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)", (version, checksum))
            conn.commit()
            conn.autocommit = True
            applied_now.append(version)
    finally:
        conn.close()
    return applied_now


def set_up(urls: DatabaseUrls, create_database: bool = False) -> list[str]:
    """Roles and database (when the superuser is known), migrations, the app's grants."""
    if urls.admin:
        prepare(urls)
    elif create_database and ensure_database(urls.owner):
        print("created database")
    applied = migrate(urls.owner)
    if urls.admin:
        grant_app(urls)
    return applied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="run the migrations with this URL (no role set-up)")
    parser.add_argument("--create-database", action="store_true", help="create the database first if missing")
    args = parser.parse_args(argv)
    try:
        urls = DatabaseUrls(app=args.database_url, owner=args.database_url) if args.database_url else None
        urls = urls or DatabaseUrls.from_env(effective_environ())
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    applied = set_up(urls, args.create_database)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
