"""Keep garbage-collection pauses out of request latency: freeze the long-lived heap.

CPython's full (generation 2) collection walks every object the collector
tracks. Most of a running service's heap lives as long as the process: the
modules, the model, the compiled statements, the evaluator's caches. On the
2-core benchmark machine a full collection of the warm service's heap
(about 140,000 objects) paused every request for 100 ms and more.

``gc.freeze()`` moves the objects alive at that moment to a permanent
generation that collections skip. Reference counting still frees them when
they are dropped; only a reference cycle among frozen objects is never
collected, so the heap is frozen twice and no more: at startup, and once the
first :data:`WARM_WRITES` writes have built what the write path builds lazily
(statement caches, pydantic validators, the fit cache's first entries).
"""

from __future__ import annotations

import gc
import threading

WARM_WRITES = 200
"""Writes after which the lazily built part of the heap is frozen too."""


class HeapFreezer:
    """Freezes the heap at startup and once more after :data:`WARM_WRITES` writes."""

    def __init__(self, warm_writes: int = WARM_WRITES) -> None:
        self.warm_writes = warm_writes
        self._writes = 0
        self._lock = threading.Lock()
        self.frozen = 0
        """How many times the heap was frozen (0, 1 or 2)."""

    def startup(self) -> None:
        """Collect what is garbage already, then freeze everything alive."""
        gc.collect()
        gc.freeze()
        self.frozen = 1

    def wrote(self) -> None:
        """Count a write; the :data:`WARM_WRITES`-th freezes the heap a second time.

        No collection first: that is the pause this avoids. The garbage alive
        at that instant (a few requests' worth) is frozen with the rest, once.
        """
        with self._lock:
            self._writes += 1
            if self._writes != self.warm_writes or self.frozen != 1:
                return
            gc.freeze()
            self.frozen = 2
