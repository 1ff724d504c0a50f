"""The write path: append a batch of facts, idempotently, inside one transaction.

Built for batches: every fact is validated and encoded first, existing ids
are looked up with one ``IN`` query per table and chunk, and new rows go in
with one ``executemany`` per table. Every check (validation, conflicts,
unknown leads) runs before the first write, so a refused batch leaves no
trace even inside a caller's larger transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from leadqual.errors import ConflictError, NotFoundError
from leadqual.facts.types import Fact
from leadqual.store import codec, schema
from leadqual.store.codec import Encoded
from leadqual.store.identity import Identity, normalise_email
from leadqual.store.statements import insert_many, select_in

TABLES: dict[str, Table] = {table.name: table for table in schema.FACT_TABLES}
KIND = {
    "lead_profiles": "lead profile",
    "account_profiles": "account profile",
    "events": "event",
    "answers": "answer",
    "decisions": "decision",
    "outcomes": "outcome",
}
"""How each table's facts are named in messages."""


@dataclass(frozen=True)
class AppendResult:
    """What an append did.

    ``accepted`` facts were new; ``duplicates`` were already stored (or sent
    twice) with the same payload. ``leads`` and ``accounts`` are the ids whose
    facts changed (leads by their surviving id), for callers that update
    derived state; ``merges`` lists ``(merged_away, survivor)`` lead pairs.

    For the incremental executor: ``new_facts`` pairs the position (in the
    appended sequence) of every accepted fact with the lead it counts for now
    (None: an account profile, or an event attributed to no lead yet), and
    ``reattributed`` names the leads that gained facts stored earlier (a
    visitor identified, an email's events attached), whose state must be
    rebuilt from the log rather than updated.
    """

    accepted: int
    duplicates: int
    leads: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    merges: tuple[tuple[str, str], ...] = ()
    new_facts: tuple[tuple[int, str | None], ...] = ()
    reattributed: frozenset[str] = frozenset()


def append_facts(
    connection: Connection, facts: Sequence[Fact], now: datetime, *, strict: bool = False
) -> AppendResult:
    """Append ``facts`` on ``connection`` (already in a transaction).

    With ``strict``, a fact about a lead the store does not know (no profile
    stored or in the batch, and not a merged id), or an event whose email
    names no known lead, raises NotFoundError. Anonymous events (a visitor id
    only) are always accepted.
    """
    encoded = [codec.encode(fact, index, now) for index, fact in enumerate(facts)]
    position = {id(item.row): index for index, item in enumerate(encoded)}
    fresh, duplicates = _new_facts(connection, encoded)
    identity = Identity(connection, now)
    lead_ids = {row["lead_id"] for rows in fresh.values() for row in rows if row.get("lead_id")}
    emails = {
        key
        for table in ("lead_profiles", "events")
        for row in fresh[table]
        if (key := normalise_email(row["email"])) is not None
    }
    visitors = {row["visitor_id"] for row in fresh["events"] if row["visitor_id"] is not None}
    identity.preload(lead_ids, emails, visitors)
    if strict:
        _check_known(connection, identity, fresh)

    touched: set[str] = set()
    accounts: set[str] = set()
    profiles = fresh["lead_profiles"]
    if profiles:
        insert_many(connection, schema.lead_profiles, profiles)
        for row in profiles:
            identity.claim_email(row["lead_id"], row["email"])
            touched.add(row["lead_id"])
            if row["account_id"]:
                accounts.add(row["account_id"])
    if fresh["account_profiles"]:
        insert_many(connection, schema.account_profiles, fresh["account_profiles"])
        accounts.update(row["account_id"] for row in fresh["account_profiles"])
    event_rows = fresh["events"]
    if event_rows:
        resolve = identity.resolve
        for row in event_rows:
            lead = resolve(row["lead_id"], row["email"], row["visitor_id"])
            row["resolved_lead_id"] = lead
            if lead is not None:
                touched.add(lead)
        insert_many(connection, schema.events, event_rows)
        for row in event_rows:
            visitor, lead = row["visitor_id"], row["resolved_lead_id"]
            if visitor is not None and lead is not None and (row["lead_id"] or row["email"]):
                identity.link_visitor(visitor, lead, row["event_id"], row["at"])
    for table in ("answers", "decisions", "outcomes"):
        if fresh[table]:
            insert_many(connection, TABLES[table], fresh[table])
            touched.update(row["lead_id"] for row in fresh[table])
    attached = identity.attach_pending()
    touched.update(attached)
    accepted = sum(len(rows) for rows in fresh.values())
    new_facts: list[tuple[int, str | None]] = []
    for table, rows in fresh.items():
        column = "resolved_lead_id" if table == "events" else "lead_id"
        for row in rows:
            lead = row.get(column)
            new_facts.append((position[id(row)], identity.canonical(lead) if lead else None))
    new_facts.sort()
    return AppendResult(
        accepted=accepted,
        duplicates=duplicates,
        leads=frozenset(identity.canonical(lead) for lead in touched),
        accounts=frozenset(accounts),
        merges=tuple(identity.merges),
        new_facts=tuple(new_facts),
        reattributed=frozenset(identity.canonical(lead) for lead in attached),
    )


def _new_facts(
    connection: Connection, encoded: list[Encoded]
) -> tuple[dict[str, list[codec.Row]], int]:
    """The rows not stored yet, per table, and how many facts were duplicates.

    Raises ConflictError, before anything is written, for an id sent twice
    with different payloads or already stored with a different payload.
    """
    by_table: dict[str, dict[str, Encoded]] = {name: {} for name in TABLES}
    duplicates = 0
    for item in encoded:
        seen = by_table[item.table].get(item.fact_id)
        if seen is None:
            by_table[item.table][item.fact_id] = item
        elif seen.row["payload_hash"] == item.row["payload_hash"]:
            duplicates += 1
        else:
            raise ConflictError(
                f"{KIND[item.table]} '{item.fact_id}' appears twice in the batch with different "
                "payloads; nothing from this batch was written"
            )
    fresh: dict[str, list[codec.Row]] = {}
    for name, items in by_table.items():
        table = TABLES[name]
        stored = list(
            select_in(connection, ("writer.stored", name), _stored_hashes(table), list(items))
        )
        for fact_id, stored_hash in stored:
            if items[fact_id].row["payload_hash"] != stored_hash:
                raise ConflictError(
                    f"{KIND[name]} '{fact_id}' is already stored with a different payload; "
                    "nothing from this batch was written"
                )
            del items[fact_id]
            duplicates += 1
        fresh[name] = [item.row for item in items.values()]
    return fresh, duplicates


def _stored_hashes(table: Table) -> Callable[[Any], Any]:
    """The select of stored payload hashes of a fact table, by id."""
    key = table.primary_key.columns.values()[0]
    return lambda ids: select(key, table.c.payload_hash).where(key.in_(ids))


def _check_known(
    connection: Connection, identity: Identity, fresh: dict[str, list[codec.Row]]
) -> None:
    """Refuse facts about leads nobody has told the store about."""
    known = {row["lead_id"] for row in fresh["lead_profiles"]}
    known_emails = {normalise_email(row["email"]) for row in fresh["lead_profiles"]}
    wanted = {
        row["lead_id"]
        for table in ("events", "answers", "decisions", "outcomes")
        for row in fresh[table]
        if row["lead_id"] and row["lead_id"] not in known and row["lead_id"] not in identity.aliases
    }
    p = schema.lead_profiles
    rows = select_in(
        connection,
        ("writer.known",),
        lambda ids: select(p.c.lead_id).where(p.c.lead_id.in_(ids)).distinct(),
        wanted,
    )
    known.update(lead for (lead,) in rows)
    for table in ("events", "answers", "decisions", "outcomes"):
        for row in fresh[table]:
            lead, fact_id = row["lead_id"], row[TABLES[table].primary_key.columns.values()[0].key]
            if lead:
                if lead not in known and lead not in identity.aliases:
                    raise NotFoundError(
                        f"{KIND[table]} '{fact_id}': unknown lead '{lead}'; "
                        "send the lead's profile first (or in the same batch)"
                    )
                continue
            email = normalise_email(row.get("email"))
            if email is not None and email not in identity.emails and email not in known_emails:
                raise NotFoundError(
                    f"{KIND[table]} '{fact_id}': no lead has the email '{email}'; "
                    "send the lead's profile first (or in the same batch)"
                )
