"""The operational store: open a database, append facts, read them back.

``Store.open()`` takes a SQLAlchemy URL (or ``LEADQUAL_DATABASE_URL``, or a
SQLite file, ``leadqual.db`` by default), upgrades the schema to the newest
revision and configures SQLite for a service: WAL (readers never wait for
the writer), foreign keys on, a busy timeout, ``synchronous=NORMAL``.

Writes happen in a :class:`Transaction`. ``store.append(facts)`` is one; a
caller that derives state from the facts (a qualification, a stage change,
an outbox row) opens its own so that everything commits or nothing does::

    with store.transaction() as tx:
        result = tx.append(facts)
        tx.save_qualifications(evaluate_all(...), model_version_id)
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary, WeakSet

from psycopg.pq import TransactionStatus
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, IntegrityError, OperationalError

from leadqual.engine.result import Qualification
from leadqual.errors import StoreError
from leadqual.facts.dataset import FactSet
from leadqual.facts.types import Fact
from leadqual.store import (
    changes,
    identity,
    keys,
    locks,
    migrate,
    reader,
    schema,
    state,
    versions,
)
from leadqual.store.statements import driver_errors
from leadqual.store.writer import AppendResult, append_facts

URL_VARIABLE = "LEADQUAL_DATABASE_URL"
DEFAULT_PATH = "leadqual.db"
BUSY_TIMEOUT_MS = 30_000
APPEND_ATTEMPTS = 3
"""A concurrent writer can insert the same id first (PostgreSQL): the batch is retried."""

_WRITE = "leadqual_write"
"""Execution option marking a connection whose transactions write (SQLite: BEGIN IMMEDIATE)."""


def database_url(url: str | None = None, path: str | Path = DEFAULT_PATH) -> URL:
    """The URL to use: ``url``, else ``$LEADQUAL_DATABASE_URL``, else a SQLite file at ``path``.

    ``postgresql://`` and ``postgres://`` URLs get the psycopg (3) driver.
    """
    text = url or os.environ.get(URL_VARIABLE) or f"sqlite:///{Path(path)}"
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://") :]
    parsed = make_url(text)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def database_locked(error: BaseException) -> bool:
    """Whether ``error`` is SQLite's "database is locked" (as SQLAlchemy's error or the
    driver's): another connection held the write lock."""
    return "database is locked" in str(getattr(error, "orig", None) or error)


def _switch_to_wal(cursor: Any) -> None:
    """Put the file in WAL mode, waiting out a concurrent opener.

    Switching the journal mode needs an exclusive lock, and SQLite reports
    "database is locked" at once (without calling the busy handler) when
    another connection is creating or switching the same file, so the switch is
    retried until the busy timeout has passed.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class _SqliteConnection(sqlite3.Connection):
    """sqlite3's connection, remembering the cursors it made while they live.

    An open statement on SQLite keeps its read snapshot after its transaction
    ends (Python's ``sqlite3`` does not reset statements on commit or rollback).
    A result left unread when its connection goes back to the pool (a loop that
    raised, an error whose traceback keeps the result alive) would leave that
    pooled connection on an old snapshot: its next reader would see old data,
    and its next writer would fail at once with ``SQLITE_BUSY_SNAPSHOT``. So the
    pool closes every cursor of a connection when it is checked in
    (:func:`_sqlite_engine`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursors: WeakSet[sqlite3.Cursor] = WeakSet()

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        made = super().cursor(*args, **kwargs)
        self.cursors.add(made)
        return made

    def close_cursors(self) -> None:
        """Close every cursor still alive: their statements let go of their snapshots."""
        for cursor in list(self.cursors):
            cursor.close()
        self.cursors.clear()


class _SqliteOptions:
    """What the SQLite connect hook sets on each new connection (changeable while open)."""

    def __init__(self) -> None:
        self.autocheckpoint = True


def _sqlite_engine(url: URL, options: _SqliteOptions) -> Engine:
    connect_args = {"timeout": BUSY_TIMEOUT_MS / 1000, "factory": _SqliteConnection}
    engine = create_engine(url, connect_args=connect_args)

    @event.listens_for(engine, "checkin")
    def close_cursors(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, _SqliteConnection):  # None once invalidated
            dbapi_connection.close_cursors()

    @event.listens_for(engine, "connect")
    def configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, not the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        for pragma in ("foreign_keys=ON", "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        if not options.autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection: Connection) -> None:
        # A writer takes the write lock up front: a deferred transaction that
        # later needs it could fail with "database is locked" despite the timeout.
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


PING_AFTER_IDLE_SECONDS = 1.0
"""A pooled server connection idle for longer than this is pinged before it is used."""


_NEVER_BY_ITSELF = 2**62
"""psycopg's ``prepare_threshold``: executions of one statement before psycopg prepares it
by itself (never, here); a statement run with ``prepare=True`` is prepared at once."""


def _server_engine(url: URL) -> Engine:
    """An engine for a database server (PostgreSQL) whose pool pings only idle connections.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip on every checkout, where a
    single event waits for the server only four times (see :func:`_pipelined`).
    A connection that was in use within the last second (a busy service's) is
    taken as it is; one idle for longer is pinged, and one that does not answer
    is replaced before it is used. If the server goes away within that second,
    the one transaction that takes the lost connection fails with
    ``OperationalError`` (writers retry it) and the pool drops the connection.
    """
    # psycopg prepares no statement by itself (a generic plan for a long IN list
    # compares every row with every id instead of hashing them); the store asks
    # for it where that cannot happen: its inserts and upserts (psycopg prepares
    # an executemany's statement) and its selects over a few ids
    # (statements.PREPARE_MAX_IDS).
    engine = create_engine(url, connect_args={"prepare_threshold": _NEVER_BY_ITSELF})
    dialect = engine.dialect
    event.listen(engine, "after_cursor_execute", _wait_in_pipeline)

    @event.listens_for(engine, "checkin")
    def idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE_SECONDS:
            return  # new, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # the pool throws this connection away and checks out another
                raise DisconnectionError(f"a pooled connection was lost: {error}") from error
            raise

    return engine


_PIPELINES: WeakKeyDictionary[Any, Any] = WeakKeyDictionary()
"""The open psycopg pipeline of each driver connection in one (see :func:`_pipelined`)."""


@contextmanager
def _pipelined(connection: Connection) -> Iterator[None]:
    """Run the transaction SQLAlchemy began on ``connection`` in PostgreSQL's pipeline
    mode, ``BEGIN`` and ``COMMIT`` included (elsewhere: no-op).

    A write transaction is a dozen short statements, and outside pipeline
    mode each one is a round trip: the writer, which holds the write lock,
    waits for the server about as long as it computes. In pipeline mode
    psycopg sends a statement without waiting for its answer and waits only
    when a result is needed. ``BEGIN`` is sent here with the first statement
    (psycopg's own would wait for its answer) and ``COMMIT`` with the last
    writes, in one wait for all their answers, after which SQLAlchemy's
    commit finds nothing left to do. Selects sent together (see
    ``statements.select_in_together``) share one wait.

    What each statement does is unchanged. A write's error (a duplicate key,
    say) is raised by the next statement that waits, at the latest by the
    ``COMMIT``, as SQLAlchemy's error for it; the transaction then rolls
    back, so nothing is written. Statements run through SQLAlchemy wait for
    their answer at once (see :func:`_wait_in_pipeline`).
    """
    if connection.dialect.name != "postgresql":
        yield
        return
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.autocommit = True  # psycopg sends no BEGIN (nor waits for it): the pipeline does
    try:
        with driver_errors(connection, "COMMIT", None, None), raw.pipeline() as pipeline:
            _PIPELINES[raw] = pipeline
            try:
                raw.execute("BEGIN")
                yield
                raw.execute("COMMIT")
            finally:
                _PIPELINES.pop(raw, None)
    finally:
        if not raw.broken:
            if raw.info.transaction_status != TransactionStatus.IDLE:
                raw.rollback()  # the block failed (SQLAlchemy's rollback then has nothing to do)
            raw.autocommit = False  # before anything else uses the pooled connection


def _wait_in_pipeline(
    _connection: Connection, cursor: Any, _statement: str, _parameters: Any, context: Any,
    _executemany: bool,
) -> None:  # fmt: skip
    """After SQLAlchemy executes a statement in a pipeline: wait for its answer, unless it
    is an insert that returns nothing (SQLAlchemy reads nothing of its result)."""
    pipeline = _PIPELINES.get(cursor.connection)
    if pipeline is None:
        return
    if context is not None and context.isinsert and not context.compiled.effective_returning:
        return
    pipeline.sync()


class Transaction:
    """One open write transaction: append facts and write the state they cause."""

    def __init__(self, connection: Connection, now: datetime) -> None:
        self.connection = connection
        self.now = now

    def append(self, facts: Sequence[Fact], *, strict: bool = False) -> AppendResult:
        """Append facts idempotently by id; see :func:`leadqual.store.writer.append_facts`."""
        return append_facts(self.connection, facts, self.now, strict=strict)

    def link_visitor(self, visitor_id: str, lead_id: str, at: datetime | None = None) -> bool:
        """Identify a visitor as a lead by hand; False when it was already identified."""
        locks.lock_identities(
            self.connection, locks.identity_keys(lead_ids=[lead_id], visitors=[visitor_id])
        )
        ident = identity.Identity(self.connection, self.now)
        ident.preload([lead_id], [], [visitor_id])
        linked = ident.link_visitor(visitor_id, lead_id, None, at or self.now)
        ident.attach_pending()
        return linked

    def merge_leads(self, lead_id: str, into: str, reason: str = "merged by hand") -> str | None:
        """Merge one lead into another; returns the id merged away (None: already one lead)."""
        locks.lock_identities(self.connection, locks.identity_keys(lead_ids=[lead_id, into]))
        ident = identity.Identity(self.connection, self.now)
        ident.preload([lead_id, into], [], [])
        return ident.merge(lead_id, into, reason)

    def save_qualifications(
        self, qualifications: Sequence[Qualification], model_version_id: int | None = None
    ) -> None:
        state.save_qualifications(self.connection, qualifications, model_version_id, self.now)

    def record_stage_change(self, **change: Any) -> None:
        """Append to the stage history (``lead_id, from_stage, to_stage, at, cause_kind, ...``)."""
        state.record_stage_change(self.connection, now=self.now, **change)

    def record_assignment(self, **assignment: Any) -> None:
        """Append an assignment (``lead_id, rule, at, team, rep, method, model_version_id``)."""
        state.record_assignment(self.connection, now=self.now, **assignment)

    def enqueue_webhooks(self, event_kind: str, payload: Mapping[str, Any]) -> int:
        return state.enqueue_webhooks(self.connection, event_kind, payload, self.now)


class Store:
    """A leadqual database: the fact log, identity, derived state, models and keys."""

    def __init__(self, engine: Engine, sqlite: _SqliteOptions | None = None) -> None:
        self.engine = engine
        self._sqlite = sqlite

    @classmethod
    def open(
        cls, url: str | None = None, path: str | Path = DEFAULT_PATH, *, create: bool = True
    ) -> Store:
        """Open (creating if needed) and upgrade the database named by ``url`` or ``path``.

        A store already at the newest revision is opened with a read alone, so opening
        does not wait for another process's write (a rebuild holding SQLite's lock).
        ``create=False``: a SQLite file that does not exist is a :class:`StoreError`
        instead of a new, empty store (a mistyped path, for a command that reads or
        changes an existing store)."""
        try:
            resolved = database_url(url, path)
        except ArgumentError as error:  # not a URL
            raise StoreError(f"not a database URL: {url!r} ({error})") from None
        where = resolved.render_as_string(hide_password=True)
        if resolved.get_backend_name() not in ("sqlite", "postgresql"):
            raise StoreError(f"leadqual's store runs on SQLite or PostgreSQL, not {where}")
        sqlite: _SqliteOptions | None = None
        if resolved.get_backend_name() == "sqlite":
            file = resolved.database
            if not create and file and file != ":memory:" and not Path(file).exists():
                raise StoreError(
                    f"no store at {file}: check the path, or give --database-url "
                    "(leadqual serve creates a store)"
                )
            sqlite = _SqliteOptions()
        try:
            engine = _sqlite_engine(resolved, sqlite) if sqlite else _server_engine(resolved)
        except (ArgumentError, ImportError) as error:  # an unknown dialect, a driver missing
            raise StoreError(f"cannot use the database {where}: {error}") from None
        store = cls(engine, sqlite)
        try:
            with store._read() as connection:
                current = migrate.is_current(connection)
                copied = current and changes.copied_from_elsewhere(connection)
            if not current or copied:
                with store._write() as connection:
                    migrate.upgrade(connection)  # takes the migration lock, even when current
                    changes.restamp_if_from_elsewhere(connection)
        except OperationalError as error:  # refused, unknown role, no such directory
            store.close()
            reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
            raise StoreError(f"cannot open the store at {where}: {reason}") from None
        except BaseException:
            store.close()  # its pooled connections too
            raise
        return store

    def close(self) -> None:
        self.engine.dispose()

    def checkpoint_in_background(self) -> bool:
        """Take WAL checkpoints off the write path (SQLite; False for PostgreSQL).

        By default the commit that takes SQLite's write-ahead log past 1,000
        pages copies them into the database file and syncs it, and that commit
        (and every writer queued behind it) waits several milliseconds. After
        this call no commit of this store checkpoints: the caller must call
        :meth:`checkpoint` regularly (the service does, every second), or the
        log grows until the store is closed.
        """
        if self._sqlite is None:
            return False
        self._sqlite.autocheckpoint = False
        self.engine.dispose()  # pooled connections were opened with auto-checkpoints
        return True

    def checkpoint(self) -> tuple[int, int, int] | None:
        """Copy the committed pages of SQLite's WAL into the database file, without
        waiting for (or blocking) readers and writers: ``PRAGMA wal_checkpoint(PASSIVE)``'s
        (busy, pages in the log, pages checkpointed). None for PostgreSQL."""
        if self._sqlite is None:
            return None
        connection = self.engine.raw_connection()  # autocommit: no transaction around it
        try:
            cursor = connection.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            row = cursor.fetchone()
            cursor.close()
        finally:
            connection.close()
        assert row is not None  # the pragma always answers one row
        busy, log, done = row
        return int(busy), int(log), int(done)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as connection:
            connection.execution_options(**{_WRITE: True})
            with connection.begin():
                yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction: commits when the block ends, rolls back if it raises.

        On PostgreSQL it runs in pipeline mode (see :func:`_pipelined`).
        """
        with self._write() as connection, _pipelined(connection):
            yield Transaction(connection, datetime.now(UTC))

    # -- facts -----------------------------------------------------------------------------

    def append(self, facts: Sequence[Fact], *, strict: bool = False) -> AppendResult:
        """Append a batch in its own transaction; all of it is written or none.

        The same id with the same payload is counted as a duplicate and
        skipped; with a different payload, ConflictError (nothing written).
        """
        for attempt in range(1, APPEND_ATTEMPTS + 1):
            try:
                with self.transaction() as tx:
                    return tx.append(facts, strict=strict)
            except (IntegrityError, OperationalError):
                # A concurrent writer stored some of these ids (or emails) first,
                # or a deadlock was broken: the retry sees its rows and decides again.
                if attempt == APPEND_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def load_facts(
        self, lead_ids: Collection[str] | None = None, *, resolve: bool = False
    ) -> FactSet:
        """Stored facts as sent (or, with ``resolve``, attributed to surviving leads)."""
        with self._read() as connection:
            return reader.load_facts(connection, lead_ids, resolve=resolve)

    def facts_for_leads(self, lead_ids: Collection[str]) -> FactSet:
        """What evaluating these leads needs: their facts by surviving lead, account profiles."""
        with self._read() as connection:
            return reader.load_facts(connection, lead_ids, resolve=True)

    def canonical_lead(self, lead_id: str) -> str:
        """The lead a lead id stands for now (itself unless merged)."""
        with self._read() as connection:
            return reader.canonical_ids(connection, [lead_id])[lead_id]

    def link_visitor(self, visitor_id: str, lead_id: str, at: datetime | None = None) -> bool:
        with self.transaction() as tx:
            return tx.link_visitor(visitor_id, lead_id, at)

    def merge_leads(self, lead_id: str, into: str, reason: str = "merged by hand") -> str | None:
        with self.transaction() as tx:
            return tx.merge_leads(lead_id, into, reason)

    # -- derived state ---------------------------------------------------------------------

    def lead_count(self) -> int:
        """How many leads have a state (merged ones do not): what a rebuild re-qualifies."""
        with self._read() as connection:
            query = select(func.count()).select_from(schema.lead_state)
            return int(connection.execute(query).scalar_one())

    def qualification(self, lead_id: str) -> state.StoredQualification:
        with self._read() as connection:
            return state.load_qualification(connection, self.canonical_lead(lead_id))

    def qualifications(
        self, *, stage: str | None = None, limit: int | None = None
    ) -> list[state.StoredQualification]:
        with self._read() as connection:
            return state.load_qualifications(connection, stage=stage, limit=limit)

    def stage_history(self, lead_id: str) -> list[state.StageChange]:
        with self._read() as connection:
            return state.load_stage_history(connection, lead_id)

    def assignments(self, lead_id: str) -> list[state.Assignment]:
        with self._read() as connection:
            return state.load_assignments(connection, lead_id)

    # -- model versions --------------------------------------------------------------------

    def add_model_version(self, yaml_text: str) -> versions.ModelVersion:
        """Store a model's YAML under its own name and version (validated first)."""
        with self.transaction() as tx:
            return versions.add_model_version(tx.connection, yaml_text, tx.now)

    def model_version(self, version_id: int) -> versions.ModelVersion:
        with self._read() as connection:
            return versions.get_model_version(connection, version_id)

    def model_versions(self) -> list[versions.ModelVersion]:
        with self._read() as connection:
            return versions.list_model_versions(connection)

    def active_model_version(self) -> versions.ModelVersion | None:
        with self._read() as connection:
            return versions.active_model_version(connection)

    def active_model_version_id(self) -> int | None:
        with self._read() as connection:
            return versions.active_model_version_id(connection)

    def activate_model_version(self, version_id: int) -> versions.ModelVersion:
        with self.transaction() as tx:
            return versions.activate_model_version(tx.connection, version_id, tx.now)

    # -- API keys --------------------------------------------------------------------------

    def create_api_key(self, name: str, scopes: Sequence[str]) -> tuple[keys.ApiKey, str]:
        """Create a key; the returned token is the only copy of the secret."""
        with self.transaction() as tx:
            return keys.create_api_key(tx.connection, name, scopes, tx.now)

    def verify_api_key(self, token: str) -> keys.ApiKey | None:
        with self._read() as connection:
            return keys.verify_api_key(connection, token)

    def revoke_api_key(self, key_id: int) -> None:
        with self.transaction() as tx:
            keys.revoke_api_key(tx.connection, key_id, tx.now)

    def api_keys(self) -> list[keys.ApiKey]:
        with self._read() as connection:
            return keys.list_api_keys(connection)
