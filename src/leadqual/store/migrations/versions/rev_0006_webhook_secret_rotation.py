"""Webhook secret rotation: ``webhook_subscriptions.previous_secret`` and its expiry.

After a rotation the subscription's new secret is in ``secret`` and the one it
replaces in ``previous_secret``; until ``previous_secret_expires_at`` deliveries carry
a ``v1`` signature with each, so a receiver can move to the new secret without a gap.
Existing subscriptions have neither (NULL): nothing to backfill.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 23:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from leadqual.store.coltypes import UtcDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("webhook_subscriptions", sa.Column("previous_secret", sa.Text(), nullable=True))
    op.add_column(
        "webhook_subscriptions",
        sa.Column("previous_secret_expires_at", UtcDateTime(), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions") as batch:
        batch.drop_column("previous_secret_expires_at")
        batch.drop_column("previous_secret")
