"""The seed's six-month volume (``seed_demo --scale six-months``, or ten times it: ``--scale ten-x``); the small
demo set belongs to each app."""

from django.core.management import CommandError

from honua.registry import demo_loader
from operations.seed import SCALE_MULTIPLIERS, SeedIncompleteError, already_seeded, timed_generate


# Not atomic: the load commits itself (on two connections when it can: operations.seed.generate).
@demo_loader("six-months", atomic=False)
def load(*, rng, scale, seed: int | None = None, fraction: float = 1.0, progress=None) -> str:
    if scale not in SCALE_MULTIPLIERS:
        return f"nothing at this scale (only {', '.join(SCALE_MULTIPLIERS)})"
    try:
        loaded = [f"{count} {name} customers" for name in SCALE_MULTIPLIERS if (count := already_seeded(name))]
    except SeedIncompleteError as error:
        raise CommandError(str(error)) from error
    if loaded:
        return f"already loaded ({', '.join(loaded)}); nothing added"
    return timed_generate(
        seed=rng.randrange(2**31) if seed is None else seed, fraction=fraction, progress=progress, scale=scale
    )
