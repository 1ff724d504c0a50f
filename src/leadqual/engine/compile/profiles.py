"""Lead and account attributes, and how leads link to accounts, in SQL.

Mirrors ``reference.merge_profiles`` and ``FactSet._linking_profile`` /
``_link_accounts``:

* an attribute's value is the latest non-null one among the profiles known
  at ``as_of``; undated profiles come before dated ones and, at the same
  instant, the greatest value wins. In SQL that is two GROUP BYs, with no
  window and no sort: the latest time (``order_us``, undated as a time before
  any date) at which each attribute is non-null, then the greatest value
  among the rows at that time;
* a lead's account is as of ``as_of``: the latest non-null account id among
  the profiles known then, else the domain of the email known then (the
  ``email`` attribute; never a free-mail domain), mapped to the smallest
  account id with that domain (whatever the time of the account profiles
  that name it) or to the implicit account ``domain:<d>``;
* an event without a lead id belongs to the smallest lead id whose linking
  email (the latest non-null over all its profiles, whatever their time) is
  the event's email.

Python's ``str.strip`` removes every kind of white space; SQL's TRIM removes
spaces only.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from leadqual.engine.compile import values as v
from leadqual.engine.compile.context import Build, unix_micros
from leadqual.engine.compile.values import Typed
from leadqual.facts.freemail import FREE_MAIL_DOMAINS

LEAD_KEY = "lead_id"
ACCOUNT_KEY = "account_id"


def lead_attribute_column(name: str) -> str:
    return f"lead__{name}"


def account_attribute_column(name: str) -> str:
    return f"account__{name}"


@dataclass(frozen=True)
class Profiles:
    """The CTEs built here and the typed attribute columns they expose."""

    leads: exp.Table  # lead_id, account_id (linked), lead__*, first_dated_us
    accounts: exp.Table  # account_id, account__*
    email_owner: exp.Table  # email, lead_id
    lead_values: dict[str, Typed]  # lead attribute name -> column on `leads`
    account_values: dict[str, Typed]  # account attribute name -> column on `accounts`


def build_profiles(
    build: Build, lead_attrs: dict[str, str], account_attrs: dict[str, str]
) -> Profiles:
    """Merged attributes per lead and per account, plus the linking tables.

    ``lead_attrs`` and ``account_attrs`` map attribute names to their model types;
    a column missing from the source reads as NULL.
    """
    lead_types = _present_types(build, "leads", lead_attrs)
    account_types = _present_types(build, "accounts", account_attrs)
    lead_rows = build.add("lq_lead_rows", _lead_rows(build, lead_types))
    merged = build.add("lq_lead_merged", _lead_merged(build, lead_rows, lead_types))
    account_rows = build.add("lq_account_rows", _account_rows(build, account_types))
    accounts = build.add("lq_accounts", _account_merged(build, account_rows, account_types))
    domains = build.add("lq_account_domains", _domain_owner(account_rows))
    leads = build.add("lq_leads", _linked_leads(merged, domains, lead_types))
    email_owner = build.add("lq_email_owner", _email_owner(merged))
    lead_values = {
        name: Typed(v.col(lead_attribute_column(name)), _as_logical(t))
        for name, t in lead_types.items()
    }
    lead_values["email"] = Typed(v.col(lead_attribute_column("email")), "string")
    lead_values["email_domain"] = Typed(v.col(lead_attribute_column("email_domain")), "string")
    lead_values["is_free_mail"] = Typed(v.col(lead_attribute_column("is_free_mail")), "boolean")
    account_values = {
        name: Typed(v.col(account_attribute_column(name)), _as_logical(t))
        for name, t in account_types.items()
    }
    account_values["domain"] = Typed(v.col(account_attribute_column("domain")), "string")
    return Profiles(leads, accounts, email_owner, lead_values, account_values)


def _as_logical(logical: str) -> v.LogicalType:
    return "number" if logical == "number" else "boolean" if logical == "boolean" else "string"


def _present_types(build: Build, table: str, wanted: dict[str, str]) -> dict[str, str]:
    """Attribute types, taken from the source where it has the column (it holds the data)."""
    present = build.schema.table(table)
    return {name: str(present.get(name, model_type)) for name, model_type in wanted.items()}


def _nonempty(value: exp.Expr) -> exp.Expr:
    """NULL for NULL or '' (Python's ``if value:``)."""
    return v.case([(exp.NEQ(this=value.copy(), expression=v.text("")), value)])


def _normalized(value: exp.Expr) -> exp.Expr:
    """``value.strip().lower()`` when ``value`` is non-empty."""
    return v.case(
        [(exp.NEQ(this=value.copy(), expression=v.text("")), v.lower(exp.Trim(this=value)))]
    )


def _lead_rows(build: Build, types: dict[str, str]) -> exp.Expr:
    updated = build.column("leads", "updated_at", "timestamp")
    attrs = [
        exp.alias_(
            build.column("leads", name, logical),
            lead_attribute_column(name),
            quoted=True,
            copy=False,
        )
        for name, logical in types.items()
    ]
    return (
        exp.select(
            exp.alias_(v.col("lead_id"), LEAD_KEY, quoted=True, copy=False),
            exp.alias_(unix_micros(updated), "updated_us", quoted=True, copy=False),
            exp.alias_(_order_us(unix_micros(updated.copy())), "order_us", quoted=True, copy=False),
            exp.alias_(
                _normalized(build.column("leads", "email", "string")),
                "email_norm",
                quoted=True,
                copy=False,
            ),
            exp.alias_(
                _nonempty(build.column("leads", "account_id", "string")),
                "account_norm",
                quoted=True,
                copy=False,
            ),
            *attrs,
            copy=False,
        )
        .from_(build.source("leads"), copy=False)
        .where(exp.Not(this=exp.Is(this=v.col("lead_id"), expression=exp.null())), copy=False)
    )


def _known_profile(build: Build) -> exp.Expr:
    updated = v.col("updated_us")
    return exp.or_(
        exp.Is(this=updated, expression=exp.null()), build.known(updated.copy()), copy=False
    )


UNDATED_US = -(2**62)
"""``order_us`` of an undated profile: before any date a timestamp can hold."""


def _order_us(updated_us: exp.Expr) -> exp.Expr:
    """A profile's place in time order as one BIGINT: undated profiles come first."""
    return exp.func("COALESCE", updated_us, v.integer(UNDATED_US), copy=False)


@dataclass(frozen=True)
class _Latest:
    """One merged value: ``name`` is the latest non-null ``source`` (known at as_of, or ever)."""

    name: str
    source: str
    logical: str
    as_of_only: bool = True


def _greatest(value: exp.Expr, logical: str) -> exp.Expr:
    """``MAX(value)``, also for booleans (PostgreSQL has no MAX(boolean); False < True),
    and for text by code point, as Python's ``max``."""
    if logical == "string":
        return v.greatest_text(value)
    if logical != "boolean":
        return exp.Max(this=value)
    as_int = exp.Max(this=exp.cast(value, exp.DataType.build("INT"), copy=False))
    return exp.cast(as_int, v.sql_type("boolean"), copy=False)


def _merge_latest(
    build: Build,
    rows: exp.Table,
    key: str,
    values: list[_Latest],
    times_name: str,
    extra: list[exp.Expr] = [],  # noqa: B006 - read only
) -> exp.Expr:
    """One row per ``key``: each of ``values`` merged as ``reference.merge_profiles`` does.

    A CTE ``times_name`` holds, per key and value, the latest ``order_us`` at
    which the value is non-null (plus the ``extra`` aggregates); the query
    returned takes the greatest value among the key's rows at that time, so
    ties at the same instant go to the greatest value.
    """
    known = _known_profile(build)
    times: list[exp.Expr] = [v.col(key)]
    for item in values:
        present = exp.Not(this=exp.Is(this=v.col(item.source), expression=exp.null()))
        when = exp.and_(known.copy(), present, copy=False) if item.as_of_only else present
        times.append(
            exp.alias_(
                exp.Max(this=v.case([(when, v.col("order_us"))])),
                f"latest_us__{item.name}",
                quoted=True,
                copy=False,
            )
        )
    times_table = build.add(
        times_name,
        exp.select(*times, *extra, copy=False)
        .from_(rows, copy=False)
        .group_by(v.col(key), copy=False),
    )
    merged: list[exp.Expr] = [v.col(key, "lq_r")]
    for item in values:
        at_latest = exp.EQ(
            this=v.col("order_us", "lq_r"), expression=v.col(f"latest_us__{item.name}", "lq_t")
        )
        value = v.case([(at_latest, v.col(item.source, "lq_r"))])
        merged.append(
            exp.alias_(_greatest(value, item.logical), item.name, quoted=True, copy=False)
        )
    for column in extra:
        name = column.alias_or_name
        merged.append(exp.alias_(exp.Max(this=v.col(name, "lq_t")), name, quoted=True, copy=False))
    return (
        exp.select(*merged, copy=False)
        .from_(rows.as_("lq_r", quoted=True), copy=False)
        .join(
            times_table.as_("lq_t", quoted=True),
            on=exp.EQ(this=v.col(key, "lq_t"), expression=v.col(key, "lq_r")),
            copy=False,
        )
        .group_by(v.col(key, "lq_r"), copy=False)
    )


def _lead_merged(build: Build, rows: exp.Table, types: dict[str, str]) -> exp.Expr:
    """One row per lead: merged attributes as of ``as_of`` and the linking values."""
    updated = v.col("updated_us")
    first_dated = exp.alias_(
        exp.Min(this=v.case([(build.known(updated), updated.copy())])),
        "first_dated_us",
        quoted=True,
        copy=False,
    )
    values = [
        _Latest(lead_attribute_column("email"), "email_norm", "string"),
        _Latest("link_email", "email_norm", "string", as_of_only=False),
        _Latest("link_account", "account_norm", "string"),
        *[
            _Latest(lead_attribute_column(name), lead_attribute_column(name), logical)
            for name, logical in types.items()
        ],
    ]
    return _merge_latest(build, rows, LEAD_KEY, values, "lq_lead_times", [first_dated])


def email_domain(email: exp.Expr) -> exp.Expr:
    """``freemail.email_domain``: the text after the last '@', trimmed and lower-cased.

    Most addresses have one '@', and the text after the first is the domain;
    only the others pay for finding the last '@' by reversing (a slow string
    function on every engine).
    """
    at = exp.StrPosition(this=email.copy(), substr=v.text("@"))
    after_first = exp.Substring(
        this=email.copy(), start=exp.Add(this=at.copy(), expression=v.integer(1))
    )
    reversed_email = exp.func("REVERSE", email.copy(), copy=False)
    after_last = exp.func(
        "REVERSE",
        exp.Substring(
            this=reversed_email,
            start=v.integer(1),
            length=exp.Sub(
                this=exp.StrPosition(this=reversed_email.copy(), substr=v.text("@")),
                expression=v.integer(1),
            ),
        ),
        copy=False,
    )
    one_at = exp.EQ(
        this=exp.StrPosition(this=after_first.copy(), substr=v.text("@")), expression=v.integer(0)
    )
    tail = v.case([(one_at, after_first)], after_last)
    domain = exp.Nullif(this=v.lower(exp.Trim(this=tail)), expression=v.text(""))
    return v.case([(exp.GT(this=at, expression=v.integer(0)), domain)])


def free_mail(domain: exp.Expr) -> exp.Expr:
    """``freemail.is_free_mail``: never NULL."""
    listed = exp.In(this=domain.copy(), expressions=[v.text(d) for d in sorted(FREE_MAIL_DOMAINS)])
    return v.is_true(listed)


def _linked_leads(merged: exp.Table, domains: exp.Table, types: dict[str, str]) -> exp.Expr:
    link_domain = email_domain(v.col(lead_attribute_column("email"), "lq_m"))  # as of as_of
    by_domain = v.case(
        [
            (
                exp.and_(
                    exp.Not(this=exp.Is(this=v.col("link_domain"), expression=exp.null())),
                    exp.Not(this=free_mail(v.col("link_domain"))),
                    copy=False,
                ),
                exp.func(
                    "COALESCE",
                    v.col(ACCOUNT_KEY, "lq_d"),
                    exp.DPipe(this=v.text("domain:"), expression=v.col("link_domain"), safe=True),
                    copy=False,
                ),
            )
        ]
    )
    inner = exp.select(
        exp.Star(),
        exp.alias_(link_domain, "link_domain", quoted=True, copy=False),
        copy=False,
    ).from_(merged.as_("lq_m", quoted=True), copy=False)
    domain_join = exp.EQ(this=v.col("domain", "lq_d"), expression=v.col("link_domain", "lq_x"))
    email_domain_col = v.col("link_domain", "lq_x")  # the email known at as_of links
    return (
        exp.select(
            v.col(LEAD_KEY, "lq_x"),
            exp.alias_(
                exp.func("COALESCE", v.col("link_account", "lq_x"), by_domain, copy=False),
                ACCOUNT_KEY,
                quoted=True,
                copy=False,
            ),
            v.col("link_email", "lq_x"),
            v.col("first_dated_us", "lq_x"),
            v.col(lead_attribute_column("email"), "lq_x"),
            exp.alias_(
                email_domain_col, lead_attribute_column("email_domain"), quoted=True, copy=False
            ),
            exp.alias_(
                free_mail(email_domain_col.copy()),
                lead_attribute_column("is_free_mail"),
                quoted=True,
                copy=False,
            ),
            *[v.col(lead_attribute_column(name), "lq_x") for name in types],
            copy=False,
        )
        .from_(inner.subquery("lq_x", copy=False), copy=False)
        .join(
            domains.as_("lq_d", quoted=True),
            on=domain_join,
            join_type="left",
            copy=False,
        )
    )


def _email_owner(merged: exp.Table) -> exp.Expr:
    return (
        exp.select(
            exp.alias_(v.col("link_email"), "email", quoted=True, copy=False),
            exp.alias_(v.least_text(v.col(LEAD_KEY)), LEAD_KEY, quoted=True, copy=False),
            copy=False,
        )
        .from_(merged, copy=False)
        .where(exp.Not(this=exp.Is(this=v.col("link_email"), expression=exp.null())), copy=False)
        .group_by(v.col("link_email"), copy=False)
    )


def _account_rows(build: Build, types: dict[str, str]) -> exp.Expr:
    updated = build.column("accounts", "updated_at", "timestamp")
    attrs = [
        exp.alias_(
            build.column("accounts", name, logical),
            account_attribute_column(name),
            quoted=True,
            copy=False,
        )
        for name, logical in types.items()
    ]
    return (
        exp.select(
            v.col(ACCOUNT_KEY),
            exp.alias_(unix_micros(updated), "updated_us", quoted=True, copy=False),
            exp.alias_(_order_us(unix_micros(updated.copy())), "order_us", quoted=True, copy=False),
            exp.alias_(
                _normalized(build.column("accounts", "domain", "string")),
                "domain_norm",
                quoted=True,
                copy=False,
            ),
            *attrs,
            copy=False,
        )
        .from_(build.source("accounts"), copy=False)
        .where(exp.Not(this=exp.Is(this=v.col(ACCOUNT_KEY), expression=exp.null())), copy=False)
    )


def _account_merged(build: Build, rows: exp.Table, types: dict[str, str]) -> exp.Expr:
    values = [
        _Latest(account_attribute_column("domain"), "domain_norm", "string"),
        *[
            _Latest(account_attribute_column(name), account_attribute_column(name), logical)
            for name, logical in types.items()
        ],
    ]
    return _merge_latest(build, rows, ACCOUNT_KEY, values, "lq_account_times")


def _domain_owner(rows: exp.Table) -> exp.Expr:
    """Each company domain to the smallest account id that has it (any time)."""
    domain = v.col("domain_norm")
    return (
        exp.select(
            exp.alias_(domain, "domain", quoted=True, copy=False),
            exp.alias_(v.least_text(v.col(ACCOUNT_KEY)), ACCOUNT_KEY, quoted=True, copy=False),
            copy=False,
        )
        .from_(rows, copy=False)
        .where(
            exp.and_(
                exp.Not(this=exp.Is(this=domain.copy(), expression=exp.null())),
                exp.Not(this=free_mail(domain.copy())),
                copy=False,
            ),
            copy=False,
        )
        .group_by(domain.copy(), copy=False)
    )
