"""The live service: ingest facts and keep qualifications current (see ``docs/service.md``)."""

from leadqual.service.ingest import (
    ApplyResult,
    Ingestor,
    ModelChanged,
    StageChangeRecord,
    qualify_from_state,
    recompute,
    tick,
)

__all__ = [
    "ApplyResult",
    "Ingestor",
    "ModelChanged",
    "StageChangeRecord",
    "qualify_from_state",
    "recompute",
    "tick",
]
