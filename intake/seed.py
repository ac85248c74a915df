"""The intake's part of the six-month seed (``operations.seed`` runs every app's steps in one transaction, by
order): conversations (``seed_conv``, which the builds' step reads to build what they submitted), their messages,
intents and requirement extractions, and, once the builds exist, the manifests that point at them."""

from honua.registry import seed_step, seed_uid

seed_step(
    "conversations",
    order=300,
    after=["customers", "manifest templates"],
    statements=[
        """CREATE TEMP TABLE seed_conv_draw ON COMMIT DROP AS
        SELECT g, floor(%(customers)s * power(random(), 2.2))::int AS cord,
               least(%(anchor)s::timestamptz - %(span)s * (1 - sqrt(random())) * interval '1 day',
                     %(anchor)s::timestamptz - interval '20 minutes') AS started_at,
               random() AS u_status, random() AS u_model, random() AS u_manifests, random() AS u_score,
               2 + floor(random() * 17)::int AS n_messages,
               floor(%(templates)s * power(random(), 2))::int AS template
        FROM generate_series(1, %(conversations)s) g""",
        f"""CREATE TEMP TABLE seed_conv ON COMMIT DROP AS
        SELECT d.g, {seed_uid("conversation", "d.g")} AS id, c.id AS customer_id, d.started_at, d.n_messages,
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
)

seed_step(
    "conversation messages",
    order=310,
    after=["conversations"],
    statements=[
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
)

seed_step(
    "intents and requirement extractions",
    order=320,
    after=["conversation messages"],
    statements=[
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
)

seed_step(
    "build manifests",
    order=430,
    after=["conversations", "builds queued"],
    statements=[
        f"""INSERT INTO build_manifests (id, conversation_id, customer_id, version, status, manifest, manifest_hash,
                                        build_id, approved_at, approved_by, submitted_at, created_at, updated_at)
        SELECT {seed_uid("manifest", "v.g * 10 + k")}, v.id, v.customer_id, k,
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
)

# The dashboard's conversation_daily and the intake views' rollups of the closed days (what the hourly maintenance
# would fold; the load runs with the mark triggers off). Guarded like the daily build rollup's step, for a database
# migrated only to a point before intake.0011.
seed_step(
    "conversation daily rollups",
    order=720,
    after=["conversation messages", "intents and requirement extractions", "build manifests"],
    statements=[
        """DO $$ BEGIN
            IF to_regproc('public.fold_conversation_daily') IS NOT NULL THEN
                PERFORM fold_conversation_daily(400, 0);
            END IF;
        END $$"""
    ],
)
