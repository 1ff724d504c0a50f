"""The operational store: fact log, identity, derived state, model versions, API keys.

See ``docs/store.md``. The entry point is :meth:`Store.open`.
"""

from leadqual.store.keys import ApiKey
from leadqual.store.state import Assignment, StageChange, StoredQualification
from leadqual.store.store import Store, Transaction, database_url
from leadqual.store.versions import ModelVersion
from leadqual.store.writer import AppendResult

__all__ = [
    "ApiKey",
    "AppendResult",
    "Assignment",
    "ModelVersion",
    "StageChange",
    "Store",
    "StoredQualification",
    "Transaction",
    "database_url",
]
