"""Compile a qualification model into one SQL query (SQLGlot), for every dialect.

``compile_model(model, as_of, schema)`` returns a :class:`CompiledModel` whose
query, run over the six fact tables of the relational contract
(``schema.py``), returns one row per lead with the columns and values of
``engine.output.to_row`` for the reference evaluator (without ``reasons``).
``CompiledModel.sql(dialect)`` prints it for duckdb, postgres, spark,
snowflake or bigquery.

The builders here pass ``copy=False`` to sqlglot: its builder functions copy
their arguments by default, which made compiling a model quadratic in its
size, and every node they receive is freshly built. Shared nodes are
harmless because printing (``CompiledModel.sql``) works on one copy of the
whole tree; ``Table.as_`` keeps copying because it would rename a CTE
reference that other parts of the plan share.
"""

from leadqual.engine.compile.dialects import DIALECTS
from leadqual.engine.compile.plan import CompiledModel, compile_model
from leadqual.engine.compile.schema import (
    TABLES,
    ColumnType,
    References,
    SourceSchema,
    model_references,
)

__all__ = [
    "DIALECTS",
    "TABLES",
    "ColumnType",
    "CompiledModel",
    "References",
    "SourceSchema",
    "compile_model",
    "model_references",
]
