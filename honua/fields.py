"""Model field helpers shared by the apps."""

from django.db import models


def uuid_primary_key(function: str = "gen_random_uuid") -> models.UUIDField:
    """A UUID primary key the database fills in (``gen_random_uuid()`` by default: core PostgreSQL, no extension)."""
    return models.UUIDField(primary_key=True, db_default=models.Func(function=function), editable=False)
