"""The licensing part of the six-month seed (``seed_demo --scale six-months``; ``operations.seed`` runs every app's
steps in one transaction): the customers (the temporary table ``seed_customers`` every later step joins), their
licenses and registry credentials, then real ciphertexts for their secrets. Order 1xx: everything else points at
customers and licenses."""

from honua.registry import seed_step, seed_uid

seed_step(
    "customers",
    order=100,
    statements=[
        "SELECT setseed(%(setseed)s)",
        f"""CREATE TEMP TABLE seed_customers ON COMMIT DROP AS
        SELECT g - 1 AS ord, {seed_uid("customer", "g")} AS id, {seed_uid("license", "g")} AS license_id,
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
)

seed_step(
    "licenses and registry credentials",
    order=110,
    after=["customers"],
    statements=[
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
        SELECT {seed_uid("old-license", "ord")}, id, CASE WHEN tier = 'asp' THEN 'enterprise' ELSE 'core' END,
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
        SELECT {seed_uid("credential", "c.ord * 10 + k")}, c.id, t.type, t.url, 'ci-' || (c.ord + 1) || '-' || k,
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
)


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


seed_step(
    "secrets",
    order=120,
    after=["licenses and registry credentials"],
    statements=[lambda cursor, params: _encrypt_secrets(cursor)],
)
