from builds import cache_demo  # noqa: F401  (registers the cache demo loader)
