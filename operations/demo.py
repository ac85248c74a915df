"""The seed's six-month volume (``seed_demo --scale six-months``); the small demo set belongs to each app."""

from honua.registry import demo_loader
from operations.seed import SEED_SCALE, already_seeded, timed_generate


@demo_loader("six-months")
def load(*, rng, scale, seed: int | None = None, fraction: float = 1.0, progress=None) -> str:
    if scale != SEED_SCALE:
        return "nothing at this scale (only six-months)"
    existing = already_seeded()
    if existing:
        return f"already loaded ({existing} six-months customers); nothing added"
    return timed_generate(seed=rng.randrange(2**31) if seed is None else seed, fraction=fraction, progress=progress)
