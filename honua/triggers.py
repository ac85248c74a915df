"""Trigger declarations shared by the apps (django-pgtrigger)."""

import pgtrigger


def update_updated_at_column() -> pgtrigger.Trigger:
    """The seed's ``update_updated_at_column``: a row's ``updated_at`` is the time of its last update."""
    return pgtrigger.Trigger(
        name="update_updated_at_column",
        when=pgtrigger.Before,
        operation=pgtrigger.Update,
        func="NEW.updated_at = now(); RETURN NEW;",
    )
