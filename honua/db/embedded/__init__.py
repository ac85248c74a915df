"""A PostgreSQL backend that starts the project's embedded server on first connection."""
