"""Account status reasons: ``account_status.reasons``.

The reasons of an account's status (why it is or is not an MQA, which roles of the
buying committee are covered, and by whom), as JSON text like a qualification's
``reasons``. A status stored before this revision has none (NULL) until its account
is evaluated again (any write about it or its leads, a tick that moves it) or
``leadqual recompute`` runs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 23:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("account_status", sa.Column("reasons", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account_status") as batch:
        batch.drop_column("reasons")
