# Each import registers its demo loaders.
from builds import queue_demo  # noqa: F401
