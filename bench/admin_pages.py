"""Benchmark: every admin changelist, the operator dashboard and its live endpoint at the seed's six-month volume.

    .venv/bin/python bench/admin_pages.py            # six-month volume (loads it once into its own database)
    .venv/bin/python bench/admin_pages.py --quick    # a tenth of it, fewer repetitions: a smoke run

Works in its own database (``bench_admin_pages``, or ``bench_admin_pages_quick``) on the server the settings
point at (the embedded PostgreSQL, or ``DATABASE_URL``'s), kept between runs (``--reload`` rebuilds it). The
data come from ``seed_demo --scale six-months`` (``--fraction 0.1`` with ``--quick``), or this script's own
set-based generator when that fails. Each page is requested through Django's test client in this process (no
HTTP server): one warm-up, then
``--repeat`` timed requests; the median and the slowest are printed with the query count, against the target.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "honua.settings.development")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib import admin  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402

TARGET_MS = 300


SIX_MONTHS = {
    "customers": 100,
    "builds": 50_000,
    "events_per_build": 10,
    "cache_entries": 10_000,
    "access_log": 1_000_000,
    "conversations": 10_000,
    "messages_per_conversation": 10,
    "manifests": 10_000,
}

GENERATE_SQL = """
INSERT INTO customers (name, contact_name, contact_email, publishes_to_shared_cache, metadata)
SELECT 'Customer ' || g, 'Ops ' || g, 'ops' || g || '@example.com', true, '{}'
FROM generate_series(1, %(customers)s) g;

INSERT INTO licenses (customer_id, tier, status, is_trial, license_key_encrypted, license_key_index,
                      feature_overrides, notes, expires_at)
SELECT c.id, (ARRAY['core', 'pro', 'enterprise', 'asp'])[1 + (c.rn %% 4)], 'active', c.rn %% 10 = 0, 'v1:1:bench',
       encode(sha256(c.id::text::bytea), 'hex'), '{}', '',
       CASE WHEN c.rn %% 10 = 0 THEN now() + (1 + c.rn %% 20 || ' days')::interval END
FROM (SELECT id, row_number() OVER (ORDER BY name) AS rn FROM customers) c;

CREATE TEMP TABLE bench_lic AS
SELECT row_number() OVER (ORDER BY id) AS rn, id, customer_id FROM licenses;
ALTER TABLE bench_lic ADD PRIMARY KEY (rn);
ANALYZE bench_lic;

-- Builds over six months, customers skewed (a few busy ones), the newest still queued or running.
INSERT INTO build_queue (retry_count, max_retries, timeout_seconds, heartbeat_timeout_seconds, cancel_requested,
                         source, customer_id, license_id, manifest, manifest_hash, priority, status, cache_hit,
                         worker_id, progress, stage, created_at, not_before, started_at, heartbeat_at, finished_at)
SELECT 0, 3, 3600, 120, false, 'api', l.customer_id, l.id, jsonb_build_object('base_image', 'python:3.12', 'n', s.g),
       encode(sha256(s.g::text::bytea), 'hex'), 1 + s.g %% 10,
       s.status, s.status = 'succeeded' AND s.g %% 5 = 0,
       CASE WHEN s.status <> 'queued' AND NOT (s.status = 'succeeded' AND s.g %% 5 = 0) THEN 'worker-' || s.g %% 16 END,
       CASE WHEN s.status = 'running' THEN s.g %% 100 WHEN s.status = 'queued' THEN 0 ELSE 100 END,
       CASE WHEN s.status = 'running' THEN 'install packages' END,
       s.created_at, s.created_at,
       CASE WHEN s.status <> 'queued' AND NOT (s.status = 'succeeded' AND s.g %% 5 = 0) THEN s.created_at END,
       CASE WHEN s.status = 'running' THEN now() - (s.g %% 200 || ' seconds')::interval END,
       CASE WHEN s.status NOT IN ('queued', 'running') THEN s.created_at + interval '4 minutes' END
FROM (
    SELECT g, now() - ((%(builds)s - g) * interval '311 seconds') AS created_at,
           1 + floor(%(customers)s * power(random(), 2))::int AS rn,
           CASE WHEN g > %(builds)s - 60 THEN 'queued'
                WHEN g > %(builds)s - 90 THEN 'running'
                WHEN g %% 100 < 85 THEN 'succeeded'
                WHEN g %% 100 < 93 THEN 'failed'
                WHEN g %% 100 < 96 THEN 'timed_out'
                ELSE 'cancelled' END AS status
    FROM generate_series(1, %(builds)s) g
) s JOIN bench_lic l ON l.rn = s.rn;

INSERT INTO build_results (build_id, attempt, status, worker_id, log, queue_wait_ms, duration_ms, created_at)
SELECT id, 1, status, worker_id, repeat('step ok; ', 40), 1000 + (random() * 60000)::int,
       30000 + (random() * 400000)::int, finished_at
FROM build_queue WHERE finished_at IS NOT NULL AND NOT cache_hit;

INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data, created_at)
SELECT b.id, 'progress', 'running', 'running', b.worker_id, 'stage ' || e, '{}',
       b.created_at + e * interval '20 seconds'
FROM build_queue b CROSS JOIN generate_series(1, %(events_per_build)s) e;

INSERT INTO build_metrics (build_id, name, value, unit, recorded_at)
SELECT id, 'cpu_seconds', random() * 300, 's', created_at FROM build_queue WHERE started_at IS NOT NULL;

INSERT INTO build_cache_registry (architectures, manifest_hash, owner_id, visibility, image_reference,
                                  image_digest, size_bytes, content_sha256, source_build_id, build_duration_ms,
                                  hit_count, last_accessed_at, created_at)
SELECT ARRAY['amd64'], manifest_hash, customer_id, CASE WHEN rn %% 3 = 0 THEN 'shared' ELSE 'private' END,
       'registry.example/app@sha256:' || manifest_hash, 'sha256:' || manifest_hash, 50000000 + rn * 1000,
       manifest_hash, id, 30000 + (rn %% 400) * 1000, 0, created_at, created_at
FROM (SELECT b.*, row_number() OVER (ORDER BY created_at) AS rn FROM build_queue b
      WHERE status = 'succeeded' AND NOT cache_hit) b
WHERE rn <= %(cache_entries)s;

CREATE TEMP TABLE bench_entries AS
SELECT row_number() OVER (ORDER BY id) AS rn, id, manifest_hash FROM build_cache_registry;
ALTER TABLE bench_entries ADD PRIMARY KEY (rn);
ANALYZE bench_entries;

INSERT INTO build_access_log (manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at)
SELECT coalesce(e.manifest_hash, encode(sha256(s.g::text::bytea), 'hex')), l.customer_id, e.id, e.id IS NOT NULL,
       50 + s.g %% 900, now() - (s.g::float / %(access_log)s) * interval '180 days'
FROM (SELECT g, 1 + floor(%(customers)s * power(random(), 2))::int AS c,
             CASE WHEN random() < 0.42 THEN 1 + (g %% %(cache_entries)s) END AS e
      FROM generate_series(1, %(access_log)s) g) s
JOIN bench_lic l ON l.rn = s.c
LEFT JOIN bench_entries e ON e.rn = s.e;

INSERT INTO conversations (message_count, prompt_tokens, completion_tokens, total_cost, satisfaction_comment,
                           metadata, customer_id, channel, status, model, title, started_at, last_message_at,
                           satisfaction_score, created_at)
SELECT 0, 0, 0, 0, '', '{}', l.customer_id, (ARRAY['web', 'cli', 'slack', 'api'])[1 + g %% 4],
       'active',
       'claude-sonnet-4', 'Image request ' || g, t, t + interval '20 minutes',
       CASE WHEN g %% 3 = 0 THEN NULL ELSE 1 + g %% 5 END, t
FROM (SELECT g, now() - ((%(conversations)s - g) * interval '1555 seconds') AS t,
             1 + floor(%(customers)s * power(random(), 2))::int AS c
      FROM generate_series(1, %(conversations)s) g) s
JOIN bench_lic l ON l.rn = s.c;

INSERT INTO conversation_messages (conversation_id, role, content, prompt_tokens, completion_tokens, cost,
                                   computed_cost, model, latency_ms, created_at)
SELECT c.id, CASE WHEN m %% 2 = 1 THEN 'user' ELSE 'assistant' END,
       'I need python 3.12 with gdal for arm64 and amd64, message ' || m,
       CASE WHEN m %% 2 = 0 THEN 1500 ELSE 0 END, CASE WHEN m %% 2 = 0 THEN 400 ELSE 0 END,
       CASE WHEN m %% 2 = 0 THEN 0.0105 ELSE 0 END, CASE WHEN m %% 2 = 0 THEN 0.0105 ELSE 0 END,
       'claude-sonnet-4', 800, c.started_at + m * interval '1 minute'
FROM conversations c CROSS JOIN generate_series(1, %(messages_per_conversation)s) m;

-- Messages go to active conversations only (update_conversation_stats): finish the older ones afterwards.
UPDATE conversations SET status = CASE WHEN title::text ~ '[0-9]*[05]$' THEN 'abandoned' ELSE 'completed' END,
       ended_at = last_message_at
WHERE started_at < now() - interval '1 day';

INSERT INTO build_manifests (approved_by, conversation_id, customer_id, version, status, manifest, manifest_hash,
                             created_at)
SELECT '', id, customer_id, 1, 'superseded', m.manifest, manifest_hash(m.manifest), started_at
FROM conversations
CROSS JOIN (SELECT '{"schema_version": 1, "base_image": "python:3.12", "architectures": ["amd64"]}'::jsonb) m(manifest)
ORDER BY started_at LIMIT %(manifests)s;
"""


def bench_database(quick: bool, name: str | None = None) -> str:
    if name:
        return name
    return "bench_admin_pages_quick" if quick else "bench_admin_pages"


def use_database(name: str, *, reload: bool) -> None:
    """Point the default connection at the bench database, creating and migrating it on first use."""
    connection.settings_dict["TEST"].update({"NAME": name})
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=not reload, serialize=False)


def has_data() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM build_queue)")
        return cursor.fetchone()[0]


def load(quick: bool) -> str:
    """The seed's six-month volume (a tenth with --quick): the project's ``seed_demo --scale six-months``, or, if
    that fails, the set-based generator above; then ANALYZE."""
    fraction = 0.1 if quick else 1.0
    started = time.perf_counter()
    try:
        with transaction.atomic():
            call_command("seed_demo", scale="six-months", fraction=fraction, verbosity=0)
        how = f"seed_demo --scale six-months --fraction {fraction}"
    except Exception as exc:  # report and fall back: the benchmark is about the pages, not the generator
        print(f"seed_demo --scale six-months failed ({str(exc).splitlines()[0]}); using this script's generator")
        volume = {
            k: v // 10 if quick and k not in {"customers", "events_per_build", "messages_per_conversation"} else v
            for k, v in SIX_MONTHS.items()
        }
        with connection.cursor() as cursor:
            cursor.execute(GENERATE_SQL, volume)
        how = f"bench/admin_pages.py's own generator (fraction {fraction})"
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return f"{how}, {time.perf_counter() - started:.0f} s"


def table_sizes() -> list[tuple[str, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reltuples::bigint FROM pg_class WHERE relkind IN ('r', 'p') AND relnamespace = "
            "'public'::regnamespace AND reltuples > 1000 ORDER BY reltuples DESC"
        )
        return cursor.fetchall()


def users() -> tuple[User, User]:
    superuser, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    operator, created = User.objects.get_or_create(username="bench-operator", defaults={"is_staff": True})
    if created:
        operator.groups.add(Group.objects.get(name="operators"))
    return superuser, operator


def pages() -> list[tuple[str, ...]]:
    """(name, url, who) for every changelist, a few filtered ones, the dashboard and the live endpoint."""
    rows = []
    for model in sorted(admin.site._registry, key=lambda m: (m._meta.app_label, m._meta.model_name)):
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        rows.append((f"{model._meta.app_label}.{model._meta.model_name}", url, "admin"))
    rows += [
        (
            "builds.build ?status=succeeded",
            reverse("admin:builds_build_changelist") + "?status__exact=succeeded",
            "admin",
        ),
        ("builds.build ?status=queued", reverse("admin:builds_build_changelist") + "?status__exact=queued", "admin"),
        ("console dashboard (operator)", reverse("admin:console_dashboard"), "operator"),
        ("console running builds (operator)", reverse("admin:console_running"), "operator"),
        ("console live.json (operator)", reverse("admin:console_live"), "operator"),
    ]
    rows += console_v2_pages()
    return rows


def console_v2_pages() -> list[tuple[str, ...]]:
    """The pages of console v2 (issue 16): ranges and one customer, the live panels, workers, build search by
    number, manifest and error text, a failed build's page and its retry confirmation, message search."""
    from builds.models import Build

    dashboard = reverse("admin:console_dashboard")
    builds = reverse("admin:builds_build_changelist")
    messages = reverse("admin:intake_conversationmessage_changelist")
    failed = Build.objects.filter(status="failed").order_by("-created_at").first()
    busiest = Build.objects.values_list("customer_id", flat=True).order_by("-created_at").first()
    rows = [
        # The 30-day panels are kept for a minute in Django's cache: the first view in each minute pays for them.
        ("console dashboard, its cache cleared", dashboard, "operator", "cold"),
        ("console dashboard ?range=1h (operator)", dashboard + "?range=1h", "operator"),
        ("console dashboard ?range=7d (operator)", dashboard + "?range=7d", "operator"),
        ("console dashboard ?range=30d (operator)", dashboard + "?range=30d", "operator"),
        ("console dashboard 30d one customer", dashboard + f"?range=30d&customer={busiest}", "operator"),
        ("console dashboard panels (live refresh)", dashboard + "?range=24h&partial=1", "operator"),
        ("console workers (operator)", reverse("admin:console_workers"), "operator"),
        ("builds.build ?q=#number", builds + f"?q=%23{failed.build_number if failed else 1}", "operator"),
        ("builds.build ?q=<package>", builds + "?q=pkg-13", "operator"),
        ("builds.build ?q=<base image>", builds + "?q=python:3.12-slim", "operator"),
        ("builds.build ?q=<error words>", builds + "?q=out+of+memory", "operator"),
        ("messages ?q=<words>", messages + "?q=dashboard+ubuntu", "operator"),
        ("messages ?q=<common word>", messages + "?q=manifest", "operator"),
    ]
    if failed is not None:
        rows += [
            ("build page (failed build)", reverse("admin:builds_build_change", args=[failed.pk]), "operator"),
            (
                "build retry confirmation",
                reverse("admin:builds_build_operation", args=[failed.pk, "retry"]),
                "operator",
            ),
        ]
    return rows


def measure(client: Client, url: str, repeat: int, cold: bool = False) -> tuple[float, float, int, int]:
    """Median and slowest of ``repeat`` requests after one warm-up; ``cold`` clears Django's cache before each."""
    from django.core.cache import cache

    client.get(url)  # warm-up (template loading, plan caches)
    timings = []
    with CaptureQueriesContext(connection) as queries:
        for _ in range(repeat):
            if cold:
                cache.clear()
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), max(timings), len(queries) // repeat, response.status_code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A tenth of the volume and 3 repetitions (smoke run).")
    parser.add_argument("--repeat", type=int, default=None, help="Timed requests per page (default 10, quick 3).")
    parser.add_argument("--reload", action="store_true", help="Drop and rebuild the bench database first.")
    parser.add_argument(
        "--database",
        default=None,
        help="Name of the bench database (default bench_admin_pages, or bench_admin_pages_quick); one of your own "
        "on a server others share.",
    )
    args = parser.parse_args()
    repeat = args.repeat or (3 if args.quick else 10)

    settings.ALLOWED_HOSTS = ["testserver", *settings.ALLOWED_HOSTS]
    settings.DEBUG = False
    name = bench_database(args.quick, args.database)
    use_database(name, reload=args.reload)
    loaded = load(args.quick) if not has_data() else "already loaded"
    print(f"database {name}: data {loaded}")
    for table, rows in table_sizes():
        print(f"  {table:<24} {rows:>10,} rows (estimate)")

    superuser, operator = users()
    clients = {"admin": Client(), "operator": Client()}
    clients["admin"].force_login(superuser)
    clients["operator"].force_login(operator)

    print(f"\n{'page':<40} {'median ms':>10} {'max ms':>8} {'queries':>8}  target < {TARGET_MS} ms (median)")
    missed = []
    for label, url, who, *how in pages():
        median, slowest, queries, status = measure(clients[who], url, repeat, cold=how == ["cold"])
        met = status == 200 and median < TARGET_MS
        if not met:
            missed.append(label)
        flag = "met" if met else f"MISSED (HTTP {status})" if status != 200 else "MISSED"
        print(f"{label:<40} {median:>10.1f} {slowest:>8.1f} {queries:>8}  {flag}")
    print(
        f"\n{len(pages()) - len(missed)} of {len(pages())} pages met the target"
        + (f"; missed: {', '.join(missed)}" if missed else "")
    )
    print(f"(server: PostgreSQL {connection.pg_version // 10000}, {repeat} timed requests per page)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
