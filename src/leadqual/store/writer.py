"""The write path: append a batch of facts, idempotently, inside one transaction.

Built for batches: every fact is validated and encoded first, existing ids
are looked up with one ``IN`` query per table and chunk, and new rows go in
with one ``executemany`` per table. Every check (validation, conflicts,
unknown leads) runs before the first write, so a refused batch leaves no
trace even inside a caller's larger transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, false, or_, select
from sqlalchemy.engine import Connection

from leadqual.errors import FactConflictError, UnknownLeadError
from leadqual.facts.freemail import email_domain, is_free_mail
from leadqual.facts.types import Fact
from leadqual.store import codec, locks, schema
from leadqual.store.codec import Encoded
from leadqual.store.identity import Identity, normalise_email, stays_with_its_record
from leadqual.store.statements import InQuery, chunks, insert_many, rows_of

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

    def fact_of(item: Encoded) -> Fact:
        return facts[position[id(item.row)]]

    by_table = _distinct_ids(
        encoded, lambda seen, item: codec.same_payload(fact_of(item), fact_of(seen))
    )
    # The identity look-ups go with the look-up of stored ids (one round trip where
    # pipelined), so they cover every fact sent, the duplicates too.
    lead_ids = {item.row["lead_id"] for item in encoded if item.row.get("lead_id")}
    emails = {
        key
        for item in encoded
        if item.table in ("lead_profiles", "events")
        and (key := normalise_email(item.row["email"])) is not None
    }
    visitors = {
        item.row["visitor_id"]
        for item in encoded
        if item.table == "events" and item.row["visitor_id"] is not None
    }
    named_accounts = {
        item.row["account_id"]
        for item in encoded
        if item.table in ("lead_profiles", "account_profiles") and item.row["account_id"]
    }
    keys = locks.identity_keys(lead_ids, emails, visitors, _domains(encoded), named_accounts)
    identity_locks = locks.send_identity_locks(connection, keys, lead_ids)
    identity = Identity(connection, now)
    queries = _stored_hash_queries(by_table)
    if strict:
        queries.append(_profiles_query(lead_ids))
    stored = identity.preload(lead_ids, emails, visitors, queries)
    if identity_locks is not None:
        rows_of(connection, identity_locks)  # granted before the look-ups sent after it ran

    def same_as_stored(table: str, item: Encoded) -> bool:
        return codec.same_payload(fact_of(item), _stored_fact(connection, table, item.fact_id))

    fresh, duplicates = _new_facts(
        by_table, stored[: len(by_table)], len(encoded), position, same_as_stored
    )
    duplicates += _drop_resent_profiles(connection, fresh, lambda row: facts[position[id(row)]])
    if strict:
        _check_known(identity, fresh, {lead for (lead,) in stored[-1]}, position)

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
            counts_for = identity.canonical(lead) if lead else None
            if (
                table == "decisions"
                and counts_for != lead
                and stays_with_its_record(row["action"], row["reason"])
            ):
                counts_for = None  # a merged record's duplicate disqualification
            new_facts.append((position[id(row)], counts_for))
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


def _domains(encoded: Sequence[Encoded]) -> set[str]:
    """The domains a batch may link leads by: its lead profiles' email domains and its
    account profiles' domains (free-mail ones link nobody)."""
    found: set[str] = set()
    for item in encoded:
        if item.table == "lead_profiles":
            domain = email_domain(normalise_email(item.row["email"]))
        elif item.table == "account_profiles":
            domain = (item.row["domain"] or "").strip().lower() or None
        else:
            continue
        if domain is not None and not is_free_mail(domain):
            found.add(domain)
    return found


def _distinct_ids(
    encoded: list[Encoded], same: Callable[[Encoded, Encoded], bool]
) -> dict[str, dict[str, Encoded]]:
    """Each table's facts by id, a fact sent twice kept once (the first).

    Raises FactConflictError, before anything is written, for an id sent twice
    with different payloads (``same``: whether two whose hashes differ are the
    same payload all the same, see ``codec.same_payload``).
    """
    by_table: dict[str, dict[str, Encoded]] = {name: {} for name in TABLES}
    for index, item in enumerate(encoded):
        seen = by_table[item.table].get(item.fact_id)
        if seen is None:
            by_table[item.table][item.fact_id] = item
        elif seen.row["payload_hash"] != item.row["payload_hash"] and not same(seen, item):
            raise FactConflictError(
                f"{KIND[item.table]} '{item.fact_id}' appears twice in the batch with different "
                "payloads",
                position=index,
                field=_id_field(item.table),
            )
    return by_table


def _id_field(table: str) -> str | None:
    """The name of a fact's id as sent (``event_id``); None for a profile, whose id is a
    digest of its content."""
    key: str = TABLES[table].primary_key.columns.values()[0].key
    return None if table.endswith("_profiles") else key


def _stored_hash_queries(by_table: dict[str, dict[str, Encoded]]) -> list[InQuery]:
    """Per fact table (in ``by_table``'s order): the select of the stored payload hashes
    of its ids."""
    return [
        InQuery(("writer.stored", name), _stored_hashes(TABLES[name]), list(items))
        for name, items in by_table.items()
    ]


def _new_facts(
    by_table: dict[str, dict[str, Encoded]],
    stored: list[list[tuple[Any, ...]]],
    sent: int,
    position: dict[int, int],
    same_as_stored: Callable[[str, Encoded], bool],
) -> tuple[dict[str, list[codec.Row]], int]:
    """The rows not stored yet, per table, and how many of the ``sent`` facts were
    duplicates, from each table's stored (id, payload hash) pairs.

    Raises FactConflictError, before anything is written, for an id already
    stored with a different payload (``position``: a row's place in the append;
    ``same_as_stored``: whether one whose hash differs is the stored payload all
    the same, see ``codec.same_payload``).
    """
    fresh: dict[str, list[codec.Row]] = {}
    for (name, items), rows in zip(by_table.items(), stored, strict=True):
        items = dict(items)
        for fact_id, stored_hash in rows:
            item = items[fact_id]
            row = item.row
            if row["payload_hash"] != stored_hash and not same_as_stored(name, item):
                raise FactConflictError(
                    f"{KIND[name]} '{fact_id}' is already stored with a different payload",
                    position=position[id(row)],
                    field=_id_field(name),
                )
            del items[fact_id]
        fresh[name] = [item.row for item in items.values()]
    return fresh, sent - sum(len(rows) for rows in fresh.values())


def _drop_resent_profiles(
    connection: Connection, fresh: dict[str, list[codec.Row]], fact_of: Callable[[codec.Row], Fact]
) -> int:
    """Drop from ``fresh`` the profiles already stored with their numbers written another
    way (``42.0`` for ``42``): a profile's id is the hash of its content, so such a
    profile comes with an id of its own. It is the stored profile, sent again, when its
    lead (account) has a stored profile at the same time with the same payload as JSON
    reads it (``codec.same_payload``), or one earlier in the batch has. Returns how many
    were dropped."""
    dropped = 0
    for table, owner in (("lead_profiles", "lead_id"), ("account_profiles", "account_id")):
        rows = fresh[table]
        if not rows:
            continue
        t = TABLES[table]
        owners = sorted({row[owner] for row in rows})
        times = {row["at"] for row in rows}
        dated = [at for at in times if at is not None]
        same_time = or_(t.c.at.in_(dated), t.c.at.is_(None) if None in times else false())
        stored: dict[tuple[str, Any], list[Fact]] = {}
        for part in chunks(owners):
            query = select(t).where(t.c[owner].in_(part), same_time)
            for found in connection.execute(query).mappings():
                fact = codec.DECODERS[table](found)
                stored.setdefault((found[owner], fact.at), []).append(fact)
        kept = []
        for row in rows:
            sent = fact_of(row)
            earlier = stored.setdefault((row[owner], row["at"]), [])
            if any(codec.same_payload(sent, fact) for fact in earlier):
                dropped += 1
            else:
                kept.append(row)
                earlier.append(sent)  # a copy later in the batch is a duplicate of it
        fresh[table] = kept
    return dropped


def _stored_fact(connection: Connection, table: str, fact_id: str) -> Fact:
    """The stored fact of a table with this id (read only when a fact is sent again with
    another payload hash: rare)."""
    t = TABLES[table]
    key = t.primary_key.columns.values()[0]
    row = connection.execute(select(t).where(key == fact_id)).mappings().one()
    return codec.DECODERS[table](row)


def _stored_hashes(table: Table) -> Callable[[Any], Any]:
    """The select of stored payload hashes of a fact table, by id."""
    key = table.primary_key.columns.values()[0]
    return lambda ids: select(key, table.c.payload_hash).where(key.in_(ids))


def _profiles_query(lead_ids: Iterable[str]) -> InQuery:
    """The select of the leads among these that have a stored profile."""
    p = schema.lead_profiles
    return InQuery(
        ("writer.known",), lambda ids: select(p.c.lead_id).where(p.c.lead_id.in_(ids)).distinct(),
        lead_ids,
    )  # fmt: skip


def _check_known(
    identity: Identity,
    fresh: dict[str, list[codec.Row]],
    stored_profiles: set[str],
    position: dict[int, int],
) -> None:
    """Refuse facts about leads nobody has told the store about (``stored_profiles``:
    the leads of the batch with a stored profile) with an UnknownLeadError naming the
    fact's place in the append (``position``) and how it named the lead."""
    known = stored_profiles | {row["lead_id"] for row in fresh["lead_profiles"]}
    known_emails = {normalise_email(row["email"]) for row in fresh["lead_profiles"]}
    for table in ("events", "answers", "decisions", "outcomes"):
        for row in fresh[table]:
            lead, fact_id = row["lead_id"], row[TABLES[table].primary_key.columns.values()[0].key]
            if lead:
                if lead not in known and lead not in identity.aliases:
                    raise UnknownLeadError(
                        f"{KIND[table]} '{fact_id}': unknown lead '{lead}'",
                        position=position[id(row)],
                        field="lead_id",
                    )
                continue
            email = normalise_email(row.get("email"))
            if email is not None and email not in identity.emails and email not in known_emails:
                raise UnknownLeadError(
                    f"{KIND[table]} '{fact_id}': no lead has the email '{email}'",
                    position=position[id(row)],
                    field="email",
                )
