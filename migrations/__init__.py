"""Alembic migrations for both backends (shipped as a package so installs find them)."""
