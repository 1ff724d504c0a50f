"""Run compiled models over DuckDB, PostgreSQL or Spark."""
