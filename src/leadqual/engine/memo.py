"""Values made once per object, for model parts that are not hashable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class PerObject(Generic[K, V]):
    """``make(obj)``, remembered per object identity (at most ``size`` of them).

    Model parts (rules, conditions, operand lists) are frozen but may hold
    lists, so they cannot be dict keys; their identity can. Each entry keeps
    its object alive, so an id is never reused while it is remembered.
    """

    def __init__(self, make: Callable[[K], V], size: int = 4096) -> None:
        self.make = make
        self.size = size
        self._entries: dict[int, tuple[K, V]] = {}

    def __call__(self, obj: K) -> V:
        entry = self._entries.get(id(obj))
        if entry is None or entry[0] is not obj:
            if len(self._entries) >= self.size:
                self._entries.clear()
            entry = (obj, self.make(obj))
            self._entries[id(obj)] = entry
        return entry[1]
