"""The one write path of the API: facts in, a WriteResult (or one located error) out.

Every write endpoint builds its facts and calls :func:`apply_facts`, which
runs ``Ingestor.apply`` through the runtime (one transaction: facts, state,
stage history, webhook outbox). Store errors are turned into API errors that
name the request item and field at fault; whatever fails, nothing of the
request is written.
"""

from __future__ import annotations

from collections.abc import Sequence

from leadqual.api.errors import ApiError, ErrorDetail, fact_error_detail, store_busy
from leadqual.api.runtime import Runtime
from leadqual.api.schemas import StageChangeOut, WriteResult
from leadqual.errors import (
    ConflictError,
    FactConflictError,
    FactError,
    NotFoundError,
    StoreBusyError,
    UnknownLeadError,
)
from leadqual.facts.types import Fact


def apply_facts(
    runtime: Runtime, facts: Sequence[Fact], *, batch: bool = False, lead_in_path: bool = False
) -> WriteResult:
    """Apply facts in one transaction; ``batch``: errors name the item's index.

    An unknown lead named in the path is a 404; named in the body (an event),
    it is a 422, since the request itself is what is wrong.
    """
    try:
        result = runtime.apply(facts)
    except FactError as error:
        detail = fact_error_detail(error, list(range(len(facts))) if batch else None)
        raise ApiError(422, "invalid_fact", _located(detail), [detail]) from None
    except FactConflictError as error:
        raise _conflict(error, batch) from None
    except UnknownLeadError as error:
        raise _unknown_lead(error, facts, batch, lead_in_path) from None
    except StoreBusyError:
        raise store_busy() from None
    except (ConflictError, NotFoundError) as error:  # not about one fact: no field to name
        status, code = (409, "conflict") if isinstance(error, ConflictError) else (404, "not_found")
        raise ApiError(status, code, str(error), [ErrorDetail(message=str(error))]) from None
    return WriteResult(
        accepted=result.accepted,
        duplicates=result.duplicates,
        stage_changes=[StageChangeOut.model_validate(c) for c in result.stage_changes],
    )


def _located(detail: ErrorDetail) -> str:
    where = f"events[{detail.index}]" if detail.index is not None else ""
    if detail.field:
        where = f"{where}.{detail.field}" if where else detail.field
    return f"{where}: {detail.message}" if where else detail.message


def _conflict(error: FactConflictError, batch: bool) -> ApiError:
    """A 409 naming the fact's id field (``event_id``) and, in a batch, its index."""
    message = str(error) if batch else f"{error.reason}; nothing was written"
    index = error.position if batch else None
    return ApiError(
        409, "conflict", message, [ErrorDetail(message=message, field=error.field, index=index)]
    )


def _unknown_lead(
    error: UnknownLeadError, facts: Sequence[Fact], batch: bool, lead_in_path: bool
) -> ApiError:
    """An unknown lead: a 404 when the path names it, else a 422 naming the field the
    fact named it by (``lead_id`` or ``email``), and saying what makes it known."""
    fact = facts[error.position] if error.position < len(facts) else None
    lead_id = getattr(fact, "lead_id", None) if error.field == "lead_id" else None
    if lead_id is not None:
        hint = f"send the lead's profile first (PUT /v1/leads/{lead_id})"
    else:
        hint = "send the profile of a lead with this email first (PUT /v1/leads/{lead_id})"
    message = f"{error.reason}; {hint}"
    index = error.position if batch else None
    details = [ErrorDetail(message=message, field=error.field, index=index)]
    if lead_in_path:
        return ApiError(404, "not_found", message, details)
    return ApiError(422, "unknown_lead", message, details)
