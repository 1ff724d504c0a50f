"""Model versions: uploaded YAML kept verbatim, exactly one active at a time.

A version is identified by the model's own ``name`` and ``version`` fields,
so uploading the same text twice is a no-op and a different text under the
same name and version is a conflict. Activation switches the active flag in
one transaction; a partial unique index guarantees that no two versions are
ever active together, even under concurrent activations.

Several processes may write to one store, each with the model of the version
it knows to be active. So that none writes state for a version that is no
longer active, a write with a model asks, inside its transaction, which
version is active (:class:`ActiveVersionQuery`), and a switch of the active
version, or a rebuild of every lead's state, holds writes off until it
commits (:func:`hold_off_writes`). On PostgreSQL that is an advisory lock,
held shared by each write transaction and exclusively by a switch or
rebuild; SQLite's write transactions already exclude each other
(``BEGIN IMMEDIATE``). Either way a write sees the version that is active
when it commits, or fails and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from leadqual.errors import ConflictError, NotFoundError
from leadqual.model.load import load_model_text
from leadqual.store import locks, schema
from leadqual.store.statements import Sent, rows_of, send_select


@dataclass(frozen=True)
class ModelVersion:
    id: int
    name: str
    version: int
    yaml: str
    uploaded_at: datetime
    active: bool
    activated_at: datetime | None


def add_model_version(connection: Connection, yaml_text: str, now: datetime) -> ModelVersion:
    """Validate and store a model's YAML (raises ModelError when it does not load)."""
    model = load_model_text(yaml_text, "<uploaded model>")
    t = schema.model_versions
    query = select(t).where(t.c.name == model.name, t.c.version == model.version)
    existing = connection.execute(query).mappings().first()
    if existing is not None:
        if existing["yaml"] != yaml_text:
            raise ConflictError(
                f"model '{model.name}' version {model.version} is already stored with a "
                "different text; raise its version number"
            )
        return ModelVersion(**existing)
    new_id = connection.execute(
        t.insert().returning(t.c.id),
        {
            "name": model.name,
            "version": model.version,
            "yaml": yaml_text,
            "uploaded_at": now,
            "active": False,
        },
    ).scalar_one()
    return get_model_version(connection, int(new_id))


def get_model_version(connection: Connection, version_id: int) -> ModelVersion:
    t = schema.model_versions
    row = connection.execute(select(t).where(t.c.id == version_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no model version with id {version_id}")
    return ModelVersion(**row)


def list_model_versions(connection: Connection) -> list[ModelVersion]:
    t = schema.model_versions
    query = select(t).order_by(t.c.name, t.c.version)
    return [ModelVersion(**row) for row in connection.execute(query).mappings()]


def active_model_version(connection: Connection) -> ModelVersion | None:
    t = schema.model_versions
    row = connection.execute(select(t).where(t.c.active.is_(True))).mappings().first()
    return ModelVersion(**row) if row is not None else None


def active_model_version_id(connection: Connection) -> int | None:
    """The active version's id alone (None: none is active): what a read asks to see
    whether another process activated a version."""
    t = schema.model_versions
    return connection.execute(select(t.c.id).where(t.c.active.is_(True))).scalar()


def activate_model_version(connection: Connection, version_id: int, now: datetime) -> ModelVersion:
    """Make one version the active one; the previously active one is switched off first.

    Writes with a model wait until this transaction ends (:func:`hold_off_writes`).
    """
    hold_off_writes(connection)
    return switch_active_version(connection, version_id, now)


def switch_active_version(connection: Connection, version_id: int, now: datetime) -> ModelVersion:
    """:func:`activate_model_version` in a transaction that already holds off writes
    (a rebuild that activates the version it built, ``service.ingest.recompute``)."""
    t = schema.model_versions
    get_model_version(connection, version_id)
    connection.execute(update(t).where(t.c.active.is_(True)).values(active=False))
    connection.execute(update(t).where(t.c.id == version_id).values(active=True, activated_at=now))
    return get_model_version(connection, version_id)


def hold_off_writes(connection: Connection) -> None:
    """Make every write with a model (see :class:`ActiveVersionQuery`) wait until this
    transaction ends, once those under way have ended (PostgreSQL: the exclusive
    advisory lock; SQLite: a write transaction already excludes the others)."""
    locks.lock(connection, locks.VERSION_LOCK)


class ActiveVersionQuery:
    """Which version is active, asked at the start of a write transaction.

    On PostgreSQL it first takes the shared advisory lock (a switch or rebuild
    under way finishes first, and none starts until this transaction ends),
    then reads the active version in a statement of its own, so it sees a
    switch that committed while it waited. Both go out without waiting; the
    answer comes with the transaction's next wait (:meth:`active_id`).
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._sent: list[Sent] = []
        if connection.dialect.name == "postgresql":
            self._sent.append(send_select(connection, locks.shared_lock_sql(locks.VERSION_LOCK)))
        self._sent.append(send_select(connection, "SELECT id FROM model_versions WHERE active"))
        self._received = False
        self._active: int | None = None

    def active_id(self) -> int | None:
        """The id of the active version (None: none is active)."""
        if not self._received:
            rows = [rows_of(self.connection, sent) for sent in self._sent][-1]
            self._active = int(rows[0][0]) if rows else None
            self._received = True
        return self._active
