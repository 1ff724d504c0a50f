"""The canonical payload text is json's own, whichever encoder writes it.

Stored digests of every fact already accepted depend on that text: if it
changed, a fact re-sent after an upgrade would be refused as a conflict.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from leadqual.store.codec import _dumps

JSON_TEXT = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()  # control characters, non-ASCII, astral, lone surrogates
)
FLAT = st.dictionaries(st.text(max_size=12), SCALARS, max_size=8)
PAYLOADS = st.lists(SCALARS | FLAT, max_size=8)


def _json_or_error(data: Any) -> str | type[Exception]:
    try:
        JSON_TEXT(data).encode("utf-8")  # as _digest takes it
        return JSON_TEXT(data)
    except (ValueError, UnicodeEncodeError) as error:
        return type(error)


@given(PAYLOADS)
def test_payload_text_is_json_s(payload: list[Any]) -> None:
    expected = _json_or_error(payload)
    if isinstance(expected, str):
        assert _dumps(payload) == expected
    else:
        assert expected is UnicodeEncodeError  # a lone surrogate: refused either way
        try:
            _dumps(payload).encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            raise AssertionError("a lone surrogate was encoded")


@given(FLAT)
def test_attribute_text_is_json_s(values: dict[str, Any]) -> None:
    expected = _json_or_error(values)
    if isinstance(expected, str):
        assert _dumps(values) == expected


def test_the_cases_orjson_writes_differently_are_json_s() -> None:
    for data in ([1e16, 1e-7, 0.1, 2.0, -0.0], {"n": 2**70, "m": -(2**64)}, ["\u2028", "\x1f"]):
        assert _dumps(data) == JSON_TEXT(data)
