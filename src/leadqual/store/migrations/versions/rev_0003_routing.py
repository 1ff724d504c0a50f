"""Routing: assignment reasons and ends, SLA timers, round-robin cursors.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 22:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from leadqual.store.coltypes import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("assignments", sa.Column("reason", sa.Text(), nullable=True))
    op.add_column("assignments", sa.Column("ended_at", UtcDateTime(), nullable=True))
    op.add_column("assignments", sa.Column("ended_reason", sa.Text(), nullable=True))
    op.create_table(
        "sla_timers",
        sa.Column("id", Serial, autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.String(length=256), nullable=False),
        sa.Column("stage", sa.String(length=100), nullable=False),
        sa.Column("team", sa.String(length=256), nullable=True),
        sa.Column("rep", sa.String(length=256), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("stopped_at", UtcDateTime(), nullable=True),
        sa.Column("stop_cause", sa.Text(), nullable=True),
        sa.Column("breached_at", UtcDateTime(), nullable=True),
        sa.Column("model_version_id", Serial, nullable=True),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_sla_timers_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_timers")),
    )
    op.create_index(op.f("ix_sla_timers_lead_id"), "sla_timers", ["lead_id"], unique=False)
    op.create_index("ix_sla_timers_due_at", "sla_timers", ["due_at"], unique=False)
    op.create_table(
        "routing_cursors",
        sa.Column("team", sa.String(length=256), nullable=False),
        sa.Column("last_rep", sa.String(length=256), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("team", name=op.f("pk_routing_cursors")),
    )


def downgrade() -> None:
    op.drop_table("routing_cursors")
    op.drop_index("ix_sla_timers_due_at", table_name="sla_timers")
    op.drop_index(op.f("ix_sla_timers_lead_id"), table_name="sla_timers")
    op.drop_table("sla_timers")
    with op.batch_alter_table("assignments") as batch:
        batch.drop_column("ended_reason")
        batch.drop_column("ended_at")
        batch.drop_column("reason")
