"""The change feed of qualifications: ``qualifications.change_seq`` and ``change_row``,
``lead_removals``, ``change_feed``.

Every write of a lead's qualification stamps it with the position of its
transaction in commit order (``change_seq``) and a number unique among the rows
of that transaction (``change_row``), and a qualification removed (its lead
merged into another, or left without a profile by a recompute) leaves a row in
``lead_removals`` stamped the same way. ``GET /v1/qualification-changes``
reads both in that order, so a sync tool that keeps its position reads every
change once and misses none (see ``leadqual.store.changes``). On SQLite the
position is a counter (``change_feed.seq``) that each write transaction moves
on: writers take turns, so their order is the commit order. On PostgreSQL it
is the writing transaction's id (``pg_current_xact_id()``), and the row number
comes from a sequence (``change_rows``): both are the columns' defaults. A
reader stops short of the oldest transaction still running. ``change_feed.epoch``
is a random number each store draws here (and again when a copy from another
PostgreSQL server is stamped again): a cursor carries it, so one made by
another store or before such a copy is refused.

Qualifications stored before this revision are at position 0, numbered in turn:
a sync from the start reads them first.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 07:30:00.000000
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from leadqual.store.coltypes import UtcDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRES_SEQ = "(pg_current_xact_id()::text::bigint)"
"""The writing transaction's id: the position a row written on PostgreSQL takes."""
POSTGRES_ROW = "nextval('change_rows')"
"""A number no other row written on PostgreSQL takes."""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE SEQUENCE change_rows")
    for column in ("change_seq", "change_row"):
        op.add_column(
            "qualifications",
            sa.Column(column, sa.BigInteger(), nullable=False, server_default="0"),
        )
    if postgres:  # number the rows stored already, then stamp every later write
        op.execute(f"UPDATE qualifications SET change_row = {POSTGRES_ROW}")
        op.alter_column("qualifications", "change_seq", server_default=sa.text(POSTGRES_SEQ))
        op.alter_column("qualifications", "change_row", server_default=sa.text(POSTGRES_ROW))
    else:
        op.execute("UPDATE qualifications SET change_row = rowid")
    op.create_index(
        op.f("ix_qualifications_change_seq_change_row"),
        "qualifications",
        ["change_seq", "change_row"],
        unique=False,
    )
    op.create_table(
        "lead_removals",
        sa.Column("lead_id", sa.String(length=256), nullable=False),
        sa.Column("merged_into", sa.String(length=256), nullable=True),
        sa.Column("removed_at", UtcDateTime(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False,
                  server_default=sa.text(POSTGRES_SEQ) if postgres else "0"),
        sa.Column("change_row", sa.BigInteger(), nullable=False,
                  server_default=sa.text(POSTGRES_ROW) if postgres else "0"),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_lead_removals")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_lead_removals_change_seq_change_row"),
        "lead_removals",
        ["change_seq", "change_row"],
        unique=False,
    )
    op.create_table(
        "change_feed",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_feed")),
    )
    op.execute(
        f"INSERT INTO change_feed (id, seq, epoch) VALUES (1, 0, {secrets.randbelow(2**62)})"
    )


def downgrade() -> None:
    op.drop_table("change_feed")
    op.drop_index(op.f("ix_lead_removals_change_seq_change_row"), table_name="lead_removals")
    op.drop_table("lead_removals")
    op.drop_index(op.f("ix_qualifications_change_seq_change_row"), table_name="qualifications")
    with op.batch_alter_table("qualifications") as batch:
        batch.drop_column("change_row")
        batch.drop_column("change_seq")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE change_rows")
