"""Liveness: answers without an API key, for load balancers and `leadqual serve` checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from leadqual.api.auth import get_runtime
from leadqual.api.runtime import Runtime
from leadqual.api.schemas import Health, ModelRef

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def health(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Health:
    model = runtime.model
    return Health(
        status="ok",
        model=ModelRef(name=model.name, version=model.version, version_id=runtime.model_version_id),
    )
