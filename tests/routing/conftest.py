"""Routing tests use the service's stores: a SQLite file and a PostgreSQL schema each."""

from tests.service.conftest import store

__all__ = ["store"]
