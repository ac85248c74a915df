from builds import cache_admin  # noqa: F401  (registers the cache admins)
