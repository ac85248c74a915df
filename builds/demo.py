# Each import registers its demo loaders ("builds" from queue_demo, "builds_cache" from cache_demo).
from builds import cache_demo, queue_demo  # noqa: F401
