# Each import registers its admins.
from builds import cache_admin, pause_admin, queue_admin  # noqa: F401
