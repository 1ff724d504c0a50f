"""The one write path of the API: facts in, a WriteResult (or one located error) out.

Every write endpoint builds its facts and calls :func:`apply_facts`, which
runs ``Ingestor.apply`` through the runtime (one transaction: facts, state,
stage history, webhook outbox). Store errors are turned into API errors that
name the request item and field at fault; whatever fails, nothing of the
request is written.
"""

from __future__ import annotations

from collections.abc import Sequence

from leadqual.api.errors import ApiError, ErrorDetail, fact_error_detail
from leadqual.api.runtime import Runtime
from leadqual.api.schemas import StageChangeOut, WriteResult
from leadqual.errors import ConflictError, FactError, NotFoundError
from leadqual.facts.types import Event, Fact


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
    except ConflictError as error:
        raise ApiError(409, "conflict", str(error), _find(facts, str(error), batch)) from None
    except NotFoundError as error:
        details = _find(facts, str(error), batch, field="lead_id")
        if lead_in_path:
            raise ApiError(404, "not_found", str(error), details) from None
        raise ApiError(422, "unknown_lead", str(error), details) from None
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


def _find(
    facts: Sequence[Fact], message: str, batch: bool, field: str | None = None
) -> list[ErrorDetail]:
    """The batch item a store error names (by its quoted event id), if any."""
    if not batch:
        return [ErrorDetail(message=message, field=field)]
    for index, fact in enumerate(facts):
        if isinstance(fact, Event) and f"event '{fact.event_id}'" in message:
            return [ErrorDetail(message=message, field=field or "event_id", index=index)]
    return [ErrorDetail(message=message, field=field)]
