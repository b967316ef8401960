"""``python -m backend.users create EMAIL``: create (or reuse) a user and print a new API key.

The key is printed once, as the last line, and stored only as its hash.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg

from backend import db
from backend.auth import generate_api_key, hash_api_key
from common.settings import effective_environ


async def create_user_with_key(database_url: str, email: str) -> tuple[str, str]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        user_id = await db.ensure_user(pool, email)
        key = generate_api_key()
        await db.add_api_key(pool, user_id, hash_api_key(key), key[:12])
        return user_id, key
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create or reuse a user and issue a new API key")
    create.add_argument("email")
    args = parser.parse_args(argv)
    email = args.email.strip()
    if "@" not in email or len(email) > 320:
        parser.error("EMAIL must be an email address")
    user_id, key = asyncio.run(create_user_with_key(effective_environ()["DATABASE_URL"], email))
    print(f"user {user_id} ({email})")
    print("API key (shown once, store it now):")
    print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
