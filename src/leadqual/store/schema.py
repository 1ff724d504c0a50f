"""The store's tables, as SQLAlchemy Core metadata.

Three groups:

* **The fact log** (append-only): ``lead_profiles``, ``account_profiles``,
  ``events``, ``answers``, ``decisions``, ``outcomes``. Each row keeps the
  fact's fields as columns (so SQL executors can read them), a ``payload_hash``
  of its canonical JSON (so a re-sent fact is recognised as the same or as a
  conflict) and ``received_at``. Profiles have no id of their own: their id is
  the hash of their content, so re-sending a profile is a no-op.
* **Identity**: which lead an email, a visitor or a merged lead id stands for.
  Facts are never rewritten; identity is applied when facts are read.
* **Derived state** (a cache of ``evaluate``, rebuilt by a recompute):
  current qualifications and account status, stage history, assignments,
  the webhook outbox and its delivery log; plus model versions and API keys.

The initial Alembic revision creates exactly these tables; a test compares
the two so that they cannot drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from leadqual.store.coltypes import UtcDateTime

ID = 256
"""Longest id (lead, account, event, ...) the store accepts, in characters."""
EMAIL = 320
NAME = 100
HASH = 64

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so that later migrations can refer to them."""

metadata = MetaData(naming_convention=NAMING)

Serial = BigInteger().with_variant(Integer(), "sqlite")
"""An auto-incrementing key: BIGINT on PostgreSQL, the rowid alias on SQLite."""


def _received() -> Column[object]:
    return Column("received_at", UtcDateTime(), nullable=False)


def _hash() -> Column[object]:
    return Column("payload_hash", String(HASH), nullable=False)


# -- the fact log --------------------------------------------------------------------------

lead_profiles = Table(
    "lead_profiles",
    metadata,
    Column("profile_id", String(HASH), primary_key=True),
    Column("lead_id", String(ID), nullable=False, index=True),
    Column("email", String(EMAIL)),
    Column("account_id", String(ID)),
    Column("attributes", Text(), nullable=False),
    Column("at", UtcDateTime()),
    _hash(),
    _received(),
)

account_profiles = Table(
    "account_profiles",
    metadata,
    Column("profile_id", String(HASH), primary_key=True),
    Column("account_id", String(ID), nullable=False, index=True),
    Column("domain", String(EMAIL)),
    Column("attributes", Text(), nullable=False),
    Column("at", UtcDateTime()),
    _hash(),
    _received(),
)

events = Table(
    "events",
    metadata,
    Column("event_id", String(ID), primary_key=True),
    Column("type", String(NAME), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("lead_id", String(ID)),
    Column("email", String(EMAIL)),
    Column("visitor_id", String(ID), index=True),
    Column("resolved_lead_id", String(ID)),
    Column("properties", Text(), nullable=False),
    _hash(),
    _received(),
    Index("ix_events_resolved_lead_id_at", "resolved_lead_id", "at"),
)
"""Activity. ``lead_id``/``email`` are as sent; ``visitor_id`` is the
``visitor_id`` property of an anonymous event; ``resolved_lead_id`` is the
lead the event counts for (NULL until an email or visitor link names one)."""

Index(
    "ix_events_unresolved",
    events.c.event_id,
    sqlite_where=events.c.resolved_lead_id.is_(None),
    postgresql_where=events.c.resolved_lead_id.is_(None),
)

answers = Table(
    "answers",
    metadata,
    Column("answer_id", String(ID), primary_key=True),
    Column("lead_id", String(ID), nullable=False, index=True),
    Column("framework", String(NAME), nullable=False),
    Column("criterion", String(NAME), nullable=False),
    Column("value", String(16), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("author", String(ID)),
    Column("note", Text()),
    _hash(),
    _received(),
)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(ID), primary_key=True),
    Column("lead_id", String(ID), nullable=False, index=True),
    Column("action", String(16), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("reason", Text()),
    Column("author", String(ID)),
    _hash(),
    _received(),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("outcome_id", String(ID), primary_key=True),
    Column("lead_id", String(ID), nullable=False, index=True),
    Column("outcome", String(16), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("amount", Double()),
    _hash(),
    _received(),
)

# -- identity ------------------------------------------------------------------------------

lead_emails = Table(
    "lead_emails",
    metadata,
    Column("email", String(EMAIL), primary_key=True),
    Column("lead_id", String(ID), nullable=False, index=True),
    Column("recorded_at", UtcDateTime(), nullable=False),
)
"""Each normalised (trimmed, lower-case) email to the first lead that had it."""

lead_aliases = Table(
    "lead_aliases",
    metadata,
    Column("alias_id", String(ID), primary_key=True),
    Column("lead_id", String(ID), nullable=False, index=True),
    Column("reason", Text(), nullable=False),
    Column("merged_at", UtcDateTime(), nullable=False),
)
"""A lead merged into another: ``alias_id`` now stands for ``lead_id`` (never an alias)."""

visitor_links = Table(
    "visitor_links",
    metadata,
    Column("visitor_id", String(ID), primary_key=True),
    Column("lead_id", String(ID), nullable=False, index=True),
    Column("event_id", String(ID)),
    Column("linked_at", UtcDateTime(), nullable=False),
)
"""An anonymous visitor identified as a lead (by a form submit, or by hand)."""

# -- derived state -------------------------------------------------------------------------

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("name", String(ID), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("yaml", Text(), nullable=False),
    Column("uploaded_at", UtcDateTime(), nullable=False),
    Column("active", Boolean(), nullable=False, default=False),
    Column("activated_at", UtcDateTime()),
    UniqueConstraint("name", "version"),
)

Index(
    "uq_model_versions_one_active",
    model_versions.c.active,
    unique=True,
    sqlite_where=model_versions.c.active,
    postgresql_where=model_versions.c.active,
)

qualifications = Table(
    "qualifications",
    metadata,
    Column("lead_id", String(ID), primary_key=True),
    Column("account_id", String(ID), index=True),
    Column("model_version_id", Serial, ForeignKey("model_versions.id")),
    Column("model_name", String(ID), nullable=False),
    Column("model_version", Integer(), nullable=False),
    Column("fit", Double(), nullable=False),
    Column("engagement", Double(), nullable=False),
    Column("total", Double(), nullable=False),
    Column("groups", Text(), nullable=False),
    Column("grade", String(16), nullable=False),
    Column("stage", String(NAME), nullable=False, index=True),
    Column("frameworks", Text(), nullable=False),
    Column("routing", Text()),
    Column("reasons", Text(), nullable=False),
    Column("as_of", UtcDateTime(), nullable=False, index=True),  # the tick's score refresh
    Column("updated_at", UtcDateTime(), nullable=False),
    # where the write stands in commit order, and its number among the transaction's rows
    # (leadqual.store.changes); on PostgreSQL both are the columns' defaults
    Column("change_seq", BigInteger(), nullable=False, server_default="0"),
    Column("change_row", BigInteger(), nullable=False, server_default="0"),
    Index("ix_qualifications_change_seq_change_row", "change_seq", "change_row"),
)
"""Each lead's current qualification (a cache of ``evaluate``); JSON in the Text columns."""

lead_removals = Table(
    "lead_removals",
    metadata,
    Column("lead_id", String(ID), primary_key=True),
    Column("merged_into", String(ID)),
    Column("removed_at", UtcDateTime(), nullable=False),
    Column("change_seq", BigInteger(), nullable=False, server_default="0"),
    Column("change_row", BigInteger(), nullable=False, server_default="0"),
    Index("ix_lead_removals_change_seq_change_row", "change_seq", "change_row"),
)
"""Leads whose qualification was removed (merged into ``merged_into``, or left without a
profile by a recompute), where that stands in commit order: the change feed's tombstones."""

change_feed = Table(
    "change_feed",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("seq", BigInteger(), nullable=False),
    Column("epoch", BigInteger(), nullable=False),
)
"""One row: on SQLite the position of the latest write in the change feed (on
PostgreSQL the position is the writing transaction's id, and ``seq`` stays 0); and the
store's random ``epoch``, which every cursor of the feed carries (drawn again when a
copy from another PostgreSQL server is stamped again)."""

account_status = Table(
    "account_status",
    metadata,
    Column("account_id", String(ID), primary_key=True),
    Column("model_version_id", Serial, ForeignKey("model_versions.id")),
    Column("mqa", Boolean()),
    Column("engaged_leads", Integer(), nullable=False),
    Column("roles_covered", Integer(), nullable=False),
    Column("committee_covered", Boolean()),
    Column("roles", Text(), nullable=False),
    Column("as_of", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("reasons", Text()),
)
"""Each account's MQA and buying-committee status, with its reasons (JSON, like a
qualification's; revision 0007: NULL for a status stored before it, until the account
is evaluated again)."""

stage_history = Table(
    "stage_history",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("lead_id", String(ID), nullable=False),
    Column("from_stage", String(NAME)),
    Column("to_stage", String(NAME), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("cause_kind", String(32), nullable=False),
    Column("cause_rule", String(ID)),
    Column("cause_fact_id", String(ID)),
    Column("model_version_id", Serial, ForeignKey("model_versions.id")),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_stage_history_lead_id_id", "lead_id", "id"),
)
"""Every stage change: ``cause_kind`` is fact, decision, merge (``cause_fact_id`` names the
lead merged in), time (a tick), recompute or model (a switch)."""

assignments = Table(
    "assignments",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("lead_id", String(ID), nullable=False, index=True),
    Column("team", String(ID)),
    Column("rep", String(ID)),
    Column("method", String(32)),
    Column("rule", String(ID), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("model_version_id", Serial, ForeignKey("model_versions.id")),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("reason", Text()),
    Column("ended_at", UtcDateTime()),
    Column("ended_reason", Text()),
    Column("ended_cause", String(32)),
    Index("ix_assignments_team_rep_id", "team", "rep", "id"),
    Index("ix_assignments_rep_ended_at", "rep", "ended_at"),
)
"""Who owns a lead: the open assignment is the lead's one row with ``ended_at`` NULL.
``reason`` says why this rep (revision 0003 adds it and the end columns). Revision
0005 adds the indexes: by team and rep (each rep's latest lead of a team, for territory
turns; a team's leads of reps who are away; a team's queue) and by rep with ``ended_at``
(a rep's open leads in every team, for capacity), so routing does not read the whole
history. Revision 0005 also adds ``ended_cause``: why the assignment ended, as a machine
cause (``routing.router.END_CAUSES``, the ``assignment_ended`` webhook's ``cause``), beside
``ended_reason`` in words; routing reads ``sla_breached`` to keep the lead from the rep who
breached. Rows ended before it have it only if their ``ended_reason`` was a breach's
(``SLA for <stage> breached``), else NULL."""

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("url", Text(), nullable=False),
    Column("secret", Text(), nullable=False),
    Column("event_kinds", Text(), nullable=False),
    Column("active", Boolean(), nullable=False, default=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("disabled_at", UtcDateTime()),
    Column("previous_secret", Text()),
    Column("previous_secret_expires_at", UtcDateTime()),
)
"""A receiver URL, its signing ``secret`` and event kinds (a JSON list). Revision 0006 adds
``previous_secret`` and ``previous_secret_expires_at``: after a rotation, deliveries are
signed with the previous secret too until then, so a receiver can switch without a gap."""

WEBHOOK_STATUSES = ("pending", "delivered", "failed", "dead")
"""pending: to send at ``next_attempt_at``; failed: will be retried; dead: gave up."""

webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column(
        "subscription_id",
        Serial,
        ForeignKey("webhook_subscriptions.id"),
        nullable=False,
        index=True,  # a subscription's deliveries (revision 0004)
    ),
    Column("event_kind", String(NAME), nullable=False),
    Column("payload", Text(), nullable=False),
    Column("status", String(16), nullable=False, default="pending"),
    Column("attempts", Integer(), nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("last_error", Text()),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("delivered_at", UtcDateTime()),
    CheckConstraint("status IN ('pending', 'delivered', 'failed', 'dead')", name="status_known"),
    Index("ix_webhook_outbox_status_next_attempt_at", "status", "next_attempt_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("outbox_id", Serial, ForeignKey("webhook_outbox.id"), nullable=False, index=True),
    Column("attempt", Integer(), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("status_code", Integer()),
    Column("error", Text()),
    Column("duration_ms", Double()),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("name", String(ID), nullable=False),
    Column("prefix", String(32), nullable=False, unique=True),
    Column("salt", String(HASH), nullable=False),
    Column("hash", String(HASH), nullable=False),
    Column("scopes", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime()),
)
"""Only a salted HMAC-SHA256 of each key's secret is kept; ``prefix`` finds the row."""

FACT_TABLES = (lead_profiles, account_profiles, events, answers, decisions, outcomes)

# -- incremental executor state (revision 0002) --------------------------------------------

lead_state = Table(
    "lead_state",
    metadata,
    Column("lead_id", String(ID), primary_key=True),
    Column("account_id", String(ID), index=True),
    Column("link_domain", String(EMAIL), index=True),
    Column("has_profile", Boolean(), nullable=False),
    Column("next_change_at", UtcDateTime(), index=True),
    Column("model_key", String(HASH), nullable=False),
    Column("state", Text(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("member_flags", Text()),
    Column("relink_at", UtcDateTime(), index=True),
)
"""Each lead's incremental state (``leadqual.engine.incremental``), JSON in ``state``.

``account_id`` is the account the lead counts for (explicit, or by its email's
domain), ``link_domain`` the domain that links it when it names no account,
``next_change_at`` the earliest time its stage could change with time alone
(what the tick looks for), ``model_key`` the model the state was built for.
``member_flags`` (revision 0004) is what the lead brings to its account's status
as of its last qualification, or of its last evaluation for that status alone
(``service.ingest._Work._refresh_members``), as JSON ``[engaged, [roles], until]``
(``reference.MemberFlags``): still true until ``until`` (``incremental.flags_change``;
null: until the lead's next fact; rows written before it was stored have no
third item and hold while ``next_change_at`` has not come), so an account's
status needs only its changed members evaluated. ``relink_at`` (revision 0010) is
when the earliest profile of the lead dated ahead of its state comes due
(``LeadState.next_relink``): it may move the lead to another account then, so every
write from that time on takes the lead along until one writes it again."""

account_state = Table(
    "account_state",
    metadata,
    Column("account_id", String(ID), primary_key=True),
    Column("state", Text(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
"""Each account's merged profile attributes for the incremental executor (JSON)."""

account_domains = Table(
    "account_domains",
    metadata,
    Column("domain", String(EMAIL), primary_key=True),
    Column("account_id", String(ID), nullable=False),
)
"""Each company domain to the smallest account id that declares it (free mail excluded)."""

INCREMENTAL_TABLES = (lead_state, account_state, account_domains)

# -- routing (revision 0003) ----------------------------------------------------------------

sla_timers = Table(
    "sla_timers",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("lead_id", String(ID), nullable=False, index=True),
    Column("stage", String(NAME), nullable=False),
    Column("team", String(ID)),
    Column("rep", String(ID)),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("stopped_at", UtcDateTime()),
    Column("stop_cause", Text()),
    Column("breached_at", UtcDateTime()),
    Column("model_version_id", Serial, ForeignKey("model_versions.id")),
    Index("ix_sla_timers_due_at", "due_at"),
)
"""One SLA clock per lead and stage entry (and per re-assignment to a new rep):
running at time *t* while ``breached_at`` is NULL and ``stopped_at`` is NULL or later
than *t* (a touch dated ahead of the write that recorded it stops the clock at its own
time); a touch (a sales decision, a touch event) or leaving the stage stops it; a tick
past ``due_at`` records the breach of a clock not stopped by then."""

routing_cursors = Table(
    "routing_cursors",
    metadata,
    Column("team", String(ID), primary_key=True),
    Column("last_rep", String(ID), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
"""Each team's last round-robin pick, so the rotation survives restarts."""

ROUTING_TABLES = (sla_timers, routing_cursors)
