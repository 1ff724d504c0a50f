"""Incremental executor state: per-lead state, account attributes, domains.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 19:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from leadqual.store.coltypes import UtcDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lead_state",
        sa.Column("lead_id", sa.String(length=256), nullable=False),
        sa.Column("account_id", sa.String(length=256), nullable=True),
        sa.Column("link_domain", sa.String(length=320), nullable=True),
        sa.Column("has_profile", sa.Boolean(), nullable=False),
        sa.Column("next_change_at", UtcDateTime(), nullable=True),
        sa.Column("model_key", sa.String(length=64), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_lead_state")),
    )
    op.create_index(op.f("ix_lead_state_account_id"), "lead_state", ["account_id"], unique=False)
    op.create_index(op.f("ix_lead_state_link_domain"), "lead_state", ["link_domain"], unique=False)
    op.create_index(
        op.f("ix_lead_state_next_change_at"), "lead_state", ["next_change_at"], unique=False
    )
    op.create_table(
        "account_state",
        sa.Column("account_id", sa.String(length=256), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_state")),
    )
    op.create_table(
        "account_domains",
        sa.Column("domain", sa.String(length=320), nullable=False),
        sa.Column("account_id", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_account_domains")),
    )


def downgrade() -> None:
    op.drop_table("account_domains")
    op.drop_table("account_state")
    op.drop_index(op.f("ix_lead_state_next_change_at"), table_name="lead_state")
    op.drop_index(op.f("ix_lead_state_link_domain"), table_name="lead_state")
    op.drop_index(op.f("ix_lead_state_account_id"), table_name="lead_state")
    op.drop_table("lead_state")
