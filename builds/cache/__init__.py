"""The build cache: manifest hashes, lookups, eviction and statistics (services, admin, demo, maintenance)."""
