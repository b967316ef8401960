"""User and key administration.

``python -m backend.users create EMAIL [--operator]`` creates (or reuses) a user and prints a new
API key once, as the last line; only its hash is stored. ``python -m backend.users revoke
--email EMAIL`` revokes every key of a user, ``--key KEY`` one key; revoked keys get 401 at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

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
    args = parser.parse_args(argv)
    settings = Settings.from_env()
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
