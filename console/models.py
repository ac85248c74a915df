"""The console has no tables of its own. This module exists so that Django sends the console's post_migrate
signal (it skips apps without a models module), on which the roles are kept current (console/apps.py)."""
