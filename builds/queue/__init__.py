"""The build queue: enqueue, claim, run, finish (services, selectors, admin, demo, maintenance, reference worker)."""
