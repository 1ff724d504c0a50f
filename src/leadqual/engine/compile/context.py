"""What every part of the compiler shares: the model, the time, the sources, the CTEs.

Times are compared as integer microseconds since the epoch (``at_us``), which
every dialect computes exactly, and ages in days are computed exactly as
``decay.age_days`` does: ``microseconds / 1e6 / 86400`` in DOUBLE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlglot import exp

from leadqual.engine.compile import values as v
from leadqual.engine.compile.schema import SourceSchema
from leadqual.model.schema import Model

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(at: datetime) -> int:
    """Microseconds since the epoch of an aware datetime, exactly."""
    return (at - _EPOCH) // timedelta(microseconds=1)


def unix_micros(timestamp: exp.Expr) -> exp.Expr:
    """A TIMESTAMPTZ as BIGINT microseconds since the epoch (rewritten per dialect)."""
    return exp.UnixMicros(this=timestamp)


def days_between(earlier_us: exp.Expr, later_us: exp.Expr) -> exp.Expr:
    """``(later - earlier).total_seconds() / 86400`` with Python's rounding."""
    micros = exp.cast(
        exp.paren(exp.Sub(this=later_us, expression=earlier_us), copy=False),
        v.sql_type("number"),
        copy=False,
    )
    seconds = exp.Div(this=micros, expression=v.num(1e6))
    return exp.Div(this=seconds, expression=v.num(86_400.0))


@dataclass
class Build:
    """The compilation under way: inputs, and the CTEs written so far, in order."""

    model: Model
    as_of: datetime
    schema: SourceSchema
    table_prefix: str = ""
    top_n: bool = False
    """The target has a top-N aggregate (DuckDB's ``ARG_MAX(value, key, n)``): a rule's
    latest ``max_count`` matches are taken in the per-lead GROUP BY, with no sort."""
    ctes: list[tuple[str, exp.Expr]] = field(default_factory=list)

    @property
    def as_of_us(self) -> exp.Expr:
        return exp.Literal.number(epoch_us(self.as_of))

    def source(self, table: str, alias: str | None = None) -> exp.Table:
        """A contract table, with the executor's prefix (``schema.`` or ``name_``)."""
        name = f"{self.table_prefix}{table}"
        if "." in self.table_prefix:
            db, _, rest = name.rpartition(".")
            node = exp.table_(rest, db=db, quoted=True)
        else:
            node = exp.table_(name, quoted=True)
        if alias is not None:
            node = node.as_(alias, quoted=True)  # type: ignore[assignment]
        return node

    def column(self, table: str, name: str, logical: str, alias: str | None = None) -> exp.Expr:
        """A source column, or a NULL of type ``logical`` when the source lacks it."""
        if name not in self.schema.table(table):
            return v.null_of(logical)
        return v.col(name, alias)

    def add(self, name: str, query: exp.Expr) -> exp.Table:
        self.ctes.append((name, query))
        return exp.table_(name, quoted=True)

    def known(self, at_us: exp.Expr) -> exp.Expr:
        """``at <= as_of``."""
        return exp.LTE(this=at_us, expression=self.as_of_us)

    def age_days(self, at_us: exp.Expr) -> exp.Expr:
        return days_between(at_us, self.as_of_us)
