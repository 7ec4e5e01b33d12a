"""Engine creation and automatic, safe schema migration of the metadata store."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from fermion.errors import InvalidInputError, StorageError, first_line
from fermion.storage.tables import VERSION_TABLE

MIGRATIONS = Path(__file__).parent / "migrations"
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*=\s*(.+)$", re.MULTILINE)
# An arbitrary constant: the PostgreSQL advisory lock that serialises migrations.
_MIGRATION_LOCK = 7_310_452_001


def create_metadata_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys and a busy timeout."""
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise InvalidInputError(f"cannot use metadata URL {url!r}: {exc}") from exc
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision, once, even with concurrent openers.

    A database newer than this code (a revision it does not know) is refused rather than used.
    """
    if _at_head(engine):
        return
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    try:
        with engine.begin() as connection:
            _lock(connection)
            known = {rev.revision for rev in script.walk_revisions()}
            _adopt_legacy_version_table(connection, known)
            current = MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE}
            ).get_current_revision()
            if current == head:
                return
            if current is not None and current not in known:
                raise StorageError(
                    f"the metadata store is at schema revision {current}, newer than this "
                    "version of Fermion knows: upgrade Fermion"
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise StorageError(f"cannot open the metadata store: {first_line(exc)}") from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"metadata store migration failed: {first_line(exc)}") from exc


def head_revision(versions: Path = MIGRATIONS / "versions") -> str | None:
    """The newest revision of the migration scripts in `versions`, read from their text
    (alembic imports every script to learn it); None unless they form one plain chain."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        try:
            found = dict(_ASSIGNMENT.findall(path.read_text(encoding="utf-8")))
            revision = ast.literal_eval(found["revision"])
            parent = ast.literal_eval(found.get("down_revision", "None"))
        except (KeyError, ValueError, SyntaxError):
            return None
        if not isinstance(revision, str) or not isinstance(parent, str | None):
            return None  # a merge, or something alembic must sort out
        revisions.add(revision)
        if parent is not None:
            parents.add(parent)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _at_head(engine: Engine) -> bool:
    """Whether the store is at the newest revision already, from one read of the version
    table, the usual case: then there is nothing to lock or migrate, and alembic (a tenth of
    a second of imports, and every migration script imported) is not needed."""
    head = head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            found = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
            return list(found.scalars()) == [head]
    except SQLAlchemyError:  # no version table yet, or a store to be told apart below
        return False


def _adopt_legacy_version_table(connection: Connection, known: set[str]) -> None:
    """Workspaces made before the version table had its own name kept Fermion's revision in
    `alembic_version`; move it, so that table is left to Optuna."""
    from sqlalchemy import inspect

    tables = set(inspect(connection).get_table_names())
    if "alembic_version" not in tables or VERSION_TABLE in tables:
        return
    revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if revision not in known:
        return  # Optuna's own history: not ours to move
    connection.execute(
        text(f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
    )
    connection.execute(
        text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:rev)"), {"rev": revision}
    )
    connection.execute(text("DROP TABLE alembic_version"))


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    elif connection.dialect.name == "sqlite":
        # Take the write lock now so two openers cannot both see an empty database.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
