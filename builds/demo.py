# Each import registers its demo loaders.
from builds import cache_demo, queue_demo  # noqa: F401
