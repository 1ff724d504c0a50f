"""The running service: one store, the active model, and the single write path.

Every write of the API goes through :meth:`Runtime.apply`, which calls
``Ingestor.apply`` (facts, state, stage history and webhook outbox in one
transaction). The model is loaded once and swapped when a version is
activated, never per request. The writes of one process are serialised by a
lock, and the requests queued for it are applied together in one transaction
(``group_commit``): SQLite allows one writer at a time anyway, and queueing on
a lock is cheaper and fairer than busy-waiting on the database lock; on
PostgreSQL a group pays a transaction's fixed cost once instead of once per
request. Several processes (or hosts) still write to PostgreSQL side by side:
lead states are locked row by row. Each write checks, in its transaction, that
the version it applies is still the active one; when another process has
activated another, the write is applied again with that version's model
(``leadqual.store.versions``).

A routing file given by path is watched: when its content changes, the tick
loop loads it again (:meth:`Runtime.reload_routing`), as a restart with the
new file would, and keeps the previous one if the new one is refused.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError

from leadqual.api import facts as api_facts
from leadqual.api.errors import ApiError
from leadqual.api.group_commit import GroupCommit
from leadqual.api.heap import HeapFreezer
from leadqual.errors import ModelError, StoreBusyError
from leadqual.facts.types import Fact
from leadqual.model.load import EXAMPLE_MODEL, load_model, load_model_text, preset_path
from leadqual.model.schema import Model
from leadqual.routing.check import check_routing
from leadqual.routing.config import RoutingConfig, load_routing
from leadqual.service import ApplyResult, Ingestor, ModelChanged
from leadqual.service.ingest import Progress
from leadqual.service.versions import (
    Activation,
    Activator,
    activate_version,
    previous_version,
)
from leadqual.store import Store
from leadqual.store import store as store_module
from leadqual.store.versions import ModelVersion

log = logging.getLogger("leadqual.api")
T = TypeVar("T")

MODEL_CHECK_SECONDS = 1.0
"""How often, at most, a read looks up which model version is active (another process
may have activated one): a read follows an activation within this long."""

WRITE_ATTEMPTS = 3
"""Attempts of one write: a concurrent writer may insert the same id first (PostgreSQL),
or another process may have activated another model version; the write is then retried."""


def _waited_out_the_lock(error: Exception, waited: float) -> bool:
    """Whether ``error`` is SQLite's "database is locked" after its busy timeout (the
    attempt took that long): another process held the lock all that time, and trying again
    would wait as long. A lock refused at once (a checkpoint, a snapshot gone stale) is
    worth another attempt."""
    locked = isinstance(error, OperationalError) and store_module.database_locked(error)
    return locked and waited >= 0.9 * store_module.BUSY_TIMEOUT_MS / 1000


def _first_line(error: Exception) -> str:
    """An error's first line (SQLAlchemy's add the statement and a link below it)."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


class Runtime:
    """The store and the model every request of one app uses."""

    def __init__(
        self,
        store: Store,
        model: Model | None = None,
        routing: RoutingConfig | Path | None = None,
        heap: HeapFreezer | None = None,
    ) -> None:
        """``routing``: a routing config, or the path of a routing file, loaded here and
        loaded again when its content changes (:meth:`reload_routing`)."""
        self.store = store
        self.routing_file: Path | None = None
        self._routing_digest: str | None = None  # of the file in force
        self._routing_refused: set[tuple[str, int | None]] = set()  # content, version
        self._routing_unreadable = False  # reported once, until the file is back
        if isinstance(routing, Path):
            self.routing_file = routing
            self._routing_digest = _digest(routing)
            routing = load_routing(routing)
        self.routing: RoutingConfig | None = routing
        self.routing_loaded_at = datetime.now(UTC)
        self.heap = heap
        self._write_lock = threading.Lock()
        self._swap_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._model_checked_at = -MODEL_CHECK_SECONDS  # look up at the first read
        self._fit_checked: set[int] = set()  # the versions check_fit looked at
        if model is not None:
            self._ingestor = Ingestor(store, model, None, routing)
        else:
            version = ensure_active_model(store)
            self._ingestor = Ingestor(store, _load_version(version), version.id, routing)
        if routing is not None:  # a routing file that does not fit the model: ModelError
            _check_routing(routing, self._ingestor.model)
        # Activation rebuilds under the write lock: facts arriving meanwhile wait,
        # then are applied with the new model (never written as the old one's state).
        self.group_commit = GroupCommit(self._write_lock, self._apply)
        self.activator = Activator(
            store,
            on_activated=lambda v, m: self._use(m, v.id),
            write_lock=self._write_lock,
            routing=routing,
        )

    @property
    def ingestor(self) -> Ingestor:
        return self._ingestor

    @property
    def model(self) -> Model:
        return self._ingestor.model

    @property
    def model_version_id(self) -> int | None:
        return self._ingestor.model_version_id

    def apply(self, facts: Sequence[Fact]) -> ApplyResult:
        """Append facts and update everything they change, in one transaction, at now.

        Writes of this process take the write lock; requests queued for it are
        applied together (see ``group_commit``); each still gets its own result.
        """
        result = self.group_commit.submit(facts)
        if self.heap is not None:
            self.heap.wrote()
        return result

    def _apply(self, facts: Sequence[Fact]) -> ApplyResult:
        return self._write(
            lambda ingestor: ingestor.apply(
                facts, datetime.now(UTC), strict=True, check=api_facts.check
            ),
            also_retried=(IntegrityError, OperationalError),
        )

    def tick(self) -> ApplyResult:
        """Re-qualify the leads whose stage changes with time alone (decay, inactivity)."""
        with self._write_lock:
            result = self._write(lambda ingestor: ingestor.tick(datetime.now(UTC)))
            if not result.skipped and self.routing is not None:
                self.routing.mark_swept()  # reps no longer listed: their leads moved
            return result

    def _write(
        self,
        write: Callable[[Ingestor], ApplyResult],
        also_retried: tuple[type[Exception], ...] = (),
    ) -> ApplyResult:
        """``write`` with the current ingestor, up to :data:`WRITE_ATTEMPTS` times: again
        with the active version's model when another process activated one
        (``ModelChanged``), and again after an error of ``also_retried``."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            started = time.monotonic()
            try:
                return write(self._ingestor)
            except ModelChanged:
                if attempt == WRITE_ATTEMPTS:
                    raise
                self.refresh_model()
            except also_retried as error:
                if _waited_out_the_lock(error, time.monotonic() - started):  # once is enough
                    raise StoreBusyError from error
                if attempt == WRITE_ATTEMPTS:
                    raise
                log.warning("write attempt %d of %d failed, retrying: %s", attempt,
                            WRITE_ATTEMPTS, _first_line(error))  # fmt: skip
        raise AssertionError("unreachable")

    def activate(self, version_id: int) -> Activation:
        """Start activating a stored version: every lead is re-qualified with it in the
        background, and the switch commits with the rebuilt state (see ``Activator``)."""
        return self.activator.start(version_id)

    def rollback(self) -> Activation:
        """Start activating the version that was active before the current one."""
        return self.activator.start(previous_version(self.store).id)

    def model_in_force(self, *, fresh: bool = False) -> Model:
        """The active version's model, following an activation another process made since
        this one last wrote (reads check their filters against it, a profile its fields,
        and ``/healthz`` names it). The active version's id is looked up at most once per
        :data:`MODEL_CHECK_SECONDS` (``fresh``: now, as when that model refused a request,
        see :meth:`checked`); the model is loaded only when it changed."""
        if self._ingestor.model_version_id is not None:
            now = time.monotonic()
            if fresh or now - self._model_checked_at >= MODEL_CHECK_SECONDS:
                self._model_checked_at = now
                try:
                    active = self.store.active_model_version_id()
                except OperationalError:  # the database away: /healthz answers all the same
                    log.warning("could not look up the active model version", exc_info=True)
                    return self._ingestor.model
                if active is not None and active != self._ingestor.model_version_id:
                    self.refresh_model()
        return self._ingestor.model

    def checked(self, check: Callable[[Model], T]) -> T:
        """``check`` (a request's filters, a profile's fields) against the model in force;
        when that refuses it, again against the active version looked up now, if another
        process activated one within the last :data:`MODEL_CHECK_SECONDS` (a field or a
        stage only the new version has)."""
        model = self.model_in_force()
        try:
            return check(model)
        except ApiError:  # a 422 naming the field or filter
            if self.model_in_force(fresh=True) is model:
                raise
        return check(self._ingestor.model)

    def refresh_model(self) -> None:
        """Follow an activation made by another process (a write that finds another version
        active calls this, and so do the tick loop and :meth:`model_in_force`). One thread
        at a time: concurrent reads load the new version once."""
        with self._refresh_lock:
            active = self.store.active_model_version()
            if active is not None and active.id != self._ingestor.model_version_id:
                if self._ingestor.model_version_id is None:
                    return  # a model given in code stays until a version is activated here
                self._use(_load_version(active), active.id)

    def check_fit(self) -> None:
        """Say loudly, once per version, when the version in force does not fit the routing
        file in force (``leadqual versions activate`` in another process without
        ``--routing``): the store runs it all the same (every process must), but its leads
        routed to a team the file lacks get no rep, and a restart with this file is
        refused. The tick calls it after loading a changed routing file (a file made to
        fit the new version raises no alarm)."""
        model, version_id = self._ingestor.model, self._ingestor.model_version_id
        if self.routing is None or version_id is None or version_id in self._fit_checked:
            return
        self._fit_checked.add(version_id)
        try:
            check_routing(self.routing, model)
        except ModelError as error:
            log.error(
                "model %s version %s (version id %d), activated by another process, does not "
                "fit the routing file in force: leads it routes to what the file lacks get "
                "no rep, and serve refuses to start with this file; fix the routing file or "
                "roll back:\n%s", model.name, model.version, version_id, error,
            )  # fmt: skip

    def reload_routing(self) -> bool:
        """Load the routing file again if its content changed since it was last read;
        whether the new one is now in force.

        The new file is checked as at start (its own faults, then against the
        active model); a refused file is logged with every fault, once per
        content and model version, and the previous routing stays in force (a
        file refused for not fitting the model is tried again once another
        version is active: one edited for a version activated elsewhere). The switch waits for
        the write in progress (the write lock): every later write, tick and
        activation routes with the new file, as after a restart with it.
        """
        path = self.routing_file
        if path is None:
            return False
        try:
            digest = _digest(path)
        except OSError as error:
            if not self._routing_unreadable:  # reported once, until it is back
                self._routing_unreadable = True
                log.error("routing file %s cannot be read (%s); the previous one stays",
                          path, error)  # fmt: skip
            return False
        self._routing_unreadable = False
        if digest == self._routing_digest:
            return False
        if (digest, self._ingestor.model_version_id) in self._routing_refused:
            return False  # reported once per content and model version
        with self._write_lock:
            tried = (digest, self._ingestor.model_version_id)  # the model it is checked against
            try:
                config = load_routing(path)
                _check_routing(config, self._ingestor.model)
            except ModelError as error:
                self._routing_refused.add(tried)
                log.error("routing file %s changed but is refused; the previous one stays:\n%s",
                          path, error)  # fmt: skip
                return False
            except (OSError, ValueError, RecursionError) as error:  # not UTF-8, alias loops
                self._routing_refused.add(tried)
                log.error("routing file %s changed but cannot be read (%s: %s); the previous "
                          "one stays", path, type(error).__name__, error)  # fmt: skip
                return False
            self._routing_digest = digest
            self._routing_refused.clear()
            self.routing = config
            self.routing_loaded_at = datetime.now(UTC)
            self.activator.routing = config
            with self._swap_lock:  # the model as it is now (a read may have just followed one)
                model, version_id = self._ingestor.model, self._ingestor.model_version_id
                self._ingestor = Ingestor(self.store, model, version_id, config)
        log.info("routing file %s reloaded", path)
        return True

    def _use(self, model: Model, version_id: int | None) -> None:
        with self._swap_lock:
            self._ingestor = Ingestor(self.store, model, version_id, self.routing)
        log.info("model %s version %s is active", model.name, model.version)


def _check_routing(config: RoutingConfig, model: Model) -> None:
    """A routing file against the model it routes for, at start and at each reload:
    faults raise ``ModelError``; warnings are logged."""
    for warning in check_routing(config, model):
        log.warning("routing file: %s", warning)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_active_model(store: Store) -> ModelVersion:
    """The active model version; with none, the shipped example is registered and activated.

    This is what lets ``leadqual serve`` start on an empty database with no
    configuration at all.
    """
    active = store.active_model_version()
    if active is not None:
        return active
    text = preset_path(EXAMPLE_MODEL).read_text(encoding="utf-8")
    version = store.add_model_version(text)
    log.info("no active model: activated the shipped %s model", EXAMPLE_MODEL)
    return store.activate_model_version(version.id)


def model_source(source: str) -> tuple[Model, str]:
    """A model file (or a shipped name): its model, loaded first so that its faults are
    located (file:line), and its text (what a stored version keeps)."""
    model = load_model(source)
    path = Path(source)
    if not path.exists() and not path.suffix and preset_path(source).exists():
        path = preset_path(source)
    return model, path.read_text(encoding="utf-8")


def register_model(
    store: Store,
    source: str,
    *,
    as_of: datetime | None = None,
    routing: RoutingConfig | None = None,
    progress: Progress | None = None,
) -> tuple[ModelVersion, ApplyResult | None]:
    """Store a model file (or a shipped name) as a version and make it the active one.

    As an activation through the API does, every lead is re-qualified with it
    (as of ``as_of``, default now; with ``routing``, leads follow their new
    routing) and the switch commits with the rebuilt state: stage changes are
    recorded with cause ``model``. The version that is already active changes
    nothing: its result is None.
    """
    _, text = model_source(source)
    version = store.add_model_version(text)
    return activate_version(store, version.id, as_of, routing=routing, progress=progress)


def _load_version(version: ModelVersion) -> Model:
    return load_model_text(version.yaml, f"<model version {version.id}>")
