"""User and key administration.

``python -m backend.users create EMAIL [--operator]`` creates (or reuses) a user and prints a new
API key once, as the last line; only its hash is stored. ``python -m backend.users revoke
--email EMAIL`` revokes every key of a user, ``--key KEY`` one key; revoked keys get 401 at once.
``python -m backend.users limits EMAIL [--max-tasks N] [--max-pages N] [--max-bytes N]
[--express | --no-express]`` sets a user's own quotas (``default``: the deployment's) and the
express-lane grant, and prints them with the user's usage. ``python -m backend.users
reset-crashes TASK_ID`` lets a task that crashed its readers be retried as if it never had.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from backend import db
from backend.auth import generate_api_key, hash_api_key
from common.jobqueue import RedisNames
from common.settings import Settings


async def create_user_with_key(database_url: str, email: str, operator: bool = False) -> tuple[str, str]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        user_id = await db.ensure_user(pool, email)
        if operator:
            await db.set_operator(pool, user_id)
        key = generate_api_key()
        await db.add_api_key(pool, user_id, hash_api_key(key), key[:12])
        return user_id, key
    finally:
        await pool.close()


async def revoke(settings: Settings, email: str | None, key: str | None) -> int:
    """Revoke in PostgreSQL, then tell every API process to forget the keys at once."""
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        hashes = await db.revoke_keys(pool, email, hash_api_key(key) if key else None)
    finally:
        await pool.close()
    if hashes:
        client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5)
        try:
            await client.publish(RedisNames(settings.redis_key_prefix).auth_revoked, json.dumps(hashes))
        finally:
            await client.aclose()
    return len(hashes)


def _limit(raw: str) -> int | None:
    if raw == "default":
        return None
    value = int(raw)
    if value < 0:
        raise ValueError(raw)
    return value


async def _with_pool(settings: Settings, work: Any) -> Any:
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        return await work(pool)
    finally:
        await pool.close()


def _print_limits(limits: db.UserLimits, settings: Settings) -> None:
    defaults = dict(zip(db.LIMIT_COLUMNS, db.quota_settings(settings).values(), strict=True))
    print(f"user {limits.email}: express lane {'allowed' if limits.express_allowed else 'not allowed'}")
    for column, usage in zip(db.LIMIT_COLUMNS, limits.usage.items(), strict=True):
        own = limits.own[column]
        shown = f"{own}" if own is not None else f"{defaults[column]} (default)"
        print(f"  {usage[0]}: {usage[1]} of {shown}  (0 = no limit)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create or reuse a user and issue a new API key")
    create.add_argument("email")
    create.add_argument("--operator", action="store_true", help="may see global queue figures")
    revoke_cmd = sub.add_parser("revoke", help="revoke a user's keys (--email) or one key (--key)")
    target = revoke_cmd.add_mutually_exclusive_group(required=True)
    target.add_argument("--email")
    target.add_argument("--key")
    limits_cmd = sub.add_parser("limits", help="set a user's quotas and express-lane grant, and show them")
    limits_cmd.add_argument("email")
    for flag, column in zip(("--max-tasks", "--max-pages", "--max-bytes"), db.LIMIT_COLUMNS, strict=True):
        # Absent unless given: only the limits named change.
        limits_cmd.add_argument(flag, dest=column, type=_limit, metavar="N|default", default=argparse.SUPPRESS)
    grant = limits_cmd.add_mutually_exclusive_group()
    grant.add_argument("--express", dest="express", action="store_true", default=None)
    grant.add_argument("--no-express", dest="express", action="store_false")
    reset = sub.add_parser("reset-crashes", help="let a task that crashed its readers be retried afresh")
    reset.add_argument("task_id", type=uuid.UUID)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.command == "limits":
        given = {column: getattr(args, column) for column in db.LIMIT_COLUMNS if hasattr(args, column)}
        limits = asyncio.run(
            _with_pool(settings, lambda pool: db.set_limits(pool, args.email.strip(), given, args.express))
        )
        if limits is None:
            print(f"no user {args.email}", file=sys.stderr)
            return 1
        _print_limits(limits, settings)
        return 0
    if args.command == "reset-crashes":
        found = asyncio.run(_with_pool(settings, lambda pool: db.reset_crashes(pool, str(args.task_id))))
        print("crash count reset" if found else f"no task {args.task_id}")
        return 0 if found else 1
    if args.command == "revoke":
        count = asyncio.run(revoke(settings, args.email, args.key))
        print(f"revoked {count} key(s)")
        return 0 if count else 1
    email = args.email.strip()
    if "@" not in email or len(email) > 320:
        parser.error("EMAIL must be an email address")
    user_id, key = asyncio.run(create_user_with_key(settings.database_url, email, args.operator))
    print(f"user {user_id} ({email})")
    print("API key (shown once, store it now):")
    print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
