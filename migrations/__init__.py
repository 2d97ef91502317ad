"""Alembic migration scripts (see config.migrations)."""
