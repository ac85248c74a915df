"""The seed's six-month volume (``seed_demo --scale six-months``, or ten times it: ``--scale ten-x``); the small
demo set belongs to each app."""

from honua.registry import demo_loader
from operations.seed import SCALE_MULTIPLIERS, already_seeded, timed_generate


@demo_loader("six-months")
def load(*, rng, scale, seed: int | None = None, fraction: float = 1.0, progress=None) -> str:
    if scale not in SCALE_MULTIPLIERS:
        return f"nothing at this scale (only {', '.join(SCALE_MULTIPLIERS)})"
    loaded = [f"{count} {name} customers" for name in SCALE_MULTIPLIERS if (count := already_seeded(name))]
    if loaded:
        return f"already loaded ({', '.join(loaded)}); nothing added"
    return timed_generate(
        seed=rng.randrange(2**31) if seed is None else seed, fraction=fraction, progress=progress, scale=scale
    )
