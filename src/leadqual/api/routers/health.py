"""Liveness: answers without an API key, for load balancers and `leadqual serve` checks."""

from __future__ import annotations

from fastapi import APIRouter

from leadqual.api.auth import RuntimeDep
from leadqual.api.schemas import Health, ModelRef

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def health(runtime: RuntimeDep) -> Health:
    model = runtime.model_in_force()  # an activation by another process included
    return Health(
        status="ok",
        model=ModelRef(name=model.name, version=model.version, version_id=runtime.model_version_id),
    )
