"""The REST API of the live service (FastAPI); see ``docs/api.md``."""

from leadqual.api.app import create_app

__all__ = ["create_app"]
