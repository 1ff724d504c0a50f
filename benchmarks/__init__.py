"""Benchmarks: each prints its figures beside a baseline measured in the same run."""

from __future__ import annotations


def engine_build() -> str:
    """Which build of the engine this run measures (see ``hatch_build.py``): a wheel
    (``pip install .``) compiles it with mypyc, an editable install runs its source."""
    from leadqual.engine import compiled

    return "engine compiled with mypyc" if compiled() else "engine as Python source"
