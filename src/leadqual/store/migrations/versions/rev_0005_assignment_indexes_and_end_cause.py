"""Assignment indexes and end cause: by team and rep, by rep; ``assignments.ended_cause``.

The indexes serve territory turns, time away and queues (team, rep, id) and capacity
(rep, ended_at). ``ended_cause`` stores why an assignment ended, as a machine cause (the
``cause`` of the ``assignment_ended`` webhook: ``rerouted``, ``unrouted``, ``merged``,
``sla_breached``, ``rep_away``, ``dequeued``); routing reads it to keep a lead from the
rep who breached its SLA, instead of parsing ``ended_reason``.

Backfill: an ended assignment whose ``ended_reason`` is the breach wording (``SLA for
<stage> breached``) gets ``sla_breached``, which the breacher rule needs. Every other row
is left NULL: the other causes cannot be told reliably from the stored text (it was
written for people, and older releases wrote other wordings), and nothing reads them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 17:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
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
    op.add_column("assignments", sa.Column("ended_cause", sa.String(length=32), nullable=True))
    assignments = sa.table(
        "assignments", sa.column("ended_reason", sa.Text()), sa.column("ended_cause", sa.String(32))
    )
    op.execute(
        assignments.update()
        .where(assignments.c.ended_reason.like("SLA for % breached"))
        .values(ended_cause="sla_breached")
    )


def downgrade() -> None:
    with op.batch_alter_table("assignments") as batch:
        batch.drop_column("ended_cause")
    op.drop_index(op.f("ix_assignments_rep_ended_at"), table_name="assignments")
    op.drop_index(op.f("ix_assignments_team_rep_id"), table_name="assignments")
