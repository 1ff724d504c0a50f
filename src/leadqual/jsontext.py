"""Compact JSON text for what the write path stores (lead states, qualifications).

orjson is several times faster than ``json``; what it refuses (an integer
wider than 64 bits) goes through ``json``, with the same compact separators.
Read such text back with ``json.loads``: orjson reads an integer wider than 64
bits as a float.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(data: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON text of ``data``; ``str`` of any value JSON has no type for."""
    try:
        option = orjson.OPT_SORT_KEYS if sort_keys else 0
        return orjson.dumps(data, default=str, option=option).decode()
    except orjson.JSONEncodeError:
        return json.dumps(data, separators=(",", ":"), sort_keys=sort_keys, default=str)
