"""Initial schema: the fact log, identity, derived state, model versions and API keys.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 18:59:11.742600
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from leadqual.store.coltypes import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_profiles",
        sa.Column("profile_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=256), nullable=False),
        sa.Column("domain", sa.String(length=320), nullable=True),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_account_profiles")),
    )
    op.create_index(
        op.f("ix_account_profiles_account_id"), "account_profiles", ["account_id"], unique=False
    )

    op.create_table(
        "answers",
        sa.Column("answer_id", sa.String(length=256), nullable=False),
        sa.Column("lead_id", sa.String(length=256), nullable=False),
        sa.Column("framework", sa.String(length=100), nullable=False),
        sa.Column("criterion", sa.String(length=100), nullable=False),
        sa.Column("value", sa.String(length=16), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("author", sa.String(length=256), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("answer_id", name=op.f("pk_answers")),
    )
    op.create_index(op.f("ix_answers_lead_id"), "answers", ["lead_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(length=256), nullable=False),
        sa.Column("lead_id", sa.String(length=256), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("author", sa.String(length=256), nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decisions")),
    )
    op.create_index(op.f("ix_decisions_lead_id"), "decisions", ["lead_id"], unique=False)

    op.create_table(
        "events",
        sa.Column("event_id", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("lead_id", sa.String(length=256), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("visitor_id", sa.String(length=256), nullable=True),
        sa.Column("resolved_lead_id", sa.String(length=256), nullable=True),
        sa.Column("properties", sa.Text(), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_events")),
    )
    op.create_index(
        "ix_events_resolved_lead_id_at", "events", ["resolved_lead_id", "at"], unique=False
    )
    op.create_index(
        "ix_events_unresolved",
        "events",
        ["event_id"],
        unique=False,
        sqlite_where=sa.text("resolved_lead_id IS NULL"),
        postgresql_where=sa.text("resolved_lead_id IS NULL"),
    )
    op.create_index(op.f("ix_events_visitor_id"), "events", ["visitor_id"], unique=False)

    op.create_table(
        "lead_aliases",
        sa.Column("alias_id", sa.String(length=256), nullable=False),
        sa.Column("lead_id", sa.String(length=256), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("merged_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("alias_id", name=op.f("pk_lead_aliases")),
    )
    op.create_index(op.f("ix_lead_aliases_lead_id"), "lead_aliases", ["lead_id"], unique=False)

    op.create_table(
        "lead_emails",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("lead_id", sa.String(length=256), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_lead_emails")),
    )
    op.create_index(op.f("ix_lead_emails_lead_id"), "lead_emails", ["lead_id"], unique=False)

    op.create_table(
        "lead_profiles",
        sa.Column("profile_id", sa.String(length=64), nullable=False),
        sa.Column("lead_id", sa.String(length=256), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("account_id", sa.String(length=256), nullable=True),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_lead_profiles")),
    )
    op.create_index(op.f("ix_lead_profiles_lead_id"), "lead_profiles", ["lead_id"], unique=False)

    op.create_table(
        "model_versions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("yaml", sa.Text(), nullable=False),
        sa.Column("uploaded_at", UtcDateTime(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("activated_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_model_versions_name_version")),
    )
    op.create_index(
        "uq_model_versions_one_active",
        "model_versions",
        ["active"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )

    op.create_table(
        "outcomes",
        sa.Column("outcome_id", sa.String(length=256), nullable=False),
        sa.Column("lead_id", sa.String(length=256), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("amount", sa.Double(), nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("outcome_id", name=op.f("pk_outcomes")),
    )
    op.create_index(op.f("ix_outcomes_lead_id"), "outcomes", ["lead_id"], unique=False)

    op.create_table(
        "visitor_links",
        sa.Column("visitor_id", sa.String(length=256), nullable=False),
        sa.Column("lead_id", sa.String(length=256), nullable=False),
        sa.Column("event_id", sa.String(length=256), nullable=True),
        sa.Column("linked_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("visitor_id", name=op.f("pk_visitor_links")),
    )
    op.create_index(op.f("ix_visitor_links_lead_id"), "visitor_links", ["lead_id"], unique=False)

    op.create_table(
        "webhook_subscriptions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("event_kinds", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("disabled_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )
    op.create_table(
        "account_status",
        sa.Column("account_id", sa.String(length=256), nullable=False),
        sa.Column(
            "model_version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("mqa", sa.Boolean(), nullable=True),
        sa.Column("engaged_leads", sa.Integer(), nullable=False),
        sa.Column("roles_covered", sa.Integer(), nullable=False),
        sa.Column("committee_covered", sa.Boolean(), nullable=True),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("as_of", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_account_status_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_status")),
    )
    op.create_table(
        "assignments",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("lead_id", sa.String(length=256), nullable=False),
        sa.Column("team", sa.String(length=256), nullable=True),
        sa.Column("rep", sa.String(length=256), nullable=True),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.Column("rule", sa.String(length=256), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column(
            "model_version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_assignments_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
    )
    op.create_index(op.f("ix_assignments_lead_id"), "assignments", ["lead_id"], unique=False)

    op.create_table(
        "qualifications",
        sa.Column("lead_id", sa.String(length=256), nullable=False),
        sa.Column("account_id", sa.String(length=256), nullable=True),
        sa.Column(
            "model_version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("model_name", sa.String(length=256), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("fit", sa.Double(), nullable=False),
        sa.Column("engagement", sa.Double(), nullable=False),
        sa.Column("total", sa.Double(), nullable=False),
        sa.Column("groups", sa.Text(), nullable=False),
        sa.Column("grade", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=100), nullable=False),
        sa.Column("frameworks", sa.Text(), nullable=False),
        sa.Column("routing", sa.Text(), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("as_of", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_qualifications_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_qualifications")),
    )
    op.create_index(
        op.f("ix_qualifications_account_id"), "qualifications", ["account_id"], unique=False
    )
    op.create_index(op.f("ix_qualifications_stage"), "qualifications", ["stage"], unique=False)

    op.create_table(
        "stage_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("lead_id", sa.String(length=256), nullable=False),
        sa.Column("from_stage", sa.String(length=100), nullable=True),
        sa.Column("to_stage", sa.String(length=100), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("cause_kind", sa.String(length=32), nullable=False),
        sa.Column("cause_rule", sa.String(length=256), nullable=True),
        sa.Column("cause_fact_id", sa.String(length=256), nullable=True),
        sa.Column(
            "model_version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_stage_history_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_history")),
    )
    op.create_index("ix_stage_history_lead_id_id", "stage_history", ["lead_id", "id"], unique=False)

    op.create_table(
        "webhook_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "subscription_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("event_kind", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'dead')",
            name=op.f("ck_webhook_outbox_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["webhook_subscriptions.id"],
            name=op.f("fk_webhook_outbox_subscription_id_webhook_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_outbox")),
    )
    op.create_index(
        "ix_webhook_outbox_status_next_attempt_at",
        "webhook_outbox",
        ["status", "next_attempt_at"],
        unique=False,
    )

    op.create_table(
        "webhook_deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "outbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["webhook_outbox.id"],
            name=op.f("fk_webhook_deliveries_outbox_id_webhook_outbox"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        op.f("ix_webhook_deliveries_outbox_id"), "webhook_deliveries", ["outbox_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_outbox")
    op.drop_table("stage_history")
    op.drop_table("qualifications")
    op.drop_table("assignments")
    op.drop_table("account_status")
    op.drop_table("webhook_subscriptions")
    op.drop_table("visitor_links")
    op.drop_table("outcomes")
    op.drop_table("model_versions")
    op.drop_table("lead_profiles")
    op.drop_table("lead_emails")
    op.drop_table("lead_aliases")
    op.drop_table("events")
    op.drop_table("decisions")
    op.drop_table("api_keys")
    op.drop_table("answers")
    op.drop_table("account_profiles")
