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
* ``COLLATE``: where a result depends on the order of text (ties broken by
  id, the smallest id owning an email or a domain, the greatest of values
  set at one instant), the plan orders it by code point as Python does,
  ``x COLLATE "C"`` (``values.by_code_point``), and gives a chosen value the
  database's collation back (``COLLATE "default"``). PostgreSQL needs both:
  its default collation is the database's, often linguistic (``en_US``,
  ICU), where ``'a' < 'B'`` and ``'_' < '1'``. DuckDB (``BINARY``), Spark
  (``UTF8_BINARY``), Snowflake and BigQuery compare text by its UTF-8 bytes
  or code points unless a collation is configured (leadqual configures none
  on the sessions it opens), so the clause is dropped for them.
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


def _binary_text_order(node: exp.Expr) -> exp.Expr:
    """Drop ``COLLATE``: the dialect's default text order already is by code point."""
    if not isinstance(node, exp.Collate):
        return node
    inner: exp.Expr = node.this.this if isinstance(node.this, exp.Paren) else node.this
    # ``transform`` does not descend into a replacement: the COLLATE inside goes here.
    return inner.transform(_binary_text_order, copy=False)


def _postgres_materialized(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.CTE):
        node.set("materialized", True)
    return node


REWRITES: dict[str, tuple[Rewrite, ...]] = {
    "duckdb": (_binary_text_order,),
    "postgres": (_postgres_unix_micros, _postgres_materialized),
    "spark": (_binary_text_order,),
    "snowflake": (_snowflake_unix_micros, _binary_text_order),
    "bigquery": (_binary_text_order,),
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
