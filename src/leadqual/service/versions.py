"""Model versions in the live service: diff, activate in the background, roll back.

Activating a version rebuilds every lead's state and qualification with the
new model (``recompute(..., activate=True)``) and switches the active version
**in the same transaction**: until it commits, every reader sees the old
version's qualifications; after, the new ones; never a mix. The rebuild runs
in a background thread so an API call can return at once, and reports its
progress (leads qualified so far, of how many). One activation runs at a
time. Rolling back is activating the version that was active before.
:func:`activate_version` does the same in the foreground, for the command line
(``leadqual versions activate``, ``serve --model``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from leadqual.errors import ConflictError, NotFoundError
from leadqual.model.diff import Change, diff_model_texts
from leadqual.model.load import load_model_text
from leadqual.model.schema import Model
from leadqual.routing.check import check_routing
from leadqual.routing.config import RoutingConfig
from leadqual.service.ingest import ApplyResult, Progress, recompute
from leadqual.store import Store
from leadqual.store.versions import ModelVersion

log = logging.getLogger(__name__)

ActivationState = Literal["running", "done", "failed"]


@dataclass(frozen=True)
class Activation:
    """The progress of one activation: ``done`` of ``total`` leads qualified so far."""

    version_id: int
    state: ActivationState
    started_at: datetime
    done: int = 0
    total: int = 0
    stage_changes: int = 0
    finished_at: datetime | None = None
    error: str | None = None


def version_model(version: ModelVersion) -> Model:
    return load_model_text(version.yaml, f"<model version {version.id}>")


def diff_versions(store: Store, old_id: int, new_id: int) -> list[Change]:
    """Rule-by-rule changes from stored version ``old_id`` to ``new_id``."""
    old, new = store.model_version(old_id), store.model_version(new_id)
    return diff_model_texts(old.yaml, new.yaml, f"version {old.id}", f"version {new.id}")


def previous_version(store: Store) -> ModelVersion:
    """The version activated before the active one (what a rollback returns to)."""
    versions = [v for v in store.model_versions() if v.activated_at is not None]
    active = next((v for v in versions if v.active), None)
    if active is None:
        raise NotFoundError("no model version is active, so there is nothing to roll back")
    earlier = [v for v in versions if not v.active]
    if not earlier:
        raise NotFoundError(
            f"version {active.id} is the only one ever activated: nothing to roll back to"
        )
    return max(earlier, key=lambda v: (v.activated_at, v.id))


def activate_version(
    store: Store,
    version_id: int,
    as_of: datetime | None = None,
    *,
    routing: RoutingConfig | None = None,
    progress: Progress | None = None,
) -> tuple[ModelVersion, ApplyResult | None]:
    """Make a stored version the active one in the foreground, as an activation through
    the API does: every lead is re-qualified with it (as of ``as_of``, default now; with
    ``routing``, leads follow their new routing) and the switch commits with the rebuilt
    state, stage changes recorded with cause ``model``. The rebuild holds writes off
    (``store.versions.hold_off_writes``): other processes' writes wait for it, then
    follow the new version. The version that is already active changes nothing: its
    result is None. The caller checks a routing file against the version's model first.
    """
    version = store.model_version(version_id)
    if version.active:
        return version, None
    result = recompute(
        store, version_model(version), as_of or datetime.now(UTC), version.id, activate=True,
        progress=progress, routing=routing,
    )  # fmt: skip
    return store.model_version(version.id), result


class Activator:
    """Activates model versions in a background thread, one at a time, with progress.

    ``on_activated`` is called with the version and its model after the
    switch has committed (the service swaps its in-process model there).
    ``write_lock``, when given, is held for the rebuild, so that facts
    arriving meanwhile wait and are then applied with the new model instead
    of writing state for the old one.
    """

    def __init__(
        self,
        store: Store,
        on_activated: Callable[[ModelVersion, Model], None] | None = None,
        write_lock: threading.Lock | threading.RLock | None = None,
        routing: RoutingConfig | None = None,
    ) -> None:
        self.store = store
        self.on_activated = on_activated
        self.write_lock = write_lock
        self.routing = routing
        self._lock = threading.Lock()
        self._current: Activation | None = None
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> Activation | None:
        """The running or latest activation (None: none since start)."""
        return self._current

    def start(self, version_id: int, as_of: datetime | None = None) -> Activation:
        """Start activating ``version_id``; raises ConflictError while another one runs,
        ModelError (every fault) if the version does not fit the routing file.

        The version that is already active changes nothing, as in
        :func:`activate_version`: its activation is done at once, with no lead
        re-qualified (``total`` 0). Use ``leadqual recompute`` to rebuild on purpose.
        """
        version = self.store.model_version(version_id)  # NotFoundError before any thread
        model = version_model(version)
        if self.routing is not None:  # a model that does not fit the routing: ModelError
            for warning in check_routing(self.routing, model):
                log.warning("routing file: %s", warning)
        with self._lock:
            if self._current is not None and self._current.state == "running":
                raise ConflictError(
                    f"version {self._current.version_id} is being activated "
                    f"({self._current.done} of {self._current.total} leads); try again after"
                )
            if version.active:
                now = datetime.now(UTC)
                self._current = Activation(version_id, "done", now, finished_at=now)
                return self._current
            # Until the rebuild has read the log, the total is the leads stored now.
            total = self.store.lead_count()
            self._current = Activation(version_id, "running", datetime.now(UTC), total=total)
            self._thread = threading.Thread(
                target=self._run,
                args=(version, model, as_of),
                name=f"leadqual-activate-{version_id}",
                daemon=True,
            )
            self._thread.start()
            return self._current

    def wait(self, timeout: float | None = None) -> Activation | None:
        """Wait for the running activation to finish; returns its final status."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self._current

    def _progress(self, done: int, total: int) -> None:
        current = self._current
        if current is not None:
            self._current = replace(current, done=done, total=total)

    def _run(self, version: ModelVersion, model: Model, as_of: datetime | None) -> None:
        try:
            if self.write_lock is not None:
                with self.write_lock:
                    result = self._rebuild(version, model, as_of)
            else:
                result = self._rebuild(version, model, as_of)
        except Exception as exc:  # reported through status; the old version stays active
            current = self._current
            assert current is not None
            self._current = replace(
                current, state="failed", error=str(exc), finished_at=datetime.now(UTC)
            )
            return
        current = self._current
        assert current is not None
        self._current = replace(
            current,
            state="done",
            stage_changes=len(result.stage_changes),
            finished_at=datetime.now(UTC),
        )

    def _rebuild(self, version: ModelVersion, model: Model, as_of: datetime | None) -> ApplyResult:
        when = as_of or datetime.now(UTC)
        result = recompute(
            self.store, model, when, version.id, activate=True, progress=self._progress,
            routing=self.routing,
        )  # fmt: skip
        if self.on_activated is not None:
            self.on_activated(self.store.model_version(version.id), model)
        return result
