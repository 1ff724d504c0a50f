"""The evaluation engine: the reference evaluator, the incremental executor and the
compiled SQL. A wheel built from the source compiles the evaluating modules with mypyc
(see ``hatch_build.py``); :func:`compiled` says whether this installation runs them."""

from __future__ import annotations

import importlib.machinery


def compiled() -> bool:
    """Whether the engine's modules run compiled (mypyc) rather than as Python source."""
    from leadqual.engine import reference

    origin = getattr(reference, "__file__", None) or ""
    return origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
