"""The SQL dialects a compiled model prints in, and the few rewrites they need.

The plan is one dialect-neutral sqlglot tree; sqlglot's generators do almost
all of the translation. Where a generator has no faithful translation, the
fix is a rewrite of the tree for that dialect, listed here as data (as
sqlglot's own ``TRANSFORMS`` tables are) rather than ``if dialect ==``
branches in the compiler:

* ``UnixMicros`` (epoch microseconds): PostgreSQL has no ``UNIX_MICROS``;
  ``EXTRACT(EPOCH FROM ts)`` is an exact NUMERIC there, so it is scaled and
  cast. Snowflake uses ``DATE_PART(epoch_microsecond, ts)``.
* CTEs on PostgreSQL are ``MATERIALIZED``: PostgreSQL (12+) inlines a CTE
  that is referenced once, and the plan's chain of layers, each
  ``SELECT *, <columns> FROM <previous layer>``, then collapses into one
  projection in which every column is textually re-expanded at each use;
  the expression grows exponentially with the layers (tens of megabytes for
  the example model) and planning exhausts memory. Materializing keeps each
  layer computed once, as it is written.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from leadqual.errors import UnsupportedError

DIALECTS: tuple[str, ...] = ("duckdb", "postgres", "spark", "snowflake", "bigquery")

Rewrite = Callable[[exp.Expr], exp.Expr]


def _postgres_unix_micros(node: exp.Expr) -> exp.Expr:
    if not isinstance(node, exp.UnixMicros):
        return node
    epoch = exp.Extract(this=exp.var("EPOCH"), expression=node.this)
    scaled = exp.Mul(this=epoch, expression=exp.Literal.number(1_000_000))
    return exp.cast(scaled, exp.DataType.build("BIGINT"), copy=False)


def _snowflake_unix_micros(node: exp.Expr) -> exp.Expr:
    if not isinstance(node, exp.UnixMicros):
        return node
    return exp.Anonymous(this="DATE_PART", expressions=[exp.var("EPOCH_MICROSECOND"), node.this])


def _postgres_materialized(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.CTE):
        node.set("materialized", True)
    return node


REWRITES: dict[str, tuple[Rewrite, ...]] = {
    "duckdb": (),
    "postgres": (_postgres_unix_micros, _postgres_materialized),
    "spark": (),
    "snowflake": (_snowflake_unix_micros,),
    "bigquery": (),
}


def for_dialect(tree: exp.Expr, dialect: str) -> exp.Expr:
    """The plan rewritten for ``dialect``; the original tree is left untouched."""
    if dialect not in REWRITES:
        raise UnsupportedError(
            f"unknown SQL dialect '{dialect}' (supported: {', '.join(DIALECTS)})"
        )
    rewritten = tree
    for rewrite in REWRITES[dialect]:
        rewritten = rewritten.transform(rewrite)
    return rewritten
