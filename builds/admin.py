# Each import registers its admins.
from builds import cache_admin, queue_admin  # noqa: F401
