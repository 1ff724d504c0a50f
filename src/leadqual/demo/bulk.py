"""Generate large, realistic fact files (millions of leads and events) as Parquet.

``generate.py`` builds one Python object per fact: right for a 3,000-lead demo,
far too slow and too big for 5 million leads and 50 million events. This
module draws whole columns at once with numpy and writes them with pyarrow,
the events (and leads) in chunks through a ``ParquetWriter``, so memory is
bounded by the chunk size plus a few bytes per lead, whatever the total.

The files follow the column layout of ``docs/input-formats.md`` (and the
relational fact contract of the compiled executors): ``leads``, ``accounts``,
``events`` (properties ``url``, ``asset``, ``campaign`` and ``channel`` as
their own columns), and small ``answers``, ``decisions`` and ``outcomes``.
Every timestamp is ``timestamp[us, tz=UTC]``.

What makes the data realistic enough to benchmark on:

* activity is heavy-tailed: about 40% of leads never do anything, the others
  get a Pareto-distributed share of the events (a few heavy users make most);
* events spread over ``days`` before ``end``, more on weekdays and in local
  office hours, growing towards ``end`` (marketing grows), each lead active
  from its creation and many going quiet after a while;
* event types have realistic frequencies (page views and email opens
  dominate, demo requests are rare), with properties on the types that have
  them;
* 5% of events name their lead by email only, 1% of emails are mixed case,
  10% of leads have a later profile update, about half of the leads at a known
  company are linked by ``account_id`` and the rest by their email domain.

The vocabulary (industries, countries, seniorities, urls, campaigns...) comes
from ``generate.py``. Everything derives from ``seed``: the same arguments
give byte-for-byte the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from leadqual.demo.generate import (
    _BRAND_HEADS,
    _BRAND_TAILS,
    _BRAND_TLDS,
    _BROWSE_URLS,
    _CLICK_URLS,
    _CONTENT,
    _COUNTRIES,
    _COUNTRY_TLD,
    _COUNTRY_WEIGHTS,
    _CRITERIA,
    _DEPARTMENT_WEIGHTS,
    _DEPARTMENTS,
    _EMAIL_CAMPAIGNS,
    _FIRST_NAMES,
    _FREE_MAIL,
    _FREE_MAIL_WEIGHTS,
    _INDUSTRIES,
    _INDUSTRY_WEIGHTS,
    _LAST_NAMES,
    _LEAD_SOURCE_WEIGHTS,
    _LEAD_SOURCES,
    _NAME_PREFIXES,
    _NAME_SUFFIXES,
    _PROMOTION,
    _REGION,
    _SALES_REPS,
    _SENIORITIES,
    _SENIORITY_FIT,
    _SENIORITY_WEIGHTS_COMPANY,
    _SENIORITY_WEIGHTS_FREE_MAIL,
    _TIMEFRAME_WEIGHTS,
    _TIMEFRAMES,
    _TITLES,
    _TRADE_SHOWS,
    _WEBINARS,
)

__all__ = ["DEFAULT_END", "EVENT_TYPE_WEIGHTS", "FILES", "generate_bulk"]

Ints: TypeAlias = npt.NDArray[np.int64]
Floats: TypeAlias = npt.NDArray[np.float64]
Bools: TypeAlias = npt.NDArray[np.bool_]

DEFAULT_END = datetime(2026, 6, 30, tzinfo=UTC)
"""The end of the generated period when none is given (the demo's, for comparable data)."""

FILES: tuple[str, ...] = ("leads", "accounts", "events", "answers", "decisions", "outcomes")
"""The files written, each ``<name>.parquet``."""

EVENTS_PER_CHUNK = 2_000_000
"""Events drawn and written at a time: the memory bound of event generation."""

LEADS_PER_CHUNK = 1_000_000
"""Lead profiles drawn and written at a time."""

EVENT_TYPE_WEIGHTS: dict[str, float] = {
    "page_view": 44.0,
    "email_open": 27.0,
    "email_click": 7.0,
    "product_login": 5.0,
    "form_submit": 3.0,
    "content_download": 3.0,
    "ad_click": 2.5,
    "social_engagement": 1.5,
    "webinar_register": 1.2,
    "webinar_attend": 0.7,
    "email_bounce": 0.8,
    "chat": 0.6,
    "email_unsubscribe": 0.4,
    "event_register": 0.4,
    "event_attend": 0.2,
    "case_study_request": 0.2,
    "trial_signup": 0.2,
    "demo_request": 0.15,
    "contact_request": 0.15,
    "meeting_booked": 0.1,
    "call_completed": 0.1,
}
"""Relative frequency of each event type: page views and email opens dominate."""

_DAY = 86_400
_MICROS = 1_000_000
_TIMESTAMP = pa.timestamp("us", tz="UTC")

_IDLE_SHARE = 0.4
"""About this share of leads never has an event."""
_PARETO_SHAPE = 1.2
"""Tail of the per-lead activity weight: lower means heavier heavy users."""
_MAX_WEIGHT = 1000.0
"""No lead outweighs this many times the least active one (a bot, not a buyer)."""
_GROWTH = 1.0
"""Event volume grows by e^_GROWTH over the period."""
_WEEKDAY_FACTOR = np.array([1.0, 1.05, 1.05, 1.0, 0.85, 0.25, 0.2])
"""Activity by day of the week, Monday first."""
_HOUR_WEIGHTS = np.array([
    1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 5, 8, 9, 9,  # midnight to 11:00
    6.5, 8, 9, 8.5, 7, 5, 3.5, 3, 2.8, 2.5, 2, 1.5,  # noon to 23:00
])  # fmt: skip
"""Activity by local hour of the day: office hours, a lunch dip, a quiet night."""
_UTC_OFFSET_HOURS = {
    "US": -6.0,
    "CA": -5.0,
    "BR": -3.0,
    "GB": 0.0,
    "DE": 1.0,
    "FR": 1.0,
    "NL": 1.0,
    "ES": 1.0,
    "IN": 5.5,
    "AU": 10.0,
}

_CHANNELS_WEB: tuple[str, ...] = ("organic", "paid_search", "direct", "email", "social", "referral")
_CHANNELS_WEB_WEIGHTS = (38, 18, 17, 12, 9, 6)
_CHANNELS_AD: tuple[str, ...] = ("paid_search", "linkedin", "display", "facebook")
_CHANNELS_AD_WEIGHTS = (45, 30, 15, 10)
_CHANNELS_SOCIAL: tuple[str, ...] = ("linkedin", "twitter", "youtube")
_CHANNELS_SOCIAL_WEIGHTS = (60, 25, 15)
_AD_CAMPAIGNS: tuple[str, ...] = ("brand-search", "competitor-search", "retargeting", "abm-tier1")

Progress: TypeAlias = Callable[[int], None]


def generate_bulk(
    out_dir: Path,
    leads: int,
    events: int,
    *,
    seed: int = 7,
    end: datetime | None = None,
    days: int = 365,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Write ``leads`` leads and exactly ``events`` events (and their accounts...) as Parquet.

    Every time falls within ``[end - days, end]`` (``end`` defaults to
    ``DEFAULT_END``). ``progress`` is called with the number of events written
    so far after each chunk. Returns the path of each file by kind
    (``FILES``); existing files of those names are replaced.
    """
    if leads < 0 or events < 0 or days < 1:
        raise ValueError("leads and events must be >= 0 and days >= 1")
    if events > 0 and leads == 0:
        raise ValueError("events need leads: give leads >= 1")
    end = DEFAULT_END if end is None else end
    if end.tzinfo is None or end.utcoffset() is None:
        raise ValueError("end must be timezone-aware")
    end_ts = int((end.astimezone(UTC) - timedelta(microseconds=end.microsecond)).timestamp())
    start_ts = end_ts - days * _DAY
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / f"{kind}.parquet" for kind in FILES}

    clock = _Clock(start_ts, end_ts)
    accounts = _Accounts.draw(_rng(seed, 0), max(1, leads // 10) if leads else 0)
    pq.write_table(accounts.table(start_ts), paths["accounts"])
    people = _People.draw(_rng(seed, 1), leads, accounts, clock)
    emails = _write_leads(paths["leads"], seed, people, accounts, clock)
    quiet = _quiet_times(_rng(seed, 3), people, clock)
    counts = _event_counts(
        _rng(seed, 2), people, events, clock.position(quiet) - clock.position(people.created)
    )
    _write_events(paths["events"], seed, people, emails, counts, quiet, clock, progress)
    _write_sales(paths, _rng(seed, 4), people, counts, clock)
    return paths


# --- shared helpers ----------------------------------------------------------------------


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent random stream per part, so that parts do not shift each other."""
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def _pick(rng: np.random.Generator, weights: Sequence[float] | Floats, size: int) -> Ints:
    """Indices drawn with the given relative weights."""
    p = np.asarray(weights, dtype=np.float64)
    drawn: Ints = rng.choice(len(p), size=size, p=p / p.sum()).astype(np.int64)
    return drawn


def _take(values: Sequence[str], indices: Ints, valid: Bools | None = None) -> pa.Array:
    """``values[i]`` for each index as a string array; null where ``valid`` is False."""
    mask = None if valid is None else ~valid
    return pc.take(pa.array(values, pa.string()), pa.array(indices, mask=mask))


def _ids(prefix: str, start: int, count: int, width: int) -> pa.Array:
    """``prefix`` followed by the zero-padded numbers ``start + 1 .. start + count``."""
    numbers = pc.cast(pa.array(np.arange(start + 1, start + count + 1)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, width, "0"), "")


def _id_width(count: int) -> int:
    return max(5, len(str(count)))


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _times(seconds: Ints | Floats) -> pa.Array:
    micros = np.rint(np.asarray(seconds, dtype=np.float64) * _MICROS).astype(np.int64)
    return pa.array(micros, type=_TIMESTAMP)


class _Clock:
    """When things happen: day weights with growth and weekly rhythm, local office hours.

    The day-level density is a piecewise-constant CDF over the period, so a
    time can be drawn between any two moments (a lead's creation and when it
    went quiet) by inverting it; the hour comes from the local office-hours
    profile of the lead's country.
    """

    def __init__(self, start_ts: int, end_ts: int) -> None:
        self.start = start_ts
        self.end = end_ts
        days = (end_ts - start_ts) // _DAY
        index = np.arange(days)
        weekday = (np.floor(start_ts / _DAY).astype(np.int64) + index + 3) % 7  # 1970-01-01: Thu
        weights = np.exp(_GROWTH * index / max(1, days)) * _WEEKDAY_FACTOR[weekday]
        self.cdf = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
        self.hour_p = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()
        self.offsets = np.array([_UTC_OFFSET_HOURS[c] * 3600 for c in _COUNTRIES])

    def position(self, ts: Ints | Floats) -> Floats:
        """Where each time falls in the CDF (0 at the start, 1 at the end)."""
        offset = (np.asarray(ts, dtype=np.float64) - self.start) / _DAY
        offset = np.clip(offset, 0.0, len(self.cdf) - 1.0)
        day = np.minimum(offset.astype(np.int64), len(self.cdf) - 2)
        frac = offset - day
        result: Floats = self.cdf[day] + frac * (self.cdf[day + 1] - self.cdf[day])
        return result

    def draw(
        self, rng: np.random.Generator, low: Ints | Floats, high: Ints | Floats, country: Ints
    ) -> Ints:
        """One time (whole seconds) per row between ``low`` and ``high``."""
        n = len(country)
        a, b = self.position(low), self.position(high)
        u = a + rng.random(n) * (b - a)
        day = np.searchsorted(self.cdf, u, side="right") - 1
        day = np.clip(day, 0, len(self.cdf) - 2)
        hour = rng.choice(24, size=n, p=self.hour_p)
        local = hour * 3600 + rng.integers(0, 3600, size=n)
        at = self.start + day * _DAY + local - self.offsets[country]
        drawn: Ints = np.clip(
            at.astype(np.int64), np.asarray(low, np.int64), np.asarray(high, np.int64)
        )
        return drawn


# --- accounts ----------------------------------------------------------------------------


class _Accounts:
    """Companies with an account record: what leads need to link to and inherit."""

    def __init__(
        self, industry: Ints, country: Ints, employees: Ints, name: pa.Array, domain: pa.Array
    ) -> None:
        self.industry = industry
        self.country = country
        self.employees = employees
        self.name = name
        self.domain = domain
        self.revenue: Floats = np.zeros(len(industry))
        self.fit = _account_fit(industry, employees)

    @classmethod
    def draw(cls, rng: np.random.Generator, count: int) -> _Accounts:
        industry = _pick(rng, _INDUSTRY_WEIGHTS, count)
        country = _pick(rng, _COUNTRY_WEIGHTS, count)
        # Log-normal head count: median about 220, half between 50 and 1000.
        employees = np.clip(np.rint(np.exp(rng.normal(5.4, 2.2, count))), 2, 50_000).astype(
            np.int64
        )
        prefix = _take(_NAME_PREFIXES, rng.integers(0, len(_NAME_PREFIXES), count))
        suffixes, first_suffix, n_suffixes = _flatten([_NAME_SUFFIXES[i] for i in _INDUSTRIES])
        suffix_index = first_suffix[industry] + (rng.random(count) * n_suffixes[industry]).astype(
            np.int64
        )
        name = pc.binary_join_element_wise(prefix, _take(suffixes, suffix_index), " ")
        slug = pc.replace_substring(pc.utf8_lower(name), " ", "-")
        tld_names = [".com", ".gov", ".org", *_COUNTRY_TLD.values()]
        tld = np.zeros(count, dtype=np.int64)
        local_tld = np.array(
            [tld_names.index(_COUNTRY_TLD[c]) if c in _COUNTRY_TLD else 0 for c in _COUNTRIES]
        )
        use_local = rng.random(count) < 0.5
        tld = np.where(use_local, local_tld[country], tld)
        government = industry == _INDUSTRIES.index("government")
        us = country == _COUNTRIES.index("US")
        tld = np.where(government, np.where(us, 1, 2), tld)
        # The account number keeps domains unique, as account records require.
        numbers = pc.cast(pa.array(np.arange(1, count + 1)), pa.string())
        domain = _join(slug, "-", numbers, _take(tld_names, tld))
        accounts = cls(industry, country, employees, name, domain)
        accounts.revenue = np.round(employees * 150_000.0 * rng.lognormal(0.0, 0.35, count), -3)
        return accounts

    def __len__(self) -> int:
        return len(self.industry)

    def ids(self) -> pa.Array:
        return _ids("A-", 0, len(self), _id_width(len(self)))

    def table(self, start_ts: int) -> pa.Table:
        n = len(self)
        regions = [_REGION[c] for c in _COUNTRIES]
        return pa.table(
            {
                "account_id": self.ids(),
                "domain": self.domain,
                "updated_at": pa.nulls(n, _TIMESTAMP),
                "name": self.name,
                "industry": _take(_INDUSTRIES, self.industry),
                "employees": pa.array(self.employees.astype(np.float64)),
                "annual_revenue": pa.array(self.revenue),
                "country": _take(_COUNTRIES, self.country),
                "region": _take(regions, self.country),
            }
        )


def _flatten(groups: Sequence[Sequence[str]]) -> tuple[list[str], Ints, Ints]:
    """Groups of words as one list, with each group's first index and length."""
    flat: list[str] = []
    first: list[int] = []
    for group in groups:
        first.append(len(flat))
        flat.extend(group)
    return flat, np.array(first, dtype=np.int64), np.array([len(g) for g in groups], np.int64)


def _account_fit(industry: Ints, employees: Ints) -> Floats:
    """How much the company looks like the ideal customer, as in ``generate.py``."""
    names = np.array(_INDUSTRIES)[industry]
    fit = np.where(np.isin(names, ["software", "fintech"]), 1.0, 0.55)
    fit = np.where(np.isin(names, ["consulting", "media", "healthcare"]), 0.65, fit)
    result: Floats = np.where((employees >= 50) & (employees <= 5000), fit, fit * 0.5)
    return result


# --- leads -------------------------------------------------------------------------------

_AT_ACCOUNT, _FREE, _BRAND = 0, 1, 2


class _People:
    """The per-lead values the events and sales facts depend on (a few bytes per lead)."""

    def __init__(
        self,
        kind: Ints,
        account: Ints,
        seniority: Ints,
        country: Ints,
        created: Ints,
        fit: Floats,
    ) -> None:
        self.kind = kind
        self.account = account
        self.seniority = seniority
        self.country = country
        self.created = created
        self.fit = fit

    def __len__(self) -> int:
        return len(self.kind)

    @classmethod
    def draw(
        cls, rng: np.random.Generator, count: int, accounts: _Accounts, clock: _Clock
    ) -> _People:
        x = rng.random(count)
        kind = np.where(x < 0.80, _AT_ACCOUNT, np.where(x < 0.95, _FREE, _BRAND))
        if not len(accounts):
            kind = np.where(kind == _AT_ACCOUNT, _BRAND, kind)
        weights = accounts.employees**0.35 * rng.lognormal(0.0, 0.5, len(accounts))
        account = _pick(rng, weights, count) if len(accounts) else np.zeros(count, np.int64)
        account = np.where(kind == _AT_ACCOUNT, account, -1)
        free = kind == _FREE
        seniority = np.where(
            free,
            _pick(rng, _SENIORITY_WEIGHTS_FREE_MAIL, count),
            _pick(rng, _SENIORITY_WEIGHTS_COMPANY, count),
        )
        at_account = account >= 0
        country = np.where(
            at_account,
            accounts.country[np.maximum(account, 0)] if len(accounts) else 0,
            _pick(rng, _COUNTRY_WEIGHTS, count),
        )
        # A third of the leads were in the database when the period starts (imported in
        # its first days); the rest arrive like activity does: on weekdays, more lately.
        latest = max(clock.start, clock.end - 3600)
        existing = rng.random(count) < 1 / 3
        first_days = min(latest, clock.start + 7 * _DAY)
        created = clock.draw(
            rng,
            np.full(count, clock.start),
            np.where(existing, first_days, latest),
            country.astype(np.int64),
        )
        company_fit = np.where(
            at_account,
            accounts.fit[np.maximum(account, 0)] if len(accounts) else 0.5,
            np.where(free, 0.2, 0.5),
        )
        seniority_fit = np.array([_SENIORITY_FIT[s] for s in _SENIORITIES])[seniority]
        return cls(
            kind.astype(np.int64),
            account.astype(np.int64),
            seniority.astype(np.int64),
            country.astype(np.int64),
            created,
            seniority_fit * company_fit,
        )


def _write_leads(
    path: Path, seed: int, people: _People, accounts: _Accounts, clock: _Clock
) -> pa.ChunkedArray:
    """Lead profiles in chunks, each followed by the later updates of ~10% of its leads.

    Returns every lead's email, by lead index: the events that name their lead
    by email need it.
    """
    width = _id_width(len(people))
    schema = _lead_schema()
    emails: list[pa.Array] = []
    with pq.ParquetWriter(path, schema) as writer:
        for chunk, lo in enumerate(range(0, len(people), LEADS_PER_CHUNK)):
            hi = min(len(people), lo + LEADS_PER_CHUNK)
            rng = _rng(seed, 10, chunk)
            rows = _lead_rows(rng, people, accounts, lo, hi, width)
            emails.extend(rows["email"].chunks)
            writer.write_table(rows)
            writer.write_table(_lead_updates(rng, people, rows, lo, clock))
        if not len(people):
            writer.write_table(schema.empty_table())
    return pa.chunked_array(emails, pa.string())


def _lead_schema() -> pa.Schema:
    strings = ("lead_id", "email", "account_id")
    fields = [pa.field(name, pa.string()) for name in strings]
    fields.append(pa.field("updated_at", _TIMESTAMP))
    for name in (
        "first_name",
        "last_name",
        "title",
        "seniority",
        "department",
        "country",
        "industry",
        "company_name",
        "lead_source",
    ):
        fields.append(pa.field(name, pa.string()))
    fields += [pa.field("employees", pa.float64()), pa.field("budget_usd", pa.float64())]
    fields.append(pa.field("timeframe", pa.string()))
    return pa.schema(fields)


def _lead_rows(
    rng: np.random.Generator,
    people: _People,
    accounts: _Accounts,
    lo: int,
    hi: int,
    width: int,
) -> pa.Table:
    n = hi - lo
    kind = people.kind[lo:hi]
    account = people.account[lo:hi]
    seniority = people.seniority[lo:hi]
    at_account, free, brand = kind == _AT_ACCOUNT, kind == _FREE, kind == _BRAND
    safe_account = np.maximum(account, 0)
    lead_id = _ids("L-", lo, n, width)

    # Emails: first.last<number>@domain keeps them unique; free-mail styles vary.
    first = rng.integers(0, len(_FIRST_NAMES), n)
    last = rng.integers(0, len(_LAST_NAMES), n)
    first_lower = _take([f.lower() for f in _FIRST_NAMES], first)
    last_lower = _take([s.lower() for s in _LAST_NAMES], last)
    number = pc.cast(pa.array(np.arange(lo + 1, hi + 1)), pa.string())
    style = rng.integers(0, 3, n)
    initial = pc.utf8_slice_codeunits(first_lower, 0, 1)
    local = pc.if_else(
        pa.array(free & (style == 1)),
        _join(first_lower, last_lower, number),
        pc.if_else(
            pa.array(free & (style == 2)),
            _join(initial, last_lower, number),
            _join(first_lower, ".", last_lower, number),
        ),
    )
    n_brands = max(1, len(people) // 40)
    brand_index = rng.integers(0, n_brands, n)
    brand_word = _join(
        _take(_BRAND_HEADS, brand_index % len(_BRAND_HEADS)),
        _take(_BRAND_TAILS, (brand_index // len(_BRAND_HEADS)) % len(_BRAND_TAILS)),
    )
    brand_domain = _join(
        brand_word,
        pc.cast(pa.array(brand_index + 1), pa.string()),
        _take(_BRAND_TLDS, brand_index % len(_BRAND_TLDS)),
    )
    free_domain = _take(_FREE_MAIL, _pick(rng, _FREE_MAIL_WEIGHTS, n))
    account_domain = pc.take(accounts.domain, pa.array(safe_account)) if len(accounts) else None
    domain = pc.if_else(
        pa.array(free),
        free_domain,
        pc.if_else(pa.array(brand), brand_domain, account_domain)
        if account_domain is not None
        else brand_domain,
    )
    email = _join(local, "@", domain)
    shouting = pa.array(rng.random(n) < 0.01)  # a few exports keep the case people typed
    email = pc.if_else(shouting, pc.utf8_title(email), email)

    account_ids = accounts.ids() if len(accounts) else pa.array([""])
    linked = at_account & (rng.random(n) < 0.5)
    account_id = pc.if_else(pa.array(linked), pc.take(account_ids, pa.array(safe_account)), None)

    department = _pick(rng, _DEPARTMENT_WEIGHTS, n)
    title = _titles(rng, seniority, department)
    country = people.country[lo:hi]
    industry_random = rng.integers(0, len(_INDUSTRIES), n)
    industry = np.where(at_account, accounts.industry[safe_account], industry_random)
    has_industry = at_account | (free & (rng.random(n) < 0.5)) | (brand & (rng.random(n) < 0.7))
    company_name = pc.if_else(
        pa.array(at_account),
        pc.take(accounts.name, pa.array(safe_account)) if len(accounts) else None,
        pc.if_else(pa.array(brand), pc.utf8_capitalize(brand_word), None),
    )
    employees = np.where(
        at_account,
        accounts.employees[safe_account].astype(np.float64),
        np.clip(np.rint(np.exp(rng.normal(4.0, 1.8, n))), 1, 20_000),
    )
    has_employees = (at_account & (rng.random(n) < 0.6)) | (brand & (rng.random(n) < 0.4))
    budget = _budgets(rng, n)
    has_budget = rng.random(n) < 0.25
    has_timeframe = rng.random(n) < 0.30
    return pa.table(
        {
            "lead_id": lead_id,
            "email": email,
            "account_id": account_id,
            "updated_at": _times(people.created[lo:hi]),
            "first_name": _take(_FIRST_NAMES, first),
            "last_name": _take(_LAST_NAMES, last),
            "title": title,
            "seniority": _take(_SENIORITIES, seniority),
            "department": _take(_DEPARTMENTS, department),
            "country": _take(_COUNTRIES, country),
            "industry": _take(_INDUSTRIES, industry, has_industry),
            "company_name": company_name,
            "lead_source": _take(_LEAD_SOURCES, _pick(rng, _LEAD_SOURCE_WEIGHTS, n)),
            "employees": pa.array(employees, mask=~has_employees),
            "budget_usd": pa.array(budget, mask=~has_budget),
            "timeframe": _take(_TIMEFRAMES, _pick(rng, _TIMEFRAME_WEIGHTS, n), has_timeframe),
        },
        schema=_lead_schema(),
    )


def _titles(rng: np.random.Generator, seniority: Ints, department: Ints) -> pa.Array:
    """A job title for each seniority and department, as ``generate.py`` gives them."""
    groups: list[tuple[str, ...]] = []
    for level in _SENIORITIES:
        for dept in _DEPARTMENTS:
            if level == "student":
                groups.append(("Student", "MBA Student", "Graduate Student"))
            else:
                groups.append(_TITLES[level][dept])
    flat, first, sizes = _flatten(groups)
    combo = seniority * len(_DEPARTMENTS) + department
    index = first[combo] + (rng.random(len(combo)) * sizes[combo]).astype(np.int64)
    return _take(flat, index)


def _budgets(rng: np.random.Generator, n: int) -> Floats:
    """Log-uniform between 1,000 and 200,000, in steps of 500."""
    amount = np.exp(rng.uniform(np.log(1_000), np.log(200_000), n))
    result: Floats = np.clip(np.round(amount / 500) * 500, 1_000, 200_000)
    return result


def _lead_updates(
    rng: np.random.Generator, people: _People, rows_of_chunk: pa.Table, lo: int, clock: _Clock
) -> pa.Table:
    """A later profile for ~10% of leads: a promotion, or budget and timeframe from a form.

    An update is strictly later than the lead's first profile, so that no two
    values of an attribute share an instant (which the merge would then order
    by value).
    """
    n = rows_of_chunk.num_rows
    created = people.created[lo : lo + n]
    chosen = (rng.random(n) < 0.10) & (clock.end - created >= 2 * 3600)
    rows = np.flatnonzero(chosen)
    at = created[rows] + 3600 + rng.uniform(_DAY, 120 * _DAY, len(rows)).astype(np.int64)
    late = at > clock.end
    fallback = rng.uniform(created[rows] + 3600, clock.end).astype(np.int64)
    at = np.where(late, fallback, at)
    seniority = people.seniority[lo : lo + n][rows]
    promotable = np.array([s in _PROMOTION for s in _SENIORITIES])[seniority]
    promoted = promotable & (rng.random(len(rows)) < 0.5)
    new_seniority = np.minimum(seniority + 1, len(_SENIORITIES) - 1)
    department = _pick(rng, _DEPARTMENT_WEIGHTS, len(rows))
    title = _titles(rng, new_seniority, department)
    budget = _budgets(rng, len(rows))
    timeframe = _pick(rng, (30, 45, 25), len(rows))  # now, lt_3m, 3_6m
    picked = pa.array(rows)
    table = pa.table(
        {
            "lead_id": pc.take(rows_of_chunk["lead_id"], picked),
            "email": pc.take(rows_of_chunk["email"], picked),
            "updated_at": _times(at),
            "title": pc.if_else(pa.array(promoted), title, None),
            "seniority": _take(_SENIORITIES, new_seniority, promoted),
            "budget_usd": pa.array(budget, mask=promoted),
            "timeframe": _take(_TIMEFRAMES, timeframe, ~promoted),
        }
    )
    columns = {}
    for field in _lead_schema():
        if field.name in table.column_names:
            columns[field.name] = table[field.name]
        else:
            columns[field.name] = pa.nulls(len(rows), field.type)
    return pa.table(columns, schema=_lead_schema())


# --- events ------------------------------------------------------------------------------


def _event_counts(rng: np.random.Generator, people: _People, events: int, window: Floats) -> Ints:
    """Events per lead, adding up to ``events``: ~40% idle, a Pareto tail of heavy users.

    Better-fitting leads are more often active and more active, so that scores
    and fit correlate as in real data. ``window`` is the share of the period's
    activity that falls while each lead is active: a lead created last week
    gets a week's worth of events, not a year's squeezed into a week.
    """
    n = len(people)
    counts = np.zeros(n, dtype=np.int64)
    if events == 0 or n == 0:
        return counts
    lift = 0.7 + 0.6 * people.fit
    active = rng.random(n) < (1.0 - _IDLE_SHARE) * lift / lift.mean()
    chosen = np.flatnonzero(active)
    if len(chosen) == 0:
        chosen = np.array([int(rng.integers(0, n))])
    if len(chosen) > events:
        chosen = np.sort(rng.choice(chosen, size=events, replace=False))
    weight = np.minimum(rng.pareto(_PARETO_SHAPE, len(chosen)) + 1.0, _MAX_WEIGHT)
    weight *= (0.5 + people.fit[chosen]) * (window[chosen] + 1e-3)
    extra = rng.multinomial(events - len(chosen), weight / weight.sum())
    counts[chosen] = 1 + extra
    return counts


def _quiet_times(rng: np.random.Generator, people: _People, clock: _Clock) -> Ints:
    """When each lead stops being active: half keep going, half go quiet after a while."""
    n = len(people)
    stays = rng.random(n) < 0.5
    after = (_DAY + rng.exponential(60 * _DAY, n)).astype(np.int64)
    quiet: Ints = np.where(stays, clock.end, np.minimum(clock.end, people.created + after))
    return quiet


def _write_events(
    path: Path,
    seed: int,
    people: _People,
    emails: pa.ChunkedArray,
    counts: Ints,
    quiet: Ints,
    clock: _Clock,
    progress: Progress | None,
) -> None:
    total = int(counts.sum())
    schema = _event_schema()
    width = max(7, len(str(total)))
    lead_width = _id_width(len(people))
    ends = np.cumsum(counts)
    written = 0
    lo = 0
    with pq.ParquetWriter(path, schema) as writer:
        chunk = 0
        while lo < len(people):
            # The leads whose events fill about one chunk (a heavy lead is never split).
            hi = int(np.searchsorted(ends, written + EVENTS_PER_CHUNK, side="right"))
            hi = max(hi, lo + 1)
            rng = _rng(seed, 20, chunk)
            table = _event_rows(rng, people, counts, quiet, clock, lo, hi, written, width)
            lead = table["_lead"].to_numpy()
            by_email = pa.array(rng.random(len(lead)) < 0.05)
            numbers = pc.cast(pa.array(lead + 1), pa.string())
            lead_id = _join("L-", pc.utf8_lpad(numbers, lead_width, "0"))
            email = pc.take(emails, pa.array(lead))
            table = table.drop_columns(["_lead"])
            table = table.append_column("lead_id", pc.if_else(by_email, None, lead_id))
            table = table.append_column("email", pc.if_else(by_email, email, None))
            if table.num_rows:
                writer.write_table(table.select(schema.names).cast(schema))
            written += table.num_rows
            lo = hi
            chunk += 1
            if progress is not None:
                progress(written)
        if total == 0:
            writer.write_table(schema.empty_table())
    if progress is not None and total == 0:
        progress(0)


def _event_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("event_id", pa.string()),
            pa.field("type", pa.string()),
            pa.field("at", _TIMESTAMP),
            pa.field("lead_id", pa.string()),
            pa.field("email", pa.string()),
            pa.field("url", pa.string()),
            pa.field("asset", pa.string()),
            pa.field("campaign", pa.string()),
            pa.field("channel", pa.string()),
        ]
    )


def _event_rows(
    rng: np.random.Generator,
    people: _People,
    counts: Ints,
    quiet: Ints,
    clock: _Clock,
    lo: int,
    hi: int,
    first_id: int,
    width: int,
) -> pa.Table:
    """The events of leads ``lo .. hi - 1``, in time order, numbered from ``first_id``."""
    lead = np.repeat(np.arange(lo, hi, dtype=np.int64), counts[lo:hi])
    n = len(lead)
    at = clock.draw(rng, people.created[lead] + 1, quiet[lead], people.country[lead])
    order = np.argsort(at, kind="stable")
    lead, at = lead[order], at[order]

    type_names = list(EVENT_TYPE_WEIGHTS)
    kind = _pick(rng, list(EVENT_TYPE_WEIGHTS.values()), n)

    def of(*names: str) -> Bools:
        result: Bools = np.isin(kind, [type_names.index(name) for name in names])
        return result

    url = np.where(
        of("page_view"),
        rng.integers(0, len(_BROWSE_URLS), n),
        rng.integers(0, len(_CLICK_URLS), n) + len(_BROWSE_URLS),
    )
    content = rng.integers(0, len(_CONTENT), n)
    assets = [asset for asset, _ in _CONTENT]
    asset = np.where(of("case_study_request"), assets.index("case_study"), content)
    campaign_words = [
        *_EMAIL_CAMPAIGNS,
        *(campaign for _, campaign in _CONTENT),
        *_WEBINARS,
        *_TRADE_SHOWS,
        *_AD_CAMPAIGNS,
    ]
    base_content = len(_EMAIL_CAMPAIGNS)
    base_webinar = base_content + len(_CONTENT)
    base_show = base_webinar + len(_WEBINARS)
    base_ad = base_show + len(_TRADE_SHOWS)
    campaign = np.select(
        [of("content_download"), of("webinar_register", "webinar_attend")],
        [base_content + content, base_webinar + rng.integers(0, len(_WEBINARS), n)],
        rng.integers(0, len(_EMAIL_CAMPAIGNS), n),
    )
    campaign = np.select(
        [of("event_register", "event_attend"), of("ad_click")],
        [base_show + rng.integers(0, len(_TRADE_SHOWS), n), base_ad + rng.integers(0, 4, n)],
        campaign,
    )
    channel_words = [*_CHANNELS_WEB, *_CHANNELS_AD, *_CHANNELS_SOCIAL]
    channel = np.select(
        [of("ad_click"), of("social_engagement")],
        [
            len(_CHANNELS_WEB) + _pick(rng, _CHANNELS_AD_WEIGHTS, n),
            len(_CHANNELS_WEB) + len(_CHANNELS_AD) + _pick(rng, _CHANNELS_SOCIAL_WEIGHTS, n),
        ],
        _pick(rng, _CHANNELS_WEB_WEIGHTS, n),
    )
    has_campaign = of(
        "email_open",
        "email_click",
        "content_download",
        "webinar_register",
        "webinar_attend",
        "event_register",
        "event_attend",
        "ad_click",
    )
    return pa.table(
        {
            "event_id": _ids("E-", first_id, n, width),
            "type": _take(type_names, kind),
            "at": _times(at),
            "url": _take([*_BROWSE_URLS, *_CLICK_URLS], url, of("page_view", "email_click")),
            "asset": _take(assets, asset, of("content_download", "case_study_request")),
            "campaign": _take(campaign_words, campaign, has_campaign),
            "channel": _take(
                channel_words, channel, of("page_view", "ad_click", "social_engagement")
            ),
            "_lead": pa.array(lead),
        }
    )


# --- sales -------------------------------------------------------------------------------


def _write_sales(
    paths: dict[str, Path],
    rng: np.random.Generator,
    people: _People,
    counts: Ints,
    clock: _Clock,
) -> None:
    """BANT answers, decisions and outcomes for about half the most active 3% of leads."""
    n = len(people)
    width = _id_width(n)
    top = np.argsort(-counts, kind="stable")[: max(1, round(0.03 * n))] if n else np.array([])
    top = top[counts[top] > 0] if n else top
    chosen = np.sort(top[rng.random(len(top)) < 0.5]).astype(np.int64)
    created = people.created[chosen]
    fit = people.fit[chosen]
    start = created + (rng.uniform(0.3, 0.9, len(chosen)) * (clock.end - created)).astype(np.int64)

    answers: dict[str, list[Any]] = {k: [] for k in ("lead", "criterion", "value", "at", "by")}
    decisions: dict[str, list[Any]] = {k: [] for k in ("lead", "action", "at", "reason", "by")}
    outcomes: dict[str, list[Any]] = {k: [] for k in ("lead", "outcome", "at", "amount")}
    reps = rng.integers(0, len(_SALES_REPS), len(chosen))
    for i, lead in enumerate(chosen.tolist()):
        rep = _SALES_REPS[reps[i]]
        at = int(start[i])
        met = 0
        for criterion in _CRITERIA:
            if rng.random() < 0.3:
                continue  # not asked on this call
            ok = rng.random() < 0.3 + 0.5 * fit[i]
            met += ok
            value = "met" if ok else ("not_met" if rng.random() < 0.8 else "unknown")
            _append(answers, lead=lead, criterion=criterion, value=value, at=at, by=rep)
            at += 60 + int(rng.integers(0, 600))
        at += int(rng.uniform(0.1, 3.0) * _DAY)
        if at > clock.end:
            continue
        if people.seniority[lead] == _SENIORITIES.index("student"):
            action, reason = "disqualify", "student"
        elif met >= 3 or (met == 2 and rng.random() < 0.5):
            action, reason = "accept", None
        else:
            action, reason = "reject", ("no_budget", "bad_timing", "not_a_fit")[i % 3]
        _append(decisions, lead=lead, action=action, at=at, reason=reason, by=rep)
        if action == "reject" and rng.random() < 0.1:
            at += int(rng.uniform(5, 60) * _DAY)
            if at <= clock.end:
                _append(decisions, lead=lead, action="reopen", at=at, reason=None, by=rep)
            continue
        if action != "accept" or rng.random() >= 0.75:
            continue
        at += int(rng.uniform(2, 14) * _DAY)
        if at > clock.end:
            continue
        _append(decisions, lead=lead, action="opportunity", at=at, reason=None, by=rep)
        at += int(rng.uniform(14, 90) * _DAY)
        if at > clock.end or rng.random() < 0.2:
            continue  # still open
        won = bool(rng.random() < 0.1 + 0.35 * fit[i])
        amount = float(
            np.clip(round(np.exp(rng.uniform(np.log(5e3), np.log(1.5e5))), -2), 5e3, 1.5e5)
        )
        _append(
            outcomes,
            lead=lead,
            outcome="won" if won else "lost",
            at=at,
            amount=amount if won else None,
        )

    pq.write_table(
        pa.table(
            {
                "answer_id": _ids("A-", 0, len(answers["lead"]), width),
                "lead_id": _lead_id_list(answers["lead"], width),
                "framework": pa.array(["bant"] * len(answers["lead"]), pa.string()),
                "criterion": pa.array(answers["criterion"], pa.string()),
                "value": pa.array(answers["value"], pa.string()),
                "at": _times(np.array(answers["at"], dtype=np.int64)),
                "by": pa.array(answers["by"], pa.string()),
                "note": pa.nulls(len(answers["lead"]), pa.string()),
            }
        ),
        paths["answers"],
    )
    pq.write_table(
        pa.table(
            {
                "decision_id": _ids("D-", 0, len(decisions["lead"]), width),
                "lead_id": _lead_id_list(decisions["lead"], width),
                "action": pa.array(decisions["action"], pa.string()),
                "at": _times(np.array(decisions["at"], dtype=np.int64)),
                "reason": pa.array(decisions["reason"], pa.string()),
                "by": pa.array(decisions["by"], pa.string()),
            }
        ),
        paths["decisions"],
    )
    pq.write_table(
        pa.table(
            {
                "outcome_id": _ids("O-", 0, len(outcomes["lead"]), width),
                "lead_id": _lead_id_list(outcomes["lead"], width),
                "outcome": pa.array(outcomes["outcome"], pa.string()),
                "at": _times(np.array(outcomes["at"], dtype=np.int64)),
                "amount": pa.array(outcomes["amount"], pa.float64()),
            }
        ),
        paths["outcomes"],
    )


def _append(columns: dict[str, list[Any]], **values: Any) -> None:
    for name, value in values.items():
        columns[name].append(value)


def _lead_id_list(leads: list[int], width: int) -> pa.Array:
    numbers = pc.cast(pa.array(np.array(leads, dtype=np.int64) + 1), pa.string())
    return _join("L-", pc.utf8_lpad(numbers, width, "0"))
