"""Model versions: upload YAML (validated), list, read, validate, activate. Admin only."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from starlette.convertors import Convertor, register_url_convertor

from leadqual.api.auth import RuntimeDep, require
from leadqual.api.errors import responses
from leadqual.api.routes import CheckedRoute
from leadqual.api.schemas import (
    ActivationOut,
    ModelChange,
    ModelCheck,
    ModelDiff,
    ModelIn,
    ModelVersionDetail,
    ModelVersionOut,
)
from leadqual.errors import NotFoundError
from leadqual.model.load import load_model_text
from leadqual.model.schema import Model
from leadqual.service.versions import Activation, diff_versions
from leadqual.store.versions import ModelVersion

router = APIRouter(
    prefix="/v1/models",
    tags=["models"],
    dependencies=[Depends(require("admin"))],
    responses=responses(400, 401, 403, 422, 500),
    route_class=CheckedRoute,
)


class _VersionSegment(Convertor[str]):
    """A version id's path segment: any but the collection's own paths (``validate``,
    ``rollback``, ``activation``), so that ``/v1/models/abc`` reaches the version routes
    (a 422 naming ``version_id``, not a bare route 404) while another method on
    ``/v1/models/validate`` stays a 405 listing that path's own."""

    regex = r"(?!(?:validate|rollback|activation)(?![^/]))[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("model_version", _VersionSegment())

UPLOADED = "<uploaded model>"
VersionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="A model version's id.")]


def _checked(text: str) -> Model:
    """The model the YAML describes (a ModelError, a 422, lists every fault and its line)."""
    return load_model_text(text, UPLOADED)


def _out(version: ModelVersion) -> ModelVersionOut:
    return ModelVersionOut(
        id=version.id,
        name=version.name,
        version=version.version,
        active=version.active,
        uploaded_at=version.uploaded_at,
        activated_at=version.activated_at,
    )


@router.get("", response_model=list[ModelVersionOut])
def list_models(runtime: RuntimeDep) -> list[ModelVersionOut]:
    """Every stored model version, by name and version; exactly one is active."""
    return [_out(v) for v in runtime.store.model_versions()]


@router.post("", response_model=ModelVersionOut, responses=responses(409, 413, 503))
def upload_model(body: ModelIn, runtime: RuntimeDep) -> ModelVersionOut:
    """Store a model's YAML as a new version (not active yet). Validated first: a fault is a
    422 listing every problem as `line:col: path: message`. The same text again is a no-op;
    another text under the same name and version is a 409."""
    _checked(body.yaml)
    return _out(runtime.store.add_model_version(body.yaml))


@router.post("/validate", response_model=ModelCheck, responses=responses(413))
def validate_model(body: ModelIn) -> ModelCheck:
    """Check a model's YAML without storing it."""
    model = _checked(body.yaml)
    return ModelCheck(valid=True, name=model.name, version=model.version)


@router.get(
    "/{version_id:model_version}", response_model=ModelVersionDetail, responses=responses(404)
)
def get_model(version_id: VersionId, runtime: RuntimeDep) -> ModelVersionDetail:
    version = runtime.store.model_version(version_id)
    return ModelVersionDetail(**_out(version).model_dump(), yaml=version.yaml)


def _activation(status: Activation) -> ActivationOut:
    return ActivationOut(**asdict(status))


@router.post(
    "/{version_id:model_version}/activate",
    response_model=ActivationOut,
    status_code=202,
    responses=responses(404, 409),
)
def activate_model(version_id: VersionId, runtime: RuntimeDep) -> ActivationOut:
    """Start making a version the active model. Every lead is re-qualified with it in the
    background; the switch commits together with the rebuilt state, so until `state` is
    `done` (poll `GET /v1/models/activation`) every read and write uses the old version.
    A 409 while another activation runs. The version that is already active changes
    nothing: its activation is `done` at once, with `total` 0."""
    return _activation(runtime.activate(version_id))


@router.post(
    "/rollback", response_model=ActivationOut, status_code=202, responses=responses(404, 409)
)
def rollback_model(runtime: RuntimeDep) -> ActivationOut:
    """Start activating the version that was active before the current one (as activate)."""
    return _activation(runtime.rollback())


@router.get("/activation", response_model=ActivationOut, responses=responses(404))
def activation_status(runtime: RuntimeDep) -> ActivationOut:
    """The running or latest activation: its state and progress (leads done of total)."""
    status = runtime.activator.status
    if status is None:
        raise NotFoundError("no activation since the service started")
    return _activation(status)


@router.get("/{version_id:model_version}/diff", response_model=ModelDiff, responses=responses(404))
def diff_model(
    version_id: VersionId,
    runtime: RuntimeDep,
    against: Annotated[
        int | None,
        Query(ge=1, le=2**31 - 1, description="The version to compare with (default: active)."),
    ] = None,
) -> ModelDiff:
    """What changes, rule by rule, from version `against` (default: the active one) to this
    one: rules matched by id, so a moved rule is not removed and added; a new order of the
    stages, routing or recycle rules (where order decides) is a change, of fit or engagement
    rules (summed: no score changes) is not."""
    if against is None:
        active = runtime.store.active_model_version()
        if active is None:
            raise NotFoundError("no model version is active: give ?against=")
        against = active.id
    changes = diff_versions(runtime.store, against, version_id)
    return ModelDiff(
        old_version_id=against,
        new_version_id=version_id,
        changes=[
            ModelChange(kind=c.kind, path=c.path, rule=c.rule, old=c.old, new=c.new)
            for c in changes
        ],
    )
