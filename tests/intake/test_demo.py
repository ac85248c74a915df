"""The intake demo data: every status, one submitted build, idempotent."""

import random

import pytest

from builds.models import Build
from intake import demo
from intake.models import BuildManifest, Conversation
from tests.licensing.factories import LicenseFactory


@pytest.mark.django_db
def test_demo_has_every_status_and_a_submitted_build():
    """Several conversations in each status, and one manifest that became a build."""
    summary = demo.load(rng=random.Random(1), scale="demo")
    assert "1 submitted as a build" in summary
    counts = {s: Conversation.objects.filter(status=s).count() for s in Conversation.Status.values}
    assert all(count >= 2 for count in counts.values()), counts
    submitted = BuildManifest.objects.get(status="submitted")
    assert Build.objects.filter(pk=submitted.build_id, source="intake").exists()
    assert set(BuildManifest.objects.values_list("status", flat=True)) == set(BuildManifest.Status.values)


@pytest.mark.django_db
def test_demo_is_idempotent():
    """Loading twice adds nothing the second time."""
    demo.load(rng=random.Random(1), scale="demo")
    before = Conversation.objects.count()
    assert "already loaded" in demo.load(rng=random.Random(1), scale="demo")
    assert Conversation.objects.count() == before


@pytest.mark.django_db
def test_demo_uses_a_licensed_customer_issued_in_the_same_transaction():
    """A license issued earlier in the seed transaction (starting after now()) is moved back so submit works."""
    license = LicenseFactory(tier="enterprise")
    demo.load(rng=random.Random(1), scale="demo")
    assert set(Conversation.objects.values_list("customer_id", flat=True)) == {license.customer_id}


@pytest.mark.django_db
def test_demo_other_scales_do_nothing():
    """Only the 'demo' scale loads anything."""
    assert demo.load(rng=random.Random(1), scale="large") == "nothing for this scale"
    assert not Conversation.objects.exists()
