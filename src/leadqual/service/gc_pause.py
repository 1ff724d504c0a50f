"""Keep Python's cyclic garbage collector out of a write while it runs.

A batch allocates tens of thousands of objects that live until it commits
(states, events, reasons) and creates no reference cycles: every object it
drops is freed by its reference count. The cyclic collector, started every
700 allocations, then only walks live objects again and again, and moves
them into older generations that its full passes walk too: 12 to 20% of a
batch's time, measured (docs/service.md, twentieth measurement). Writes run
with it paused; it resumes when the last write under way in the process ends
(writes can run in several threads), and catches up at the next allocation.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_writes = 0
"""Writes under way in this process with the collector paused."""
_resume = False
"""Whether the first of them found the collector enabled (and the last enables it)."""


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector while the block runs (it stays off if it was off)."""
    global _writes, _resume
    with _lock:
        if _writes == 0:
            _resume = gc.isenabled()
            gc.disable()
        _writes += 1
    try:
        yield
    finally:
        with _lock:
            _writes -= 1
            if _writes == 0 and _resume:
                gc.enable()
