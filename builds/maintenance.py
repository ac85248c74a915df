import builds.cache_maintenance  # noqa: F401  (registers the cache tasks)
