"""Persistence: tables, migrations, the database handle and the repositories built on it."""
