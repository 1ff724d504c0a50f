"""The canonical payload text is json's own, whichever encoder writes it.

Stored digests of every fact already accepted depend on that text: if it
changed, a fact re-sent after an upgrade would be refused as a conflict.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from leadqual.facts.types import AccountProfile, Event, LeadProfile, Outcome
from leadqual.store.codec import VISITOR_PROPERTY, _dumps, encode, utc_text

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


# Values a fact may carry (the codec refuses NUL characters, empty names and lone
# surrogates' kin only where it must): the encoders are told whether one is a float
# instead of looking again, and must still write json's text.
NAMES = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"),
    min_size=1,
    max_size=12,
)
VALUES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
)
FACT_VALUES = st.dictionaries(NAMES, VALUES, max_size=8)
AT = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


EVENT_PROPERTIES = st.dictionaries(NAMES.filter(lambda name: name != VISITOR_PROPERTY), VALUES,
                                   max_size=8)  # fmt: skip
"""Properties of any name but ``visitor_id``, which must be text (an identity, not a value)."""


@given(EVENT_PROPERTIES)
def test_an_event_s_properties_and_digest_are_json_s(properties: dict[str, Any]) -> None:
    row = encode(Event("E1", "page_view", AT, "L1", None, properties), 0, AT).row
    assert row["properties"] == JSON_TEXT(properties)
    head = JSON_TEXT(["event", "E1", "page_view", utc_text(AT), "L1", None])
    assert row["payload_hash"] == _sha(head + JSON_TEXT(properties))


@given(FACT_VALUES)
def test_a_profile_s_attributes_and_digest_are_json_s(attributes: dict[str, Any]) -> None:
    lead = encode(LeadProfile("L1", "ada@acme.io", "A1", attributes, AT), 0, AT).row
    assert lead["attributes"] == JSON_TEXT(attributes)
    payload = ["lead", "L1", "ada@acme.io", "A1", attributes, utc_text(AT)]
    assert lead["payload_hash"] == _sha(JSON_TEXT(payload))
    account = encode(AccountProfile("A1", "acme.io", attributes, AT), 0, AT).row
    assert account["attributes"] == JSON_TEXT(attributes)
    assert account["payload_hash"] == _sha(
        JSON_TEXT(["account", "A1", "acme.io", attributes, utc_text(AT)])
    )


def test_an_outcome_s_amount_is_written_as_json_writes_a_float() -> None:
    amount = 2.5e-05  # orjson writes 0.000025
    row = encode(Outcome("O1", "L1", "won", AT, amount), 0, AT).row
    assert row["payload_hash"] == _sha(
        JSON_TEXT(["outcome", "O1", "L1", "won", utc_text(AT), amount])
    )
    assert "2.5e-05" in JSON_TEXT([amount])
