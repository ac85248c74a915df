"""Build output through the SQL API (builds/sql/0022_agent_sql_api.sql): attach_build_artifact, append_build_log and
record_build_metric, callable only by the worker holding the running build, with HN SQLSTATEs for bad input that
change nothing; the Python services mirror the database's checks and map codes to honua.errors."""

import datetime as dt
import json
import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from builds.models import Build, BuildArtifact, BuildLogChunk, BuildMetric
from builds.queue import selectors, services
from honua import errors
from tests.builds.factories import BuildFactory

pytestmark = pytest.mark.django_db

DIGEST = "sha256:" + "ab" * 32
WORKER = "host-1/0"


def _one(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchone()


def _running(worker=WORKER, **kwargs):
    return BuildFactory(status="running", worker_id=worker, started_at=timezone.now(), **kwargs)


def _attach(build_id, worker=WORKER, kind="image", uri="registry.example/acme/app@" + DIGEST, media_type=None,
            size=1234, digest=DIGEST, metadata="{}"):  # fmt: skip
    media_type = media_type or "application/vnd.oci.image.manifest.v1+json"
    return _one(
        "SELECT attach_build_artifact(%s, %s, %s, %s, %s, %s, %s, %s::jsonb)",
        [build_id, worker, kind, uri, media_type, size, digest, metadata],
    )[0]


def _append(build_id, worker=WORKER, chunk="step 1/3: FROM python\n"):
    return _one("SELECT append_build_log(%s, %s, %s)", [build_id, worker, chunk])[0]


def _metric(build_id, worker=WORKER, name="layer_bytes", value=42.0, unit="bytes"):
    return _one("SELECT record_build_metric(%s, %s, %s, %s, %s)", [build_id, worker, name, value, unit])[0]


def _snapshot(build):
    """Everything a call could change: output rows and the build row."""
    row = Build.objects.filter(pk=build.pk).values().first() if build else None
    return (
        list(BuildArtifact.objects.values_list("id", "sha256")),
        list(BuildLogChunk.objects.values_list("id", "chunk")),
        list(BuildMetric.objects.values_list("id", "value")),
        row,
    )


def _sqlstate_of(call):
    with pytest.raises(DatabaseError) as info, transaction.atomic():
        call()
    return errors.sqlstate_of(info.value), errors.message_of(info.value)


# --- what they do ---------------------------------------------------------------------------------------------


def test_attach_records_the_artifact_and_a_retry_returns_the_same_one():
    """attach_build_artifact stores the artifact (digest without its sha256: prefix) and returns its id; the
    same kind, uri and digest again returns that id instead of a second row."""
    build = _running()
    first = _attach(build.pk, metadata=json.dumps({"platform": "linux/amd64"}))
    artifact = BuildArtifact.objects.get(pk=first)
    assert (artifact.build_id, artifact.kind, artifact.size_bytes, artifact.sha256) == (
        build.pk,
        "image",
        1234,
        "ab" * 32,
    )
    assert artifact.metadata == {"platform": "linux/amd64"}
    assert _attach(build.pk) == first
    second = _attach(build.pk, kind="sbom", uri="s3://bucket/sbom.spdx.json", media_type="application/spdx+json")
    assert second != first and BuildArtifact.objects.filter(build=build).count() == 2


def test_append_stores_chunks_in_order_with_their_attempt():
    """append_build_log returns increasing chunk ids; the log reads back in order, tagged with the attempt."""
    build = _running(retry_count=1)
    ids = [_append(build.pk, chunk=f"line {n}\n") for n in range(3)]
    assert ids == sorted(ids)
    assert selectors.build_log_text(build) == "line 0\nline 1\nline 2\n"
    assert set(BuildLogChunk.objects.filter(build_id=build.pk).values_list("attempt", "worker_id")) == {(2, WORKER)}


def test_append_accepts_a_chunk_of_exactly_the_limit():
    """64 KiB of UTF-8 (counted in bytes, not characters) is the largest chunk accepted."""
    build = _running()
    _append(build.pk, chunk="é" * (65536 // 2))
    assert BuildLogChunk.objects.filter(build_id=build.pk).count() == 1


def test_record_metric_returns_its_id():
    """record_build_metric appends a sample with its unit; the unit may be left out."""
    build = _running()
    metric_id = _metric(build.pk, value=1.5e9)
    assert BuildMetric.objects.get(pk=metric_id).value == 1.5e9
    other = _one("SELECT record_build_metric(%s, %s, 'run_seconds', 3)", [build.pk, WORKER])[0]
    assert BuildMetric.objects.get(pk=other).unit == ""


def test_sbom_and_signature_need_the_builds_entitlement():
    """A build entitled to an SBOM but not to signing (its outputs fixed at enqueue): a signature raises HN203 and
    writes nothing; an SBOM and an image are attached."""
    build = _running()
    Build.objects.filter(pk=build.pk).update(entitled_outputs=["sbom"])
    before = _snapshot(build)
    code, message = _sqlstate_of(
        lambda: _attach(build.pk, kind="signature", uri="s3://b/sig", media_type="application/vnd.dev.cosign+json")
    )
    assert code == "HN203" and "signing" in message
    assert _snapshot(build) == before
    _attach(build.pk, kind="sbom", uri="s3://b/sbom", media_type="application/spdx+json")
    _attach(build.pk)


# --- who may call them ----------------------------------------------------------------------------------------

CALLS = {
    "attach": lambda build_id, worker: _attach(build_id, worker),
    "append": lambda build_id, worker: _append(build_id, worker),
    "metric": lambda build_id, worker: _metric(build_id, worker),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("null build", "HN001"),
        ("null worker", "HN001"),
        ("empty worker", "HN001"),
        ("unknown build", "HN103"),
        ("wrong worker", "HN302"),
        ("queued build", "HN302"),
        ("finished build", "HN302"),
    ],
)
def test_only_the_worker_holding_the_running_build_may_add_output(call, case, code):
    """NULL ids are HN001, an unknown build HN103, another worker or a build not running HN302; nothing changes."""
    build = _running()
    build_id, worker = build.pk, WORKER
    if case == "null build":
        build_id = None
    elif case == "null worker":
        worker = None
    elif case == "empty worker":
        worker = " "
    elif case == "unknown build":
        build_id = uuid.uuid4()
    elif case == "wrong worker":
        worker = "host-2/0"
    elif case == "queued build":
        build = BuildFactory()
        build_id = build.pk
    elif case == "finished build":
        assert _one("SELECT complete_build(%s, %s, false, p_error => 'boom')", [build.pk, WORKER])[0]
    before = _snapshot(build)
    assert _sqlstate_of(lambda: call(build_id, worker))[0] == code
    assert _snapshot(build) == before


# --- malformed input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "code", "message"),
    [
        ({"digest": "sha256:" + "AB" * 32}, "HN004", "artifact digest"),
        ({"digest": "sha256:" + "a" * 63}, "HN004", "artifact digest"),
        ({"digest": "a" * 64}, "HN004", "artifact digest"),
        ({"digest": "md5:" + "a" * 32}, "HN004", "artifact digest"),
        ({"digest": None}, "HN001", "must not be null"),
        ({"kind": "zip"}, "HN004", "artifact kind"),
        ({"kind": None}, "HN001", "must not be null"),
        ({"uri": ""}, "HN004", "artifact uri"),
        ({"uri": "s3://b/a file"}, "HN004", "artifact uri"),
        ({"uri": "x" * 1001}, "HN004", "artifact uri"),
        ({"media_type": "json"}, "HN004", "media type"),
        ({"media_type": "application/json; charset=utf-8"}, "HN004", "media type"),
        ({"size": -1}, "HN004", "artifact size"),
        ({"size": None}, "HN001", "must not be null"),
        ({"metadata": "[]"}, "HN004", "metadata"),
        ({"metadata": json.dumps({"x": "y" * 20000})}, "HN004", "metadata"),
    ],
)
def test_a_malformed_artifact_is_refused_and_nothing_changes(kwargs, code, message):
    """Each malformed artifact field gets its documented SQLSTATE and message; nothing is written."""
    build = _running()
    before = _snapshot(build)
    got_code, got_message = _sqlstate_of(lambda: _attach(build.pk, **kwargs))
    assert (got_code, message in got_message) == (code, True)
    assert _snapshot(build) == before
    if kwargs.get("digest") is not None or "digest" not in kwargs:
        python_kwargs = {
            "kind": "image",
            "uri": "registry.example/acme/app@" + DIGEST,
            "media_type": "application/vnd.oci.image.manifest.v1+json",
            "size_bytes": 1234,
            "digest": DIGEST,
            "metadata": {},
        }
        renamed = {"size": "size_bytes"}
        for key, value in kwargs.items():
            python_kwargs[renamed.get(key, key)] = json.loads(value) if key == "metadata" else value
        expected = errors.InvalidArgument if code == "HN001" else errors.InvalidBuildOutput
        with pytest.raises(expected) as info:
            services.check_artifact(**python_kwargs)
        assert str(info.value) == got_message, "the Python check says what the database says"


@pytest.mark.parametrize(
    ("chunk", "code"),
    [(None, "HN001"), ("", "HN004"), ("x" * 65537, "HN004"), ("é" * 32769, "HN004")],
    ids=["null", "empty", "oversized", "oversized in bytes"],
)
def test_a_bad_log_chunk_is_refused_and_nothing_changes(chunk, code):
    """A NULL chunk is HN001; an empty one or one over 64 KiB (in bytes) is HN004; nothing is written."""
    build = _running()
    before = _snapshot(build)
    got_code, got_message = _sqlstate_of(lambda: _append(build.pk, chunk=chunk))
    assert got_code == code
    assert _snapshot(build) == before
    with pytest.raises(errors.InvalidArgument) as info:
        services.check_log_chunk(chunk)
    assert str(info.value) == got_message


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"name": None}, "HN001"),
        ({"value": None}, "HN001"),
        ({"name": ""}, "HN004"),
        ({"name": "Queue Wait"}, "HN004"),
        ({"name": "9lives"}, "HN004"),
        ({"name": "a" * 101}, "HN004"),
        ({"value": float("nan")}, "HN004"),
        ({"value": float("inf")}, "HN004"),
        ({"unit": "u" * 33}, "HN004"),
    ],
)
def test_a_bad_metric_is_refused_and_nothing_changes(kwargs, code):
    """A NULL name or value is HN001; a malformed name, a non-finite value or a long unit is HN004."""
    build = _running()
    before = _snapshot(build)
    got_code, got_message = _sqlstate_of(lambda: _metric(build.pk, **kwargs))
    assert got_code == code
    assert _snapshot(build) == before
    python_kwargs = {"name": "layer_bytes", "value": 42.0, "unit": "bytes", **kwargs}
    with pytest.raises(errors.InvalidArgument) as info:
        services.check_metric(**python_kwargs)
    assert str(info.value) == got_message


# --- services and honua.errors --------------------------------------------------------------------------------


def test_services_raise_by_code():
    """The services' wrappers raise honua.errors' class for each SQLSTATE: unknown build, not held, not running."""
    build = _running()
    with pytest.raises(errors.BuildNotFound) as info:
        services.build_log_append(build=uuid.uuid4(), worker_id=WORKER, chunk="x")
    assert info.value.sqlstate == "HN103"
    with pytest.raises(errors.BuildNotHeld):
        services.build_log_append(build=build, worker_id="someone-else", chunk="x")
    assert services.build_log_append(build=build, worker_id=WORKER, chunk="ok\n") > 0
    artifact = services.build_artifact_attach(
        build=build, worker_id=WORKER, kind="report", uri="s3://b/r.html", media_type="text/html", size_bytes=0,
        digest=DIGEST,
    )  # fmt: skip
    assert artifact.kind == "report"


@pytest.mark.parametrize("code", sorted(code for code in errors.BY_SQLSTATE if code.startswith("HN")))
def test_every_hn_code_maps_to_its_exception(code):
    """An error raised with an HN SQLSTATE becomes the HonuaError subclass of that code, with its message."""
    with pytest.raises(DatabaseError) as info, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DO $$ BEGIN RAISE EXCEPTION 'boom %', 1 USING ERRCODE = '{code}'; END $$")
    error = errors.from_database_error(info.value)
    assert type(error) is errors.BY_SQLSTATE[code] and error.code == code == error.sqlstate
    assert str(error) == "boom 1" and isinstance(error, errors.HonuaError)


def test_errors_honua_does_not_raise_on_purpose_are_not_mapped():
    """A unique violation or a syntax error is not an API error: no mapping, the caller lets it propagate."""
    with pytest.raises(DatabaseError) as info, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT 1/0")
    assert errors.from_database_error(info.value) is None
    assert errors.error_for_sqlstate("P0002", "customer x does not exist").__class__ is errors.NotFound


def test_cleanup_old_build_logs_trims_old_chunks():
    """The weekly log cleanup deletes log chunks older than the retention, keeping newer ones."""
    build = _running()
    old, new = _append(build.pk, chunk="old\n"), _append(build.pk, chunk="new\n")
    BuildLogChunk.objects.filter(pk=old).update(created_at=timezone.now() - dt.timedelta(days=91))
    assert _one("SELECT cleanup_old_build_logs(90)")[0] >= 1
    assert list(BuildLogChunk.objects.values_list("id", flat=True)) == [new]
