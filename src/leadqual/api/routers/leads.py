"""Leads: upsert a profile, read the qualification (with reasons) and the stage history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from leadqual.api import facts
from leadqual.api.auth import RuntimeDep, require
from leadqual.api.errors import responses
from leadqual.api.queries import qualification_out
from leadqual.api.routes import CheckedRoute
from leadqual.api.schemas import (
    AssignmentRow,
    Assignments,
    LeadIn,
    QualificationOut,
    StageChangeRow,
    StageHistory,
    WriteResult,
)
from leadqual.api.writes import apply_facts
from leadqual.store.codec import MAX_ID

router = APIRouter(
    prefix="/v1/leads",
    tags=["leads"],
    responses=responses(400, 401, 403, 422, 500),
    route_class=CheckedRoute,
)

LeadId = Annotated[str, Path(min_length=1, max_length=MAX_ID, description="The lead's id.")]


@router.put(
    "/{lead_id}",
    response_model=WriteResult,
    dependencies=[Depends(require("ingest"))],
    responses=responses(409, 413, 503),
)
def put_lead(lead_id: LeadId, body: LeadIn, runtime: RuntimeDep) -> WriteResult:
    """Create or update a lead: appends a profile fact; the latest value of each attribute wins.

    A lead whose email another lead already has is merged into that lead."""
    now = datetime.now(UTC)
    profile = runtime.checked(lambda model: facts.lead_profile(lead_id, body, model, now))
    return apply_facts(runtime, [profile])


@router.get(
    "/{lead_id}/qualification",
    response_model=QualificationOut,
    dependencies=[Depends(require("read"))],
    responses=responses(404),
)
def get_qualification(lead_id: LeadId, runtime: RuntimeDep) -> QualificationOut:
    """The lead's qualification (scores, grade, frameworks, stage, routing) and every reason.

    As stored at its latest change; a merged lead's id answers for the surviving lead."""
    return qualification_out(runtime.store.qualification(lead_id))


@router.get(
    "/{lead_id}/stage-history",
    response_model=StageHistory,
    dependencies=[Depends(require("read"))],
    responses=responses(404),
)
def get_stage_history(lead_id: LeadId, runtime: RuntimeDep) -> StageHistory:
    """Every stage change of the lead, oldest first, with its cause (fact, decision, time)."""
    current = runtime.store.qualification(lead_id)  # 404 for a lead nobody has sent
    changes = runtime.store.stage_history(current.lead_id)
    return StageHistory(
        lead_id=current.lead_id, changes=[StageChangeRow.model_validate(c) for c in changes]
    )


@router.get(
    "/{lead_id}/assignments",
    response_model=Assignments,
    dependencies=[Depends(require("read"))],
    responses=responses(404),
)
def get_assignments(lead_id: LeadId, runtime: RuntimeDep) -> Assignments:
    """Every assignment of the lead to a team and rep, oldest first, each with its reason
    (territory, capacity, round robin, a rep away, an SLA breach) and, once ended, why.

    Includes the assignments of leads merged into it, each naming its ``lead_id``; a merged
    lead's id answers for the surviving lead."""
    current = runtime.store.qualification(lead_id)  # 404 for a lead nobody has sent
    return Assignments(
        lead_id=current.lead_id,
        assignments=[
            AssignmentRow.model_validate(a) for a in runtime.store.assignments(current.lead_id)
        ],
    )
