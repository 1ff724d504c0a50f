"""What sales does with a lead: decisions, answers (framework criteria) and outcomes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from leadqual.api import facts
from leadqual.api.auth import RuntimeDep, require
from leadqual.api.errors import responses
from leadqual.api.routes import CheckedRoute
from leadqual.api.schemas import AnswerIn, DecisionIn, OutcomeIn, WriteResult
from leadqual.api.writes import apply_facts
from leadqual.store.codec import MAX_ID

router = APIRouter(
    prefix="/v1/leads/{lead_id}",
    tags=["sales"],
    dependencies=[Depends(require("sales"))],
    responses=responses(400, 401, 403, 404, 409, 413, 422, 500, 503),
    route_class=CheckedRoute,
)

LeadId = Annotated[str, Path(min_length=1, max_length=MAX_ID, description="The lead's id.")]


@router.post("/decisions", response_model=WriteResult)
def post_decision(lead_id: LeadId, body: DecisionIn, runtime: RuntimeDep) -> WriteResult:
    """Accept (to SAL), reject with a reason (recycled to nurture), disqualify with a reason,
    reopen, or open an opportunity. The reasons allowed are the model's `decisions` lists."""
    return apply_facts(runtime, [facts.decision(lead_id, body)], lead_in_path=True)


@router.post("/answers", response_model=WriteResult)
def post_answer(lead_id: LeadId, body: AnswerIn, runtime: RuntimeDep) -> WriteResult:
    """Record what sales learned about one criterion ("budget confirmed": `bant`, `budget`,
    `met`); it overrides what the model inferred for that criterion."""
    return apply_facts(runtime, [facts.answer(lead_id, body)], lead_in_path=True)


@router.post("/outcomes", response_model=WriteResult)
def post_outcome(lead_id: LeadId, body: OutcomeIn, runtime: RuntimeDep) -> WriteResult:
    """Record how the lead ended: `won` (a customer) or `lost` (recycled, per the model)."""
    return apply_facts(runtime, [facts.outcome(lead_id, body)], lead_in_path=True)
