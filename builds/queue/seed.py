"""The build queue's part of the six-month seed (``operations.seed`` runs every app's steps in one transaction, by
order): the pool of manifest templates (``seed_templates``: the intake's conversations and the builds share it),
the builds (one per manifest a conversation submitted, from the intake's ``seed_conv``, the rest from the API),
their results, metrics, artifacts and events, and the scheduler's counters and daily rollup, which the triggers
and the hourly maintenance would keep. The cache's steps (``builds/cache/seed.py``) sit between: which builds
registered an entry decides which later builds were cache hits."""

from honua.registry import seed_step, seed_uid

seed_step(
    "manifest templates",
    order=200,
    statements=[
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
)

seed_step(
    "builds",
    order=400,
    after=["customers", "conversations", "manifest templates"],
    statements=[
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
        SELECT r.n, {seed_uid("build", "r.n")} AS id, r.source, r.customer_id, c.license_id, c.tier, r.template,
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
    ],
)

seed_step(
    "builds queued",
    order=420,
    after=["builds", "cache entries drawn"],
    statements=[
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
    ],
)

seed_step(
    "build results, metrics and artifacts",
    order=500,
    after=["builds queued"],
    statements=[
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
)

seed_step(
    "build events",
    order=510,
    after=["builds queued"],
    statements=[
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
)

# The scheduler's counters the build_queue_account_* triggers keep (the claim and the rescue of the seeded
# running builds rely on them), recounted from the whole queue as builds/sql/0016_scheduler.sql does.
seed_step(
    "scheduler counters",
    order=700,
    after=["builds queued"],
    statements=[
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
)

# build_performance_summary's rollup of the closed days (what the hourly maintenance would fold). Guarded, so
# that a database migrated only to a point before builds.0032 (the partition conversion's test seeds one) is
# seeded too: PL/pgSQL resolves the call only when it runs.
seed_step(
    "daily build rollup",
    order=710,
    after=["builds queued"],
    statements=[
        """DO $$ BEGIN
            IF to_regproc('public.fold_build_daily_rollup') IS NOT NULL THEN
                PERFORM fold_build_daily_rollup(400, 0);
            END IF;
        END $$"""
    ],
)
