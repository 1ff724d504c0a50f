"""Demo data: a realistic, seeded sample of B2B leads, accounts and activity."""

from __future__ import annotations

from leadqual.demo.generate import generate_sample

__all__ = ["generate_sample"]
