"""The build cache's demo loader."""

import random

import pytest

from builds.models import BuildAccessLog, BuildCacheEntry
from honua.registry import demo_loaders


@pytest.mark.django_db
def test_cache_demo_loader_is_idempotent():
    """The cache demo creates entries and lookups once; running it again adds nothing."""
    loader = {loader.name: loader for loader in demo_loaders()}["builds_cache"]
    summary = loader.load(rng=random.Random(1), scale="demo")
    assert summary.startswith("6 cache entries")
    counts = (BuildCacheEntry.objects.count(), BuildAccessLog.objects.count())
    assert counts[0] == 6 and counts[1] > 0
    assert loader.load(rng=random.Random(2), scale="demo") == "demo cache already loaded"
    assert (BuildCacheEntry.objects.count(), BuildAccessLog.objects.count()) == counts
