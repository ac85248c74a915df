"""The canonical manifest hash: equal meaning gives an equal hash, in Python and in SQL alike."""

import json
import random
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builds.cache.services import (
    BAD_ARCHITECTURES,
    NOT_AN_OBJECT,
    InvalidManifest,
    manifest_canonical_json,
    manifest_hash,
    manifest_is_shareable,
)
from tests.conftest import raises_db_error

# PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates.
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
architectures = st.lists(st.sampled_from(["amd64", "ARM64", " arm64", "riscv64 ", "s390x", "arm/v7"]), max_size=5)
manifests = st.fixed_dictionaries(
    {},
    optional={
        "base": text,
        "steps": st.lists(json_values, max_size=4),
        "architectures": architectures,
        "comment": text,
        "_note": json_values,
        "registry_credential": st.none() | text,
        "push": st.fixed_dictionaries({"to": text}, optional={"registry_credential_id": st.none() | text}),
    },
).flatmap(lambda fixed: st.dictionaries(text, json_values, max_size=4).map(lambda extra: {**extra, **fixed}))

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sql_many(function: str, values: list) -> list:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {function}(m::jsonb) FROM unnest(%s::text[]) WITH ORDINALITY AS t(m, n) ORDER BY n",
            [[json.dumps(value) for value in values]],
        )
        return [row[0] for row in cursor.fetchall()]


def shuffled(value, rng: random.Random):
    """The same JSON value with every object's keys in a random order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: shuffled(item, rng) for key, item in items}
    if isinstance(value, list):
        return [shuffled(item, rng) for item in value]
    return value


@pytest.mark.django_db
@SETTINGS
@given(st.lists(manifests, min_size=1, max_size=25))
def test_python_and_sql_hash_agree(batch):
    """Python's manifest_hash and SQL's manifest_hash give the same 64-hex digest for generated manifests."""
    python = [manifest_hash(manifest) for manifest in batch]
    assert python == sql_many("manifest_hash", batch)
    assert all(len(digest) == 64 and digest == digest.lower() for digest in python)


@pytest.mark.django_db
@SETTINGS
@given(st.lists(manifests, min_size=1, max_size=25))
def test_python_and_sql_canonical_text_and_shareability_agree(batch):
    """The canonical text and the shareable verdict are the same in Python and SQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT manifest_canonical_json(m::jsonb, true), manifest_is_shareable(m::jsonb)"
            " FROM unnest(%s::text[]) WITH ORDINALITY AS t(m, n) ORDER BY n",
            [[json.dumps(manifest) for manifest in batch]],
        )
        rows = cursor.fetchall()
    assert [(manifest_canonical_json(m), manifest_is_shareable(m)) for m in batch] == rows


@SETTINGS
@given(manifests, st.randoms(use_true_random=False))
def test_key_order_comments_and_nulls_do_not_change_the_hash(manifest, rng):
    """Reordered keys, added comments, _-prefixed keys and null members leave the hash as it was."""
    variant = shuffled(manifest, rng)
    variant["comments"] = "rebuilt for the demo"
    variant["description"] = "anything"
    variant["_generated_by"] = {"tool": "intake", "at": 1}
    variant["absent_field"] = None
    assert manifest_hash(variant) == manifest_hash(manifest)


@SETTINGS
@given(manifests, st.randoms(use_true_random=False))
def test_architecture_order_case_and_duplicates_do_not_change_the_hash(manifest, rng):
    """The architecture list is a set: order, case, surrounding spaces and repeats do not matter."""
    archs = list(manifest.get("architectures") or ["amd64", "arm64"])
    manifest = {**manifest, "architectures": archs}
    variant = {**manifest, "architectures": [f" {a.upper()}" for a in rng.sample(archs, len(archs)) + archs[:1]]}
    assert manifest_hash(variant) == manifest_hash(manifest)


@SETTINGS
@given(manifests, text.filter(lambda key: not key.startswith("_") and key not in {"comment", "comments"}))
def test_a_meaningful_difference_changes_the_hash(manifest, key):
    """Adding a field with a value, or changing one, gives a different hash."""
    changed = {**manifest, key: ["new", 1]} if manifest.get(key) != ["new", 1] else {**manifest, key: ["new", 2]}
    if key in {"description", "notes"}:
        changed = {**manifest, "steps": [*manifest.get("steps", []), "one more step"]}
    assert manifest_hash(changed) != manifest_hash(manifest)


def test_numbers_are_normalised():
    """1, 1.0, 1e0 and Decimal('1.000') are the same number; -0.0 is 0; no exponents appear."""
    same = [{"n": 1}, {"n": 1.0}, {"n": Decimal("1.000")}, {"n": Decimal("1E0")}]
    assert len({manifest_hash(m) for m in same}) == 1
    assert manifest_canonical_json({"a": -0.0, "b": 1e-7, "c": 1e21, "d": 2.50}) == (
        '{"a":0,"b":0.0000001,"c":1000000000000000000000,"d":2.5}'
    )


def test_array_order_is_meaningful():
    """The order of build steps matters: swapping two steps changes the hash."""
    assert manifest_hash({"steps": ["a", "b"]}) != manifest_hash({"steps": ["b", "a"]})


def test_known_digest():
    """The canonical form of a small manifest, and its digest, are pinned (a format change must be deliberate)."""
    manifest = {"base": "alpine", "architectures": ["ARM64", "amd64"], "comment": "x", "n": 2.0}
    assert manifest_canonical_json(manifest) == '{"architectures":["amd64","arm64"],"base":"alpine","n":2}'
    assert manifest_hash(manifest) == "006662d302b31aaec89e947962176d95f9c0fc36546d2576a8323d3581e5a78f"


@pytest.mark.parametrize("value", [[1], "x", 3, None])
def test_python_rejects_a_manifest_that_is_not_an_object(value):
    """Python's manifest_hash raises InvalidManifest for a non-object manifest."""
    with pytest.raises(InvalidManifest, match=NOT_AN_OBJECT):
        manifest_hash(value)


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["[1]", '"x"', "3", "null"])
def test_sql_rejects_a_manifest_that_is_not_an_object(value):
    """SQL manifest_hash raises a P0 error naming the reason for a non-object manifest."""
    with raises_db_error("a manifest must be a JSON object") as info, connection.cursor() as cursor:
        cursor.execute("SELECT manifest_hash(%s::jsonb)", [value])
    assert info.value.__cause__.sqlstate.startswith("P0")


@pytest.mark.django_db
def test_bad_architectures_are_rejected_in_both():
    """An architectures value that is not a string or list of strings is refused by Python and SQL."""
    with pytest.raises(InvalidManifest, match=BAD_ARCHITECTURES):
        manifest_hash({"architectures": [1]})
    with raises_db_error("architectures"), connection.cursor() as cursor:
        cursor.execute("""SELECT manifest_hash('{"architectures": [1]}'::jsonb)""")


def test_a_manifest_nested_too_deeply_is_rejected():
    """A pathologically deep manifest raises InvalidManifest, not RecursionError."""
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidManifest, match="nested more than 32 levels deep"):
        manifest_hash({"x": deep})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "a\x00b", object()])
def test_values_json_cannot_express_are_rejected(value):
    """NaN, Infinity, NUL characters and non-JSON objects raise InvalidManifest."""
    with pytest.raises(InvalidManifest):
        manifest_hash({"x": value})


def test_shareability():
    """A non-null registry_credential(_id) anywhere makes a manifest private; null or absent ones do not."""
    assert manifest_is_shareable({"base": "alpine", "push": {"to": "r.example/x", "registry_credential": None}})
    assert not manifest_is_shareable({"base": {"image": "r.example/b", "registry_credential": "cred-1"}})
    assert not manifest_is_shareable({"push": [{"registry_credential_id": "0c9d"}]})
