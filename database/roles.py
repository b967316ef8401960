"""Who may do what in the database: a schema owner for migrations, a DML-only role for the app.

Three connection strings, each a role:

* ``DATABASE_URL`` — the API and the worker. May read and write the rows of the tables the
  migrations made (``SELECT, INSERT, UPDATE, DELETE``), and nothing else: it owns no object,
  cannot create tables (not even temporary ones) and is no superuser, so an SQL injection or a
  compromised worker cannot change the schema, or read files and run programs as the server's
  user (``COPY … PROGRAM`` needs a superuser).
* ``MIGRATION_DATABASE_URL`` — ``database/migrate.py``. Owns the database, its ``public``
  schema and every table; not a superuser either. Unset, migrations use ``DATABASE_URL`` (one
  role for everything, as a managed database with a single login has it).
* ``DATABASE_ADMIN_URL`` — the cluster's superuser, known only to the local stack (and root):
  used here to create the two roles and the database, and for nothing else.

Everything is idempotent and runs on every start: ``prepare`` before migrations (roles,
database, ownership of objects an older start made as the superuser, default privileges) and
``grant_app`` after them (rows of every table but ``schema_migrations``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

_APP_TABLE_PRIVILEGES = sql.SQL("SELECT, INSERT, UPDATE, DELETE")


@dataclass(frozen=True)
class DatabaseUrls:
    app: str
    owner: str
    admin: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DatabaseUrls:
        app = env.get("DATABASE_URL", "")
        if not app:
            raise ValueError("DATABASE_URL is not set")
        return cls(app=app, owner=env.get("MIGRATION_DATABASE_URL") or app, admin=env.get("DATABASE_ADMIN_URL") or None)

    def for_database(self, name: str) -> DatabaseUrls:
        """The same roles on another database of the same cluster (the tests' own)."""
        return replace(
            self,
            app=with_database(self.app, name),
            owner=with_database(self.owner, name),
            admin=with_database(self.admin, name) if self.admin else None,
        )

    @property
    def database(self) -> str:
        return _params(self.app)["dbname"]


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _params(url: str) -> dict[str, str]:
    params = psycopg2.extensions.parse_dsn(url)
    if not params.get("dbname") or not params.get("user"):
        raise ValueError("a database URL must name its user and database")
    return params


def _connect(url: str, database: str | None = None) -> psycopg2.extensions.connection:
    params = _params(url)
    if database:
        params["dbname"] = database
    conn = psycopg2.connect(**params)
    conn.autocommit = True
    return conn


def prepare(urls: DatabaseUrls) -> None:
    """With the superuser: both roles (password from their URLs), the database owned by the
    owner role, and what the app role may reach. Needs ``urls.admin``."""
    if not urls.admin:
        raise ValueError("preparing roles needs DATABASE_ADMIN_URL")
    owner, app = _params(urls.owner), _params(urls.app)
    database = sql.Identifier(urls.database)
    owner_role, app_role = sql.Identifier(owner["user"]), sql.Identifier(app["user"])
    conn = _connect(urls.admin, "postgres")
    try:
        with conn.cursor() as cur:
            for params in (owner, app):
                _ensure_login_role(cur, params["user"], params.get("password", ""))
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (urls.database,))
            if cur.fetchone():
                cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, owner_role))
            else:
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, owner_role))
            # Not even CONNECT or TEMP for other roles of the cluster (PUBLIC has both by default).
            cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
            cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, app_role))
    finally:
        conn.close()
    conn = _connect(urls.admin, urls.database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(owner_role))
            cur.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(app_role))
            _hand_objects_to(cur, owner["user"])
            cur.execute(
                sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT {} ON TABLES TO {}").format(
                    owner_role, _APP_TABLE_PRIVILEGES, app_role
                )
            )
            cur.execute(
                sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT USAGE ON SEQUENCES TO {}").format(
                    owner_role, app_role
                )
            )
    finally:
        conn.close()


def grant_app(urls: DatabaseUrls) -> None:
    """With the owner, after migrations: rows of every table (tables made before the default
    privileges existed included), but not the migrations' own bookkeeping."""
    app_role = sql.Identifier(_params(urls.app)["user"])
    conn = _connect(urls.owner)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA public TO {}").format(_APP_TABLE_PRIVILEGES, app_role)
            )
            cur.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(app_role))
            cur.execute(sql.SQL("REVOKE ALL ON TABLE schema_migrations FROM {}").format(app_role))
    finally:
        conn.close()


def _ensure_login_role(cur: psycopg2.extensions.cursor, name: str, password: str) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
    verb = "ALTER" if cur.fetchone() else "CREATE"
    # Stated every time, so a role some earlier hand-made setup gave more is brought back down.
    cur.execute(
        sql.SQL(
            verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}"
        ).format(sql.Identifier(name), sql.Literal(password))
    )


def _hand_objects_to(cur: psycopg2.extensions.cursor, owner: str) -> None:
    """Tables, sequences, views and functions of ``public`` that an older start created as the
    superuser become the owner's (``REASSIGN OWNED`` refuses the bootstrap superuser)."""
    cur.execute(
        """
        SELECT format('ALTER %%s %%s OWNER TO %%I',
                      CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END,
                      c.oid::regclass, %s)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'S')
          AND pg_get_userbyid(c.relowner) <> %s
          -- a sequence owned by a column moves with its table
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.objid = c.oid AND d.deptype IN ('a', 'i') AND c.relkind = 'S')
        UNION ALL
        SELECT format('ALTER FUNCTION %%s OWNER TO %%I', p.oid::regprocedure, %s)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> %s
        """,
        (owner, owner, owner, owner),
    )
    for (statement,) in cur.fetchall():
        cur.execute(statement)
