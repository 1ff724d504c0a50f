"""Assignments by team and rep (territory turns, time away, queues) and by rep (capacity).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 17:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_assignments_team_rep_id"), "assignments", ["team", "rep", "id"], unique=False
    )
    op.create_index(
        op.f("ix_assignments_rep_ended_at"), "assignments", ["rep", "ended_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_assignments_rep_ended_at"), table_name="assignments")
    op.drop_index(op.f("ix_assignments_team_rep_id"), table_name="assignments")
