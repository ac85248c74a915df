"""The seed's six-month volume for 100 customers, generated set-based in PostgreSQL (INSERT ... SELECT over
generate_series), repeatable: ``setseed()`` drives ``random()`` and ids are ``md5(seed, kind, n)``.

Shape (at ``fraction=1``): 100 customers (5 ASP, 20 enterprise, 35 pro, 40 core) with their licenses and
registry credentials; 10,000 conversations with ~100,000 messages, ~20,000 intents, ~30,000 extractions and
~10,000 manifests; 50,000 builds (one per submitted manifest, the rest from the API) with results, ~500,000
events, metrics and artifacts; 10,000 cache entries and 1,000,000 cache lookups. Customers are skewed (a power
law: the biggest customer has ~12% of the traffic, the smallest a few rows), activity grows over the six months,
and manifests repeat (a skewed pool of templates), so cache hits are realistic.

Triggers are switched off for the load (``session_replication_role = replica``) when the role may do so, and the
totals they would keep (conversation totals, cache hit counts) are computed here instead; every CHECK constraint
still applies, and every foreign key is satisfied by construction (the tests check both).
"""

import time
from collections.abc import Callable
from datetime import datetime

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

SEED_SCALE = "six-months"
SPAN_DAYS = 182
CUSTOMERS = 100
# Issue 15: the same six months at ten times the customers and every volume (each scale's volumes are VOLUME times
# its multiplier; the customers' tiers, skew and deletions keep their shares).
SCALE_MULTIPLIERS = {"six-months": 1, "ten-x": 10}
VOLUME = {  # at fraction 1: the seed's estimate
    "conversations": 10_000,
    "builds": 50_000,
    "cache_entries": 10_000,
    "access_log": 1_000_000,
    "templates": 3_000,
}
TABLES = (
    "customers",
    "licenses",
    "registry_credentials",
    "conversations",
    "conversation_messages",
    "conversation_intents",
    "requirement_extractions",
    "build_manifests",
    "build_queue",
    "build_results",
    "build_events",
    "build_metrics",
    "build_artifacts",
    "build_cache_registry",
    "build_access_log",
)

Progress = Callable[[int, int, str], None]


def seed_anchor() -> datetime:
    """The end of the six months: the start of the current UTC hour (the same data for a seed within an hour)."""
    return timezone.now().replace(minute=0, second=0, microsecond=0)


# Each step is one or more statements; %(name)s are parameters. "uid(kind, n)" is a deterministic uuid.
_UID = "md5('honua-seed:' || %(seed)s || ':{kind}:' || ({n}))::uuid"


def _uid(kind: str, n: str) -> str:
    return _UID.format(kind=kind, n=n)


def _month_partitions(cursor, params) -> None:
    """Monthly partitions for every seeded month, before anything is loaded: else the seeded history lands in the
    DEFAULT partitions, and the first daily maintenance moves all of it (builds.0031_partitions). Skipped on a
    database migrated to before the partitions (the conversion's test seeds one)."""
    cursor.execute("SELECT to_regproc('public.partition_create_month') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return
    cursor.execute(
        """SELECT count(*) FILTER (WHERE partition_create_month(t.parent, m))
        FROM (SELECT partrelid::regclass AS parent FROM pg_partitioned_table) t
        CROSS JOIN generate_series(date_trunc('month', %(anchor)s::timestamptz - interval '8 months', 'UTC'),
                                   %(anchor)s::timestamptz + interval '1 month', interval '1 month') m""",
        params,
    )


STEPS: list[tuple[str, list]] = [  # each statement: SQL, or a callable(cursor, params)
    ("monthly partitions", [_month_partitions]),
    (
        "customers",
        [
            "SELECT setseed(%(setseed)s)",
            f"""CREATE TEMP TABLE seed_customers ON COMMIT DROP AS
            SELECT g - 1 AS ord, {_uid("customer", "g")} AS id, {_uid("license", "g")} AS license_id,
                   CASE WHEN g * 100 <= 5 * %(customers)s THEN 'asp'
                        WHEN g * 100 <= 25 * %(customers)s THEN 'enterprise'
                        WHEN g * 100 <= 60 * %(customers)s THEN 'pro' ELSE 'core' END AS tier,
                   %(anchor)s::timestamptz - interval '200 days' + random() * interval '10 days' AS created_at,
                   (ARRAY['Kestrel','Basalt','Lumen','Orchid','Tundra','Cobalt','Juniper','Vireo','Halcyon',
                          'Meridian','Quartz','Sable','Aster','Fjord','Koa','Nimbus','Pele','Saffron','Umber',
                          'Wren'])[1 + mod(g * 7, 20)]
                   || ' ' || (ARRAY['Labs','Systems','Cloud','Analytics','Robotics','Health','Logistics',
                                    'Studio','Energy','Foods'])[1 + mod(g * 3 + g / 20, 10)] AS name
            FROM generate_series(1, %(customers)s) g""",
            "CREATE UNIQUE INDEX ON seed_customers (ord)",
            "ANALYZE seed_customers",
            """INSERT INTO customers (id, name, contact_name, contact_email, publishes_to_shared_cache, metadata,
                                      created_at, updated_at, deleted_at)
            SELECT id, name, 'Ops ' || (ord + 1), 'ops' || (ord + 1) || '@' || lower(replace(name, ' ', '-'))
                   || '.example', NOT (tier = 'enterprise' AND mod(ord, 7) = 0),
                   jsonb_build_object('seed', %(seed)s, 'scale', %(scale)s), created_at, created_at,
                   CASE WHEN ord * 100 >= 97 * %(customers)s THEN %(anchor)s::timestamptz - interval '45 days' END
            FROM seed_customers ORDER BY ord""",
        ],
    ),
    (
        "licenses and registry credentials",
        [
            """INSERT INTO licenses (id, customer_id, tier, status, is_trial, license_key_encrypted, license_key_index,
                                     feature_overrides, starts_at, expires_at, notes, created_at, updated_at)
            SELECT license_id, id, tier, 'active', tier = 'core' AND mod(ord, 10) = 3, 'v1:0:c2VlZCBwbGFjZWhvbGRlcg==',
                   encode(sha256(convert_to('license:' || license_id, 'UTF8')), 'hex'), '{}', created_at,
                   CASE WHEN tier = 'core' AND mod(ord, 10) = 3 THEN %(anchor)s::timestamptz + interval '14 days'
                        WHEN mod(ord, 4) = 0 THEN %(anchor)s::timestamptz + interval '180 days' END,
                   '', created_at, created_at
            FROM seed_customers ORDER BY ord""",
            # Earlier licenses that expired or were revoked (history for a third of the customers).
            f"""INSERT INTO licenses (id, customer_id, tier, status, is_trial, license_key_encrypted,
                                     license_key_index, feature_overrides, starts_at, expires_at, revoked_at, notes,
                                     created_at, updated_at)
            SELECT {_uid("old-license", "ord")}, id, CASE WHEN tier = 'asp' THEN 'enterprise' ELSE 'core' END,
                   CASE WHEN mod(ord, 6) = 0 THEN 'revoked' ELSE 'expired' END, mod(ord, 2) = 0,
                   'v1:0:c2VlZCBwbGFjZWhvbGRlcg==',
                   encode(sha256(convert_to('old-license:' || id, 'UTF8')), 'hex'), '{{}}',
                   created_at - interval '165 days', created_at - interval '1 day',
                   CASE WHEN mod(ord, 6) = 0 THEN created_at - interval '20 days' END, '',
                   created_at - interval '165 days', created_at
            FROM seed_customers WHERE mod(ord, 3) = 0 ORDER BY ord""",
            f"""INSERT INTO registry_credentials (id, customer_id, registry_type, registry_url, username,
                                                 secret_encrypted, status, expires_at, revoked_at, last_used_at,
                                                 created_at, updated_at, deleted_at)
            SELECT {_uid("credential", "c.ord * 10 + k")}, c.id, t.type, t.url, 'ci-' || (c.ord + 1) || '-' || k,
                   'v1:0:c2VlZCBwbGFjZWhvbGRlcg==',
                   CASE WHEN mod(c.ord + k, 11) = 0 THEN 'revoked' WHEN mod(c.ord + k, 7) = 0 THEN 'expired'
                        ELSE 'active' END,
                   CASE WHEN mod(c.ord + k, 7) = 0 THEN %(anchor)s::timestamptz - interval '20 days'
                        WHEN mod(c.ord + k, 5) = 0 THEN %(anchor)s::timestamptz + interval '60 days' END,
                   CASE WHEN mod(c.ord + k, 11) = 0 THEN %(anchor)s::timestamptz - interval '30 days' END,
                   %(anchor)s::timestamptz - random() * interval '20 days', c.created_at, c.created_at,
                   CASE WHEN mod(c.ord + k, 13) = 0 THEN %(anchor)s::timestamptz - interval '40 days' END
            FROM seed_customers c
            CROSS JOIN LATERAL generate_series(1, CASE c.tier WHEN 'core' THEN 1 WHEN 'pro' THEN 2 ELSE 4 END) k
            JOIN (VALUES (0, 'ghcr', 'ghcr.io'), (1, 'ecr', '123456789012.dkr.ecr.us-west-2.amazonaws.com'),
                         (2, 'dockerhub', 'registry-1.docker.io'), (3, 'harbor', 'harbor.internal.example'))
                 t(n, type, url) ON t.n = mod(c.ord + k, 4)
            ORDER BY c.ord, k""",
        ],
    ),
    ("secrets", [lambda cursor, params: _encrypt_secrets(cursor)]),
    (
        "manifest templates",
        [
            """CREATE TEMP TABLE seed_templates ON COMMIT DROP AS
            SELECT tk, m AS manifest, manifest_hash(m) AS manifest_hash  -- the cache's canonical hash
            FROM (
                -- Manifest schema v1 (intake/manifests.py): every key, packages/architectures/ports sorted.
                SELECT k - 1 AS tk, jsonb_build_object(
                    'schema_version', 1,
                    'base_image', (ARRAY['python:3.12-slim','node:22-alpine','eclipse-temurin:21-jre','golang:1.23',
                                         'ubuntu:24.04','debian:bookworm-slim','rust:1.82','ruby:3.3'])[1 + mod(k, 8)],
                    'language', (ARRAY['{"name": "python", "version": "3.12"}', '{"name": "node", "version": "22"}',
                                       '{"name": "java", "version": "21"}', '{"name": "go", "version": "1.23"}',
                                       'null', 'null', '{"name": "rust", "version": "1.82"}',
                                       '{"name": "ruby", "version": "3.3"}'])[1 + mod(k, 8)]::jsonb,
                    'packages', (SELECT jsonb_agg(DISTINCT p ORDER BY p) FROM unnest(ARRAY[
                                    'pkg-' || mod(k * 13, 97), 'pkg-' || mod(k * 29, 89)]) p),
                    'architectures', CASE WHEN mod(k, 3) = 0 THEN '["amd64","arm64"]'::jsonb
                                          ELSE '["amd64"]'::jsonb END,
                    'registry', NULL,
                    'env', jsonb_build_object('APP_VARIANT', k::text),
                    'ports', jsonb_build_array(8000 + mod(k, 100))) AS m
                FROM generate_series(1, %(templates)s) k
            ) t""",
            "CREATE UNIQUE INDEX ON seed_templates (tk)",
            "ANALYZE seed_templates",
        ],
    ),
    (
        "conversations",
        [
            """CREATE TEMP TABLE seed_conv_draw ON COMMIT DROP AS
            SELECT g, floor(%(customers)s * power(random(), 2.2))::int AS cord,
                   least(%(anchor)s::timestamptz - %(span)s * (1 - sqrt(random())) * interval '1 day',
                         %(anchor)s::timestamptz - interval '20 minutes') AS started_at,
                   random() AS u_status, random() AS u_model, random() AS u_manifests, random() AS u_score,
                   2 + floor(random() * 17)::int AS n_messages,
                   floor(%(templates)s * power(random(), 2))::int AS template
            FROM generate_series(1, %(conversations)s) g""",
            f"""CREATE TEMP TABLE seed_conv ON COMMIT DROP AS
            SELECT d.g, {_uid("conversation", "d.g")} AS id, c.id AS customer_id, d.started_at, d.n_messages,
                   d.template, d.u_score,
                   CASE WHEN d.started_at > %(anchor)s::timestamptz - interval '3 hours' THEN 'active'
                        WHEN d.u_status < 0.65 THEN 'completed' WHEN d.u_status < 0.80 THEN 'abandoned'
                        ELSE 'expired' END AS status,
                   CASE WHEN d.u_model < 0.6 THEN 'claude-sonnet-4' WHEN d.u_model < 0.75 THEN 'claude-opus-4'
                        ELSE 'claude-haiku-4' END AS model,
                   (ARRAY['web','web','web','cli','slack','api'])[1 + mod(d.g, 6)] AS channel,
                   CASE WHEN d.u_manifests < 0.15 THEN 0 WHEN d.u_manifests < 0.85 THEN 1 ELSE 2 END AS n_manifests
            FROM seed_conv_draw d JOIN seed_customers c ON c.ord = d.cord""",
            "CREATE UNIQUE INDEX ON seed_conv (g)",
            "ANALYZE seed_conv",
            """INSERT INTO conversations (id, customer_id, channel, status, model, title, started_at, message_count,
                                          prompt_tokens, completion_tokens, total_cost, satisfaction_score,
                                          satisfaction_comment, satisfaction_source, metadata, created_at, updated_at,
                                          deleted_at)
            SELECT v.id, v.customer_id, v.channel, v.status, v.model,
                   'Build a ' || (t.manifest ->> 'base_image') || ' image', v.started_at, 0, 0, 0, 0,
                   CASE WHEN v.status = 'completed' AND v.u_score < 0.4 THEN 1 + floor(v.u_score * 12.5)::int END,
                   '', CASE WHEN v.status = 'completed' AND v.u_score < 0.4 THEN 'user' END, '{}', v.started_at,
                   v.started_at,
                   CASE WHEN mod(v.g, 97) = 0 THEN least(v.started_at + interval '2 days', %(anchor)s) END
            FROM seed_conv v JOIN seed_templates t ON t.tk = v.template
            ORDER BY v.started_at, v.g""",
        ],
    ),
    (
        "conversation messages",
        [
            """INSERT INTO conversation_messages (conversation_id, role, content, prompt_tokens, completion_tokens,
                                                  cost, computed_cost, model, latency_ms, created_at)
            SELECT v.id, r.role,
                   CASE WHEN r.role = 'user'
                        THEN 'I need an image for our '
                             || (ARRAY['API','worker','dashboard','batch job','model server'])[1 + mod(v.g + i, 5)]
                             || ' on ' || (t.manifest ->> 'base_image')
                             || ', with ' || (t.manifest -> 'packages' ->> 0) || ' and port '
                             || (t.manifest -> 'ports' ->> 0) || '. It must run on '
                             || (t.manifest ->> 'architectures') || '.'
                        ELSE 'Understood. I will use ' || (t.manifest ->> 'base_image') || ', install '
                             || (t.manifest -> 'packages' ->> 0)
                             || coalesce(' and ' || (t.manifest -> 'packages' ->> 1), '')
                             || ', expose ' || (t.manifest -> 'ports' ->> 0) || ' and build for '
                             || (t.manifest ->> 'architectures') || '. Shall I prepare the manifest?' END,
                   r.prompt_tokens, r.completion_tokens, r.cost, r.cost, v.model, r.latency_ms,
                   v.started_at + (i - 1) * interval '40 seconds' + random() * interval '20 seconds'
            FROM seed_conv v
            JOIN seed_templates t ON t.tk = v.template
            CROSS JOIN LATERAL generate_series(1, v.n_messages) i
            CROSS JOIN LATERAL (
                SELECT CASE WHEN mod(i, 2) = 1 THEN 'user' ELSE 'assistant' END AS role,
                       CASE WHEN mod(i, 2) = 0 THEN 400 + i * 180 + floor(random() * 300)::int ELSE 0 END
                           AS prompt_tokens,
                       CASE WHEN mod(i, 2) = 0 THEN 80 + floor(random() * 400)::int ELSE 0 END AS completion_tokens,
                       CASE WHEN mod(i, 2) = 0 THEN round((0.000003 * (400 + i * 180) + 0.000015 * 300)::numeric, 6)
                            ELSE 0 END AS cost,
                       CASE WHEN mod(i, 2) = 0 THEN 600 + floor(random() * 4000)::int END AS latency_ms
            ) r
            ORDER BY v.started_at, v.g, i""",
            # Each conversation's first message (what intents and extractions point at), in one pass.
            """CREATE TEMP TABLE seed_first_message ON COMMIT DROP AS
            SELECT m.conversation_id, min(m.id) AS first_id
            FROM conversation_messages m JOIN seed_conv v ON v.id = m.conversation_id GROUP BY m.conversation_id""",
            "CREATE UNIQUE INDEX ON seed_first_message (conversation_id)",
            "ANALYZE seed_first_message",
            # The totals the update_conversation_stats trigger keeps, computed once for the whole load.
            """UPDATE conversations c
            SET message_count = s.n, prompt_tokens = s.prompt, completion_tokens = s.completion, total_cost = s.cost,
                last_message_at = s.last_at,
                ended_at = CASE WHEN c.status <> 'active' THEN s.last_at + interval '10 minutes' END,
                updated_at = s.last_at
            FROM (
                SELECT m.conversation_id, count(*) AS n, sum(m.prompt_tokens) AS prompt,
                       sum(m.completion_tokens) AS completion, sum(m.cost) AS cost, max(m.created_at) AS last_at
                FROM conversation_messages m JOIN seed_conv v ON v.id = m.conversation_id
                GROUP BY m.conversation_id
            ) s
            WHERE c.id = s.conversation_id""",
        ],
    ),
    (
        "intents and requirement extractions",
        [
            """INSERT INTO conversation_intents (conversation_id, message_id, intent, confidence, entities, created_at)
            SELECT v.id, m.first_id, d.intent, round((0.55 + random() * 0.44)::numeric, 3),
                   jsonb_build_object('base_image', t.manifest ->> 'base_image'),
                   v.started_at + k * interval '30 seconds'
            FROM seed_conv v
            JOIN seed_templates t ON t.tk = v.template
            JOIN seed_first_message m ON m.conversation_id = v.id
            CROSS JOIN LATERAL generate_series(1, 1 + mod(v.g, 3)) k
            CROSS JOIN LATERAL (SELECT random() AS u, k AS per_row) r  -- naming k: run per row, not once
            CROSS JOIN LATERAL (
                SELECT CASE WHEN k = 1 OR r.u < 0.45 THEN 'new_build' WHEN r.u < 0.60 THEN 'modify_build'
                            WHEN r.u < 0.80 THEN 'question' WHEN r.u < 0.90 THEN 'status'
                            WHEN r.u < 0.93 THEN 'cancel' ELSE 'other' END AS intent
            ) d
            ORDER BY v.started_at, v.g, k""",
            """INSERT INTO requirement_extractions (conversation_id, source_message_id, requirement_type, value,
                                                    confidence, verification, corrected_value, verified_at,
                                                    verified_by, created_at)
            SELECT v.id, m.first_id, x.type, x.value, round((0.5 + random() * 0.5)::numeric, 3), x.verification,
                   CASE WHEN x.verification = 'corrected' THEN x.value || '-fixed' END,
                   CASE WHEN x.verification <> 'unverified' THEN v.started_at + interval '1 hour' END,
                   CASE WHEN x.verification <> 'unverified' THEN 'reviewer' ELSE '' END,
                   v.started_at + k * interval '35 seconds'
            FROM seed_conv v
            JOIN seed_templates t ON t.tk = v.template
            JOIN seed_first_message m ON m.conversation_id = v.id
            CROSS JOIN LATERAL generate_series(1, 1 + mod(v.g * 7, 5)) k
            CROSS JOIN LATERAL (SELECT random() AS u, k AS per_row) r  -- naming k: run per row, not once
            CROSS JOIN LATERAL (
                SELECT (ARRAY['base_image','language','package','architecture','port','registry','env','other'])[k]
                           AS type,
                       CASE k WHEN 1 THEN t.manifest ->> 'base_image'
                              WHEN 2 THEN split_part(t.manifest ->> 'base_image', ':', 1)
                              WHEN 3 THEN t.manifest -> 'packages' ->> 0 WHEN 4 THEN t.manifest ->> 'architectures'
                              ELSE t.manifest -> 'ports' ->> 0 END AS value,
                       CASE WHEN r.u < 0.5 THEN 'unverified' WHEN r.u < 0.85 THEN 'correct'
                            WHEN r.u < 0.93 THEN 'incorrect' ELSE 'corrected' END AS verification
            ) x
            ORDER BY v.started_at, v.g, k""",
        ],
    ),
    (
        "builds",
        [
            # One build per submitted manifest (the last version of a conversation, unless it is still open),
            # the rest from the API with manifests from the same skewed pool.
            """CREATE TEMP TABLE seed_build_draw ON COMMIT DROP AS
            SELECT row_number() OVER (ORDER BY created_at, g) AS n, *, random() AS u_status, random() AS u_prio,
                   -ln(1 - random()) * 25 AS wait_s,
                   60 + exp(ln(150) + 0.8 * (random() + random() + random() - 1.5)) AS run_s
            FROM (
                SELECT v.g, 'intake' AS source, v.customer_id, v.template, v.g AS conv_g,
                       v.started_at + v.n_messages * interval '45 seconds' AS created_at
                FROM seed_conv v
                WHERE v.n_manifests > 0 AND v.status = 'completed'
                  AND v.started_at + v.n_messages * interval '45 seconds' < %(anchor)s::timestamptz
                UNION ALL
                SELECT 1000000000 + g, CASE WHEN mod(g, 50) = 0 THEN 'admin' ELSE 'api' END, c.id, s.template,
                       NULL, s.created_at
                FROM (
                    SELECT g, floor(%(customers)s * power(random(), 2.2))::int AS cord,
                           floor(%(templates)s * power(random(), 2))::int AS template,
                           %(anchor)s::timestamptz - %(span)s * (1 - sqrt(random())) * interval '1 day' AS created_at
                    FROM generate_series(1, %(builds)s) g
                ) s JOIN seed_customers c ON c.ord = s.cord
            ) u""",
            # Keep exactly the seed's number of builds (intake builds first: they are tied to manifests).
            """DELETE FROM seed_build_draw WHERE n IN (
                SELECT n FROM seed_build_draw ORDER BY source = 'intake' DESC, g OFFSET %(builds)s)""",
            f"""CREATE TEMP TABLE seed_builds ON COMMIT DROP AS
            SELECT r.n, {_uid("build", "r.n")} AS id, r.source, r.customer_id, c.license_id, c.tier, r.template,
                   r.conv_g, r.created_at, r.u_status, r.wait_s, r.run_s,
                   CASE WHEN r.created_at + (r.wait_s + r.run_s) * interval '1 second' > %(anchor)s::timestamptz
                            THEN CASE WHEN r.created_at > %(anchor)s::timestamptz - interval '2 minutes'
                                       AND r.u_status < 0.5 THEN 'queued' ELSE 'running' END
                        WHEN r.u_status < 0.80 THEN 'succeeded' WHEN r.u_status < 0.92 THEN 'failed'
                        WHEN r.u_status < 0.96 THEN 'cancelled' ELSE 'timed_out' END AS status,
                   CASE WHEN r.u_prio < 0.70 THEN 5 WHEN r.u_prio < 0.80 THEN 7 WHEN r.u_prio < 0.88 THEN 3
                        WHEN r.u_prio < 0.95 THEN 8 ELSE 10 END AS priority,
                   'worker-' || lpad((1 + floor(r.u_prio * 1000)::int %% 24)::text, 2, '0') AS worker_id,
                   false AS cache_hit, NULL::uuid AS cache_entry_id
            FROM seed_build_draw r
            JOIN seed_customers c ON c.id = r.customer_id""",
            "CREATE UNIQUE INDEX ON seed_builds (n)",
            "ANALYZE seed_builds",
            # Cache entries: the first successful build of a manifest for an owner registers it.
            f"""CREATE TEMP TABLE seed_entries ON COMMIT DROP AS
            SELECT row_number() OVER (ORDER BY finished_at, n) - 1 AS ord, * FROM (
                SELECT DISTINCT ON (b.template, b.customer_id)
                       b.n, {_uid("cache", "b.n")} AS id, b.id AS build_id, b.customer_id, b.template,
                       CASE WHEN b.tier IN ('enterprise', 'asp') THEN 'shared' ELSE 'private' END AS visibility,
                       b.created_at + b.wait_s * interval '1 second' + b.run_s * interval '1 second' AS finished_at,
                       round(b.run_s * 1000)::bigint AS duration_ms
                FROM seed_builds b WHERE b.status = 'succeeded'
                ORDER BY b.template, b.customer_id, b.created_at
            ) e""",
            "DELETE FROM seed_entries WHERE ord >= %(cache_entries)s",
            "CREATE UNIQUE INDEX ON seed_entries (ord)",
            "CREATE INDEX ON seed_entries (template)",
            "ANALYZE seed_entries",
            # A later successful build of a manifest someone may reuse is served from the cache (about half).
            """UPDATE seed_builds b SET cache_hit = true, cache_entry_id = hit.entry_id
            FROM (
                SELECT DISTINCT ON (b.n) b.n, e.id AS entry_id
                FROM seed_builds b
                JOIN seed_entries e ON e.template = b.template AND e.finished_at < b.created_at
                     AND (e.customer_id = b.customer_id OR (e.visibility = 'shared' AND b.tier <> 'core'))
                WHERE b.status = 'succeeded' AND b.source <> 'intake' AND mod(b.n, 2) = 0
                  AND NOT EXISTS (SELECT 1 FROM seed_entries s WHERE s.build_id = b.id)
                ORDER BY b.n, e.customer_id = b.customer_id DESC, e.finished_at
            ) hit
            WHERE b.n = hit.n""",
            """INSERT INTO build_queue (id, customer_id, license_id, manifest, manifest_hash, priority, status,
                                        cache_hit, cache_entry_id, worker_id, progress, stage, retry_count,
                                        max_retries, timeout_seconds, heartbeat_timeout_seconds, cancel_requested,
                                        image_reference, image_digest, error_message, source, created_at,
                                        not_before, started_at, heartbeat_at, finished_at, updated_at,
                                        entitled_outputs)
            SELECT b.id, b.customer_id, b.license_id, t.manifest, t.manifest_hash, b.priority, b.status, b.cache_hit,
                   NULL, CASE WHEN NOT b.cache_hit AND b.status NOT IN ('queued') AND NOT x.cancelled_early
                              THEN b.worker_id END,
                   CASE WHEN b.status = 'succeeded' THEN 100 WHEN b.status = 'queued' THEN 0
                        WHEN b.status = 'running' THEN 10 + floor(b.u_status * 80)::int
                        ELSE floor(b.u_status * 90)::int END,
                   CASE WHEN b.status = 'running' THEN 'building' END,
                   CASE WHEN b.status = 'timed_out' THEN 3 WHEN b.status = 'succeeded' AND mod(b.n, 40) = 0 THEN 1
                        ELSE 0 END,
                   3, 3600, 120, b.status = 'cancelled',
                   CASE WHEN b.status = 'succeeded' THEN 'registry.honua.io/c' || left(b.customer_id::text, 8)
                        || '/app-' || b.template || ':' || b.n END,
                   CASE WHEN b.status = 'succeeded' THEN 'sha256:' || encode(sha256(convert_to(b.id::text, 'UTF8')),
                        'hex') END,
                   CASE b.status WHEN 'failed' THEN (ARRAY['step 4/9 RUN pip install: exit code 1',
                        'base image not found', 'registry push denied: unauthorized',
                        'out of memory while compiling'])[1 + mod(b.n, 4)]
                        WHEN 'timed_out' THEN 'no heartbeat for 120 s after 3 retries' END,
                   b.source, b.created_at, b.created_at,
                   x.started_at, CASE WHEN x.started_at IS NOT NULL THEN coalesce(x.finished_at, %(anchor)s) END,
                   x.finished_at, coalesce(x.finished_at, b.created_at),
                   -- What the build_queue_entitled_outputs trigger sets (it is off during a replica-mode load):
                   -- the seed's licenses follow their tier, with no feature overrides.
                   CASE b.tier WHEN 'core' THEN '{}' WHEN 'pro' THEN '{sbom}' ELSE '{sbom,signing}' END::text[]
            FROM seed_builds b
            JOIN seed_templates t ON t.tk = b.template
            CROSS JOIN LATERAL (
                SELECT b.status = 'cancelled' AND mod(b.n, 2) = 0 AS cancelled_early,
                       CASE WHEN b.cache_hit OR b.status = 'queued' OR (b.status = 'cancelled' AND mod(b.n, 2) = 0)
                            THEN NULL
                            WHEN b.status = 'running'
                            THEN least(b.created_at + b.wait_s * interval '1 second', %(anchor)s::timestamptz)
                            ELSE b.created_at + b.wait_s * interval '1 second' END AS started_at,
                       CASE WHEN b.cache_hit THEN b.created_at
                            WHEN b.status IN ('queued', 'running') THEN NULL
                            WHEN b.status = 'cancelled' AND mod(b.n, 2) = 0 THEN b.created_at + interval '5 seconds'
                            ELSE b.created_at + (b.wait_s + b.run_s) * interval '1 second' END AS finished_at
            ) x
            ORDER BY b.created_at, b.n""",
            "ANALYZE build_queue",
            f"""INSERT INTO build_manifests (id, conversation_id, customer_id, version, status, manifest, manifest_hash,
                                            build_id, approved_at, approved_by, submitted_at, created_at, updated_at)
            SELECT {_uid("manifest", "v.g * 10 + k")}, v.id, v.customer_id, k,
                   CASE WHEN k < v.n_manifests THEN 'superseded'
                        WHEN b.id IS NOT NULL THEN 'submitted'
                        WHEN v.status = 'active' THEN 'draft'
                        WHEN mod(v.g, 4) = 0 THEN 'approved' ELSE 'draft' END,
                   CASE WHEN k < v.n_manifests THEN jsonb_set(t.manifest, '{{env,DRAFT}}', to_jsonb(k::text))
                        ELSE t.manifest END,
                   CASE WHEN k < v.n_manifests
                        THEN manifest_hash(jsonb_set(t.manifest, '{{env,DRAFT}}', to_jsonb(k::text)))
                        ELSE t.manifest_hash END,
                   CASE WHEN k = v.n_manifests THEN b.id END,
                   CASE WHEN k = v.n_manifests AND (b.id IS NOT NULL OR (v.status <> 'active' AND mod(v.g, 4) = 0))
                        THEN v.started_at + v.n_messages * interval '44 seconds' END,
                   CASE WHEN k = v.n_manifests AND (b.id IS NOT NULL OR (v.status <> 'active' AND mod(v.g, 4) = 0))
                        THEN 'customer' ELSE '' END,
                   CASE WHEN k = v.n_manifests THEN b.created_at END,
                   v.started_at + (v.n_messages - v.n_manifests + k) * interval '40 seconds',
                   v.started_at + v.n_messages * interval '45 seconds'
            FROM seed_conv v
            JOIN seed_templates t ON t.tk = v.template
            CROSS JOIN LATERAL generate_series(1, v.n_manifests) k
            LEFT JOIN seed_builds b ON b.conv_g = v.g AND b.source = 'intake' AND k = v.n_manifests
            ORDER BY v.started_at, v.g, k""",
        ],
    ),
    (
        "build results, metrics and artifacts",
        [
            """INSERT INTO build_results (build_id, attempt, status, worker_id, image_reference, image_digest,
                                          error_message, log, queue_wait_ms, duration_ms, created_at)
            SELECT q.id, q.retry_count + 1, q.status, q.worker_id, q.image_reference, q.image_digest,
                   q.error_message,
                   '#1 [internal] load build definition' || E'\\n' || '#2 FROM ' || (q.manifest ->> 'base_image')
                   || E'\\n' || repeat('#5 [builder 3/7] RUN make install' || E'\\n' || '#5 DONE 4.2s' || E'\\n',
                                       5 + mod(abs(hashtext(q.id::text)), 40))
                   || coalesce('ERROR: ' || q.error_message, '#9 exporting to image') || E'\\n',
                   CASE WHEN q.started_at IS NOT NULL
                        THEN (extract(epoch FROM q.started_at - q.created_at) * 1000)::bigint END,
                   CASE WHEN q.started_at IS NOT NULL
                        THEN (extract(epoch FROM q.finished_at - q.started_at) * 1000)::bigint END,
                   q.finished_at
            FROM build_queue q JOIN seed_builds b ON b.id = q.id
            WHERE q.status IN ('succeeded', 'failed', 'cancelled', 'timed_out') AND NOT q.cache_hit
            ORDER BY q.finished_at, b.n""",
            """INSERT INTO build_metrics (build_id, name, value, unit, recorded_at)
            SELECT q.id, m.name, m.value, m.unit, q.finished_at
            FROM build_queue q JOIN seed_builds b ON b.id = q.id
            CROSS JOIN LATERAL (VALUES
                ('cpu_seconds', extract(epoch FROM q.finished_at - q.started_at) * (1 + random()), 's'),
                ('peak_memory_mb', 256 + random() * 3800, 'MB'),
                ('layer_count', 5 + floor(random() * 20), '')
            ) m(name, value, unit)
            WHERE q.started_at IS NOT NULL AND q.finished_at IS NOT NULL
            ORDER BY q.finished_at, b.n""",
            """INSERT INTO build_artifacts (build_id, kind, uri, media_type, size_bytes, sha256, metadata, created_at)
            SELECT q.id, a.kind, q.image_reference || a.suffix, a.media_type,
                   (a.base + random() * a.spread)::bigint * a.unit,
                   encode(sha256(convert_to(q.id::text || a.kind, 'UTF8')), 'hex'), '{}', q.finished_at
            FROM build_queue q JOIN seed_builds b ON b.id = q.id
            CROSS JOIN (VALUES
                ('image', '', 'application/vnd.oci.image.manifest.v1+json', 50, 1500, 1048576),
                ('sbom', '.sbom', 'application/spdx+json', 20, 400, 1024)
            ) a(kind, suffix, media_type, base, spread, unit)
            WHERE q.status = 'succeeded' AND NOT q.cache_hit AND (a.kind = 'image' OR b.tier <> 'core')
            ORDER BY q.finished_at, b.n, a.kind""",
        ],
    ),
    (
        "build events",
        [
            """INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data,
                                         created_at)
            SELECT e.build_id, e.event_type, e.from_status, e.to_status, e.worker_id, e.message, e.data, e.created_at
            FROM (
                SELECT q.id AS build_id, 'queued' AS event_type, NULL AS from_status,
                       CASE WHEN q.cache_hit THEN 'succeeded' ELSE 'queued' END AS to_status, NULL AS worker_id,
                       CASE WHEN q.cache_hit THEN 'served from the build cache' ELSE 'enqueued' END AS message,
                       jsonb_build_object('priority', q.priority, 'source', q.source) AS data,
                       q.created_at, b.n, 0 AS k
                FROM build_queue q JOIN seed_builds b ON b.id = q.id
                UNION ALL
                SELECT q.id, 'claimed', 'queued', 'running', q.worker_id, 'claimed by ' || q.worker_id, '{}',
                       q.started_at, b.n, 1
                FROM build_queue q JOIN seed_builds b ON b.id = q.id WHERE q.started_at IS NOT NULL
                UNION ALL
                SELECT q.id, 'progress', 'running', 'running', q.worker_id, 'progress',
                       jsonb_build_object(
                           'progress', (100 * p / (n_progress + 1)),
                           'stage', (ARRAY['pull','resolve','install','compile','package','push'])[1 + mod(p, 6)]),
                       q.started_at + (coalesce(q.finished_at, %(anchor)s) - q.started_at) * p / (n_progress + 1),
                       b.n, 1 + p
                FROM build_queue q JOIN seed_builds b ON b.id = q.id
                CROSS JOIN LATERAL (SELECT 5 + mod(abs(hashtext(q.id::text)), 9) AS n_progress) np
                CROSS JOIN LATERAL generate_series(1, np.n_progress) p
                WHERE q.started_at IS NOT NULL
                UNION ALL
                SELECT q.id, q.status, CASE WHEN q.started_at IS NULL THEN 'queued' ELSE 'running' END, q.status,
                       q.worker_id, coalesce(q.error_message, q.status), '{}', q.finished_at, b.n, 100
                FROM build_queue q JOIN seed_builds b ON b.id = q.id
                WHERE q.finished_at IS NOT NULL AND NOT q.cache_hit
            ) e
            ORDER BY e.created_at, e.n, e.k""",
        ],
    ),
    (
        "build cache",
        [
            """INSERT INTO build_cache_registry (id, manifest_hash, owner_id, visibility, image_reference, image_digest,
                                                 architectures, size_bytes, content_sha256, source_build_id,
                                                 build_duration_ms, hit_count, expires_at, created_at, updated_at,
                                                 deleted_at)
            SELECT e.id, t.manifest_hash, e.customer_id, e.visibility, q.image_reference, q.image_digest,
                   ARRAY(SELECT jsonb_array_elements_text(t.manifest -> 'architectures')),
                   (50 + random() * 1500)::bigint * 1048576,
                   encode(sha256(convert_to('content:' || e.id, 'UTF8')), 'hex'), e.build_id, e.duration_ms, 0,
                   CASE WHEN mod(e.ord, 9) = 0 THEN e.finished_at + interval '120 days' END,
                   e.finished_at, e.finished_at,
                   CASE WHEN mod(e.ord, 31) = 0 THEN %(anchor)s::timestamptz - interval '35 days' END
            FROM seed_entries e JOIN seed_templates t ON t.tk = e.template JOIN build_queue q ON q.id = e.build_id
            ORDER BY e.ord""",
            """UPDATE build_queue q SET cache_entry_id = b.cache_entry_id
            FROM seed_builds b WHERE b.id = q.id AND b.cache_entry_id IS NOT NULL""",
        ],
    ),
    (
        "cache access log",
        [
            # Two thirds hits (of an entry: popular entries more often, after it was registered), one third misses.
            """CREATE TEMP TABLE seed_access_draw ON COMMIT DROP AS
            SELECT g, random() < 0.66 AS hit, floor(%(entries)s * power(random(), 1.8))::int AS entry_ord,
                   floor(%(customers)s * power(random(), 2.2))::int AS cord,
                   floor(%(templates)s * power(random(), 2))::int AS template,
                   random() AS u_time, random() AS u_latency
            FROM generate_series(1, %(access_log)s) g""",
            """INSERT INTO build_access_log (manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at)
            SELECT a.manifest_hash, a.customer_id, a.cache_entry_id, a.hit, a.latency_us, a.accessed_at FROM (
                SELECT CASE WHEN d.hit THEN et.manifest_hash ELSE t.manifest_hash END AS manifest_hash,
                       CASE WHEN d.hit AND e.visibility = 'private' THEN e.customer_id ELSE c.id END AS customer_id,
                       CASE WHEN d.hit THEN e.id END AS cache_entry_id, d.hit,
                       CASE WHEN d.hit THEN 150 + floor(d.u_latency * 1800)::int
                            ELSE 80 + floor(d.u_latency * 700)::int END AS latency_us,
                       CASE WHEN d.hit THEN e.finished_at + (%(anchor)s::timestamptz - e.finished_at) * sqrt(d.u_time)
                            ELSE %(anchor)s::timestamptz - %(span)s * (1 - sqrt(d.u_time)) * interval '1 day'
                       END AS accessed_at,
                       d.g
                FROM seed_access_draw d
                JOIN seed_entries e ON e.ord = d.entry_ord
                JOIN seed_templates et ON et.tk = e.template
                JOIN seed_templates t ON t.tk = d.template
                JOIN seed_customers c ON c.ord = d.cord
            ) a
            ORDER BY a.accessed_at, a.g""",
            # The counters the update_cache_stats trigger keeps.
            """UPDATE build_cache_registry r SET hit_count = s.hits, last_accessed_at = s.last_at,
                                                 updated_at = greatest(r.updated_at, s.last_at)
            FROM (
                SELECT cache_entry_id, count(*) AS hits, max(accessed_at) AS last_at FROM build_access_log
                WHERE hit AND cache_entry_id IN (SELECT id FROM seed_entries) GROUP BY cache_entry_id
            ) s
            WHERE r.id = s.cache_entry_id""",
            # The rollup the rollup_cache_access trigger keeps (cache_statistics), recounted from the whole log
            # whether or not the trigger ran; the lock keeps concurrent lookups out of the recount.
            "LOCK TABLE build_access_log IN SHARE ROW EXCLUSIVE MODE",
            "DELETE FROM build_cache_access_rollup",
            """INSERT INTO build_cache_access_rollup (customer_id, cache_entry_id, shard, hits, misses)
            SELECT customer_id, cache_entry_id, -1, count(*) FILTER (WHERE hit), count(*) FILTER (WHERE NOT hit)
            FROM build_access_log GROUP BY customer_id, cache_entry_id""",
            "ANALYZE build_cache_access_rollup",
        ],
    ),
    # The scheduler's counters the build_queue_account_* triggers keep (the claim and the rescue of the seeded
    # running builds rely on them), recounted from the whole queue as builds/sql/0016_scheduler.sql does.
    (
        "scheduler counters",
        [
            "LOCK TABLE build_queue IN SHARE ROW EXCLUSIVE MODE",
            "DELETE FROM build_member_state",
            "DELETE FROM build_license_state",
            "DELETE FROM build_quota_usage",
            """INSERT INTO build_license_state (license_id, running, queued, urgent_queued, vtime, max_running)
            SELECT b.license_id, count(*) FILTER (WHERE b.status = 'running'),
                   count(*) FILTER (WHERE b.status = 'queued'),
                   count(*) FILTER (WHERE b.status = 'queued' AND b.priority >= 9), 0,
                   (SELECT l.max_concurrent_builds FROM licenses l WHERE l.id = b.license_id)
            FROM build_queue b WHERE b.status IN ('queued', 'running') GROUP BY b.license_id""",
            """INSERT INTO build_member_state (license_id, customer_id, queued, urgent_queued, vtime)
            SELECT b.license_id, b.customer_id, count(*), count(*) FILTER (WHERE b.priority >= 9), 0
            FROM build_queue b WHERE b.status = 'queued' GROUP BY b.license_id, b.customer_id""",
            """INSERT INTO build_quota_usage (license_id, period_start, used)
            SELECT b.license_id, build_quota_month(b.created_at), count(*) FROM build_queue b
            WHERE NOT b.cache_hit AND NOT (b.status = 'cancelled' AND b.started_at IS NULL)
            GROUP BY b.license_id, build_quota_month(b.created_at)""",
        ],
    ),
    # build_performance_summary's rollup of the closed days (what the hourly maintenance would fold). Guarded, so
    # that a database migrated only to a point before builds.0032 (the partition conversion's test seeds one) is
    # seeded too: PL/pgSQL resolves the call only when it runs.
    (
        "daily build rollup",
        [
            """DO $$ BEGIN
                IF to_regproc('public.fold_build_daily_rollup') IS NOT NULL THEN
                    PERFORM fold_build_daily_rollup(400, 0);
                END IF;
            END $$"""
        ],
    ),
    ("statistics (ANALYZE)", [f"ANALYZE {table}" for table in TABLES]),
]


def _encrypt_secrets(cursor) -> None:
    """Give the seeded licenses and credentials real AES-GCM ciphertexts when honua.crypto is there (a few hundred
    rows); otherwise they keep a placeholder in the stored format (``v1:0:...``), which nothing decrypts."""
    try:
        from honua import crypto
    except ImportError:
        return

    def encrypt_placeholders(table: str, column: str, source: str, plaintext) -> None:
        # Table and column names are this module's constants, never input.
        cursor.execute(f"SELECT id, {source} FROM {table} WHERE {column} LIKE 'v1:0:%%'")
        rows = [
            (crypto.encrypt(plaintext(value), table=table, column=column, row_id=row_id), row_id)
            for row_id, value in cursor.fetchall()
        ]
        cursor.executemany(f"UPDATE {table} SET {column} = %s WHERE id = %s", rows)

    encrypt_placeholders(
        "licenses", "license_key_encrypted", "license_key_index", lambda index: f"HONUA-SEED-{index[:24].upper()}"
    )
    encrypt_placeholders(
        "registry_credentials", "secret_encrypted", "username", lambda username: f"seed-token-{username}"
    )


def already_seeded(scale: str = SEED_SCALE) -> int:
    """How many seed customers of ``scale`` exist (0: not loaded)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM customers WHERE metadata @> jsonb_build_object('scale', %s::text)", [scale]
        )
        return cursor.fetchone()[0]


def _disable_triggers() -> bool:
    """Skip triggers for this transaction when allowed (a superuser, or SET granted on the parameter)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
        return True
    except DatabaseError:
        return False


def generate(
    *, seed: int, fraction: float = 1.0, progress: Progress | None = None, scale: str = SEED_SCALE
) -> dict[str, int]:
    """Load the six-month data set inside the caller's transaction; returns each table's row count.

    ``scale`` multiplies the customers and every volume (``SCALE_MULTIPLIERS``: ``ten-x`` is 1,000 customers);
    ``fraction`` scales the volumes (for tests and quick benchmarks); the customers are always created.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if scale not in SCALE_MULTIPLIERS:
        raise ValueError(f"scale must be one of {', '.join(SCALE_MULTIPLIERS)}, got {scale!r}")
    multiplier = SCALE_MULTIPLIERS[scale]
    anchor = seed_anchor()
    params = {
        "seed": seed,
        "setseed": (seed % 2_000_003) / 2_000_003,
        "anchor": anchor,
        "span": SPAN_DAYS,
        "scale": scale,
        "customers": CUSTOMERS * multiplier,
        **{name: max(int(volume * multiplier * fraction), 20) for name, volume in VOLUME.items()},
    }
    params["entries"] = params["cache_entries"]
    with transaction.atomic(), connection.cursor() as cursor:
        triggers_off = _disable_triggers()
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute("SET LOCAL work_mem = '64MB'")
        for index, (label, statements) in enumerate(STEPS):
            if progress is not None:
                progress(index, len(STEPS), label)
            for statement in statements:
                if callable(statement):
                    statement(cursor, params)
                else:
                    cursor.execute(statement, params)
        if progress is not None:
            progress(len(STEPS), len(STEPS), "done")
        if triggers_off:
            cursor.execute("SET LOCAL session_replication_role = origin")
        counts = {}
        for table in TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    return counts


def summary(counts: dict[str, int], seconds: float, scale: str = SEED_SCALE) -> str:
    parts = ", ".join(f"{counts[table]:,} {table}" for table in TABLES)
    return f"{scale} data in {seconds:.1f} s: {parts}"


def timed_generate(
    *, seed: int, fraction: float = 1.0, progress: Progress | None = None, scale: str = SEED_SCALE
) -> str:
    start = time.monotonic()
    counts = generate(seed=seed, fraction=fraction, progress=progress, scale=scale)
    return summary(counts, time.monotonic() - start, scale)
