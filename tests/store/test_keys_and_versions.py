"""API keys are stored hashed and verified in constant time; one model version is active."""

from __future__ import annotations

import hashlib
import hmac
import threading

import pytest
from sqlalchemy import select

from leadqual.errors import ConflictError, ModelError, NotFoundError
from leadqual.store import Store
from leadqual.store.schema import api_keys, model_versions


def test_only_a_salted_hash_of_the_key_is_stored(store: Store) -> None:
    key, token = store.create_api_key("ingest bot", ["ingest", "read"])
    assert key.scopes == ("ingest", "read")
    _, prefix, secret = token.split("_", 2)
    with store.engine.connect() as connection:
        row = connection.execute(select(api_keys)).mappings().one()
    assert row["prefix"] == prefix == key.prefix
    assert secret not in str(dict(row).values()) and token not in str(dict(row).values())
    recomputed = hmac.new(bytes.fromhex(row["salt"]), secret.encode(), hashlib.sha256).hexdigest()
    assert row["hash"] == recomputed


def test_verify_accepts_the_token_and_refuses_wrong_or_revoked_ones(store: Store) -> None:
    key, token = store.create_api_key("ops", ["admin"])
    other, other_token = store.create_api_key("ops2", ["read"])
    assert store.verify_api_key(token) == key
    assert store.verify_api_key(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    swapped = f"lq_{key.prefix}_{other_token.split('_', 2)[2]}"
    assert store.verify_api_key(swapped) is None
    assert store.verify_api_key("lq_00000000_nothing") is None
    assert store.verify_api_key("garbage") is None
    store.revoke_api_key(key.id)
    assert store.verify_api_key(token) is None
    assert store.verify_api_key(other_token) == other
    with pytest.raises(NotFoundError):
        store.revoke_api_key(99_999)
    with pytest.raises(ValueError, match="unknown scope"):
        store.create_api_key("x", ["root"])


def _yaml(name: str, version: int = 1) -> str:
    stages = "  - {id: cold}\n  - {id: sal, manual: true, decision: accept}\n"
    return f"name: {name}\nversion: {version}\nstages:\n{stages}"


def test_model_versions_are_idempotent_and_validated(store: Store) -> None:
    text = _yaml("bant")
    first = store.add_model_version(text)
    assert store.add_model_version(text) == first
    with pytest.raises(ConflictError, match="already stored with a different text"):
        store.add_model_version(text + "\n# edited\n")
    with pytest.raises(ModelError):
        store.add_model_version("name: broken\nstages: 3\n")
    second = store.add_model_version(_yaml("bant", 2))
    assert store.model_versions() == [first, second]
    assert (second.name, second.version, second.yaml) == ("bant", 2, _yaml("bant", 2))
    assert store.active_model_version() is None


def test_activating_switches_exactly_one_version(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        ids = [store.add_model_version(_yaml(name)).id for name in ("bant", "champ", "meddic")]
        assert store.activate_model_version(ids[0]).active
        errors: list[BaseException] = []

        def activate(version_id: int) -> None:
            try:
                for _ in range(5):
                    store.activate_model_version(version_id)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=activate, args=(i,)) for i in ids[1:]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with store.engine.connect() as connection:
            active = connection.execute(
                select(model_versions.c.id).where(model_versions.c.active)
            ).all()
        assert len(active) == 1
        assert store.active_model_version() is not None
        assert store.active_model_version().id in ids[1:]  # type: ignore[union-attr]
        with pytest.raises(NotFoundError):
            store.activate_model_version(12345)
        assert len([v for v in store.model_versions() if v.active]) == 1
        assert all(not isinstance(e, AssertionError) for e in errors)
    finally:
        store.close()
