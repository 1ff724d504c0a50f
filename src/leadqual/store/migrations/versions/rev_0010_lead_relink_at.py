"""``lead_state.relink_at``: when a profile dated ahead may move a lead to another account.

A lead counts for the account its profiles known at the time give; one dated
ahead moves it when it comes due. Every write from that time on takes such a lead
along (found by this column's index) until one writes it again, so an account's
members are the same in every write as in the reference evaluator. Rows written
before with facts waiting in their state are due at once (the next write rebuilds
them); ``leadqual recompute`` after the upgrade rebuilds every state.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 10:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from leadqual.store.coltypes import UtcDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE_AT_ONCE = datetime(1970, 1, 1, tzinfo=UTC)
"""Before any write's time."""


def upgrade() -> None:
    op.add_column("lead_state", sa.Column("relink_at", UtcDateTime(), nullable=True))
    op.create_index(op.f("ix_lead_state_relink_at"), "lead_state", ["relink_at"], unique=False)
    # A state written before linked its lead with profiles dated ahead too. Those with
    # facts waiting (few) are due at once: the next write takes them along and rebuilds
    # them (their state version is old), so they count for the account of their time.
    states = sa.table(
        "lead_state",
        sa.column("relink_at", UtcDateTime()),
        sa.column("has_profile", sa.Boolean()),
        sa.column("state", sa.Text()),
    )
    op.execute(
        states.update()
        .where(states.c.has_profile, states.c.state.not_like('%"pending":[]%'))
        .values(relink_at=DUE_AT_ONCE)
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_lead_state_relink_at"), table_name="lead_state")
    with op.batch_alter_table("lead_state") as batch:
        batch.drop_column("relink_at")
