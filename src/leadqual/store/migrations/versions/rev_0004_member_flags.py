"""Account status from members' flags (lead_state.member_flags); the outbox by subscription.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 00:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("lead_state", sa.Column("member_flags", sa.Text(), nullable=True))
    op.create_index(
        op.f("ix_webhook_outbox_subscription_id"), "webhook_outbox", ["subscription_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_outbox_subscription_id"), table_name="webhook_outbox")
    with op.batch_alter_table("lead_state") as batch:
        batch.drop_column("member_flags")
