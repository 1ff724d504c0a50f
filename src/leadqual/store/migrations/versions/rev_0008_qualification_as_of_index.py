"""An index on ``qualifications.as_of``: the tick's score refresh.

The tick evaluates again, a few at a time, the leads whose stored qualification is
oldest (``as_of``), so that scores that decay with time are at most about a day old
(see ``leadqual.service.ingest.REFRESH_AFTER``); the index finds them without reading
every qualification.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 05:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_qualifications_as_of"), "qualifications", ["as_of"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_qualifications_as_of"), table_name="qualifications")
