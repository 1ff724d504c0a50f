"""``lead_state.relink_at``: when a profile dated ahead may move a lead to another account.

A lead counts for the account its profiles known at the time give; one dated
ahead moves it when it comes due. Every write from that time on takes such a lead
along (found by this column's index) until one writes it again, so an account's
members are the same in every write as in the reference evaluator. Rows written
before have none: ``leadqual recompute`` after the upgrade sets it (the state
version changed too).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 10:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from leadqual.store.coltypes import UtcDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("lead_state", sa.Column("relink_at", UtcDateTime(), nullable=True))
    op.create_index(op.f("ix_lead_state_relink_at"), "lead_state", ["relink_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_lead_state_relink_at"), table_name="lead_state")
    with op.batch_alter_table("lead_state") as batch:
        batch.drop_column("relink_at")
