"""What the service and routing tests read back from the store beside its API."""

from __future__ import annotations

from sqlalchemy import select

from leadqual.store import Store, schema


def open_assignments(store: Store) -> dict[str, tuple[str | None, str | None]]:
    """Each lead's open assignment: (team, rep)."""
    a = schema.assignments
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(a.c.lead_id, a.c.team, a.c.rep).where(a.c.ended_at.is_(None))
        )
        return {row.lead_id: (row.team, row.rep) for row in rows}
