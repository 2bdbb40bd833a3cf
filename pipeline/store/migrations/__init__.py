"""Alembic migrations for the store (run programmatically by `pipeline.store.migrate`)."""
