"""Alembic environment and revisions for the dse store (package data, run by ``Store.open``)."""
