"""Alembic environment: always run by :mod:`leadqual.store.migrate` with a live connection.

The store passes its own connection (already inside a locked transaction) in
``config.attributes["connection"]``, so migrations need no alembic.ini, no
URL of their own, and two processes opening a new database cannot both
create it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from leadqual.store.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "leadqual migrations run through leadqual.store.migrate with a connection, "
        "not from the alembic command line"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
