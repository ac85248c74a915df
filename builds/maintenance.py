# Each import registers its tasks with honua.registry.
from builds import cache_maintenance, queue_maintenance  # noqa: F401
