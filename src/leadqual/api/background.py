"""Work the service does on its own: the periodic tick, webhook delivery, WAL checkpoints.

The tick re-qualifies leads whose stage changes with time alone (decay,
windows, inactivity); it runs in a daemon thread every ``interval`` seconds
and also picks up a model version activated by another process (a write
picks it up too, see ``Runtime.refresh_model``) and a routing file that
changed (``Runtime.reload_routing``). Webhook
delivery is done by ``leadqual.integrations.webhooks.WebhookWorker`` (its own
daemon thread); both are started and stopped with the app.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from leadqual.api.runtime import Runtime
from leadqual.store import Store

log = logging.getLogger("leadqual.api")

WEBHOOKS_MODULE = "leadqual.integrations.webhooks"


class Worker(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class _Every:
    """Runs :meth:`turn` every ``interval`` seconds in a daemon thread until stopped.

    A turn that fails is logged and the next one comes as usual: the thread lives on.
    """

    name = "leadqual-worker"
    what = "background work"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def turn(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._turn()

    def _turn(self) -> None:
        try:
            self.turn()
        except Exception:
            log.exception("%s failed", self.what)


MAX_TICK_SECONDS = 86_400
"""The longest tick interval (a day): an infinite one killed the tick's thread."""


class Ticker(_Every):
    """Calls ``runtime.tick()`` every ``interval`` seconds until stopped."""

    name = "leadqual-tick"
    what = "tick"

    def __init__(self, runtime: Runtime, interval: float) -> None:
        if not 0 < interval <= MAX_TICK_SECONDS:  # 0 or less: a busy loop; inf: a dead thread
            raise ValueError(
                f"a tick interval must be more than 0 seconds and at most {MAX_TICK_SECONDS}, "
                f"not {interval}"
            )
        self.runtime = runtime
        super().__init__(interval)

    def turn(self) -> None:
        self.runtime.refresh_model()  # a version activated elsewhere, then the file for it
        self.runtime.reload_routing()
        self.runtime.check_fit()
        result = self.runtime.tick()
        if result.skipped:
            log.debug("tick: another tick is under way (PostgreSQL lock held); nothing done")
        elif result.stage_changes:
            log.info("tick: %d stage change(s)", len(result.stage_changes))


CHECKPOINT_SECONDS = 1.0


class Checkpointer(_Every):
    """Checkpoints the SQLite WAL every ``interval`` seconds in a thread of its own.

    The service turns off SQLite's checkpoints on commit
    (:meth:`Store.checkpoint_in_background`): the commit that ran one, and every
    request queued behind it, waited for the copy and the sync of the database
    file. A passive checkpoint here blocks neither readers nor writers, and
    the sqlite3 driver lets go of the GIL while it runs.
    """

    name = "leadqual-checkpoint"
    what = "WAL checkpoint"

    def __init__(self, store: Store, interval: float = CHECKPOINT_SECONDS) -> None:
        self.store = store
        super().__init__(interval)

    def stop(self) -> None:
        super().stop()
        self._turn()  # what the last second wrote

    def turn(self) -> None:
        self.store.checkpoint()


class Webhooks:
    """Webhook delivery (outbox -> signed POSTs, with retries) for the app's lifetime."""

    def __init__(self, runtime: Runtime, interval: float = 1.0) -> None:
        from leadqual.integrations.webhooks import WebhookWorker

        self.interval = interval
        self.worker = WebhookWorker(runtime.store)

    def start(self) -> None:
        self.worker.start(self.interval)

    def stop(self) -> None:
        self.worker.close()  # requests in flight finish; claimed rows go back to the outbox


def webhook_worker(runtime: Runtime) -> Worker | None:
    """Webhook delivery when ``leadqual.integrations.webhooks`` is installed, else None.

    Without it, stage changes wait in the webhook outbox (written in the same
    transaction as the facts) until a worker runs.
    """
    try:
        return Webhooks(runtime)
    except ModuleNotFoundError as error:
        if error.name not in (WEBHOOKS_MODULE, "leadqual.integrations"):
            raise
        log.warning("webhook delivery is not installed: stage changes stay in the outbox")
        return None
