-- Credential references in a build's manifest must be the customer's own (docs/sql-api.md "Manifest limits"):
-- every non-null "registry_credential" or "registry_credential_id", at any depth, names a registry credential
-- (its id, a UUID string) of the build's customer or of that customer's parent (customers.parent, an ASP's
-- sub-customers), neither revoked nor deleted. Checked by the BEFORE INSERT trigger manifest_credentials_owned on
-- build_queue (builds/models.py), so every path that queues a build is covered; the trigger's WHEN clause is
-- NOT manifest_is_shareable(NEW.manifest), so a manifest without a reference costs one jsonpath walk and no call.
-- builds/cache.py check_manifest_credentials raises the same messages in Python.
--   HN104: the reference is not a credential id that exists;
--   HN205: the credential belongs to another customer, or is revoked or deleted.
CREATE OR REPLACE FUNCTION manifest_check_credentials(p_customer_id uuid, p_manifest jsonb)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_ref record;
BEGIN
    FOR v_ref IN
        SELECT r.ref, c.id, c.customer_id, c.status, c.deleted_at,
               c.customer_id IN (SELECT p_customer_id UNION ALL
                                 SELECT cu.parent_id FROM customers cu WHERE cu.id = p_customer_id) AS owned
          FROM (SELECT DISTINCT k.ref
                  FROM jsonb_path_query(p_manifest,
                           'strict $.** ? (@.registry_credential != null || @.registry_credential_id != null)') AS o,
                       LATERAL (VALUES (o -> 'registry_credential'), (o -> 'registry_credential_id')) AS k(ref)
                 WHERE jsonb_typeof(k.ref) <> 'null') r
          LEFT JOIN registry_credentials c
            ON c.id = CASE WHEN jsonb_typeof(r.ref) = 'string'
                            AND (r.ref #>> '{}') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                           THEN (r.ref #>> '{}')::uuid END
         ORDER BY r.ref #>> '{}' COLLATE "C"
    LOOP
        IF v_ref.id IS NULL THEN
            RAISE EXCEPTION 'the manifest references registry credential %, which does not exist',
                CASE jsonb_typeof(v_ref.ref) WHEN 'string' THEN left(v_ref.ref #>> '{}', 100)
                     ELSE 'given as a ' || jsonb_typeof(v_ref.ref) END
                USING ERRCODE = 'HN104';
        ELSIF NOT coalesce(v_ref.owned, false) THEN
            RAISE EXCEPTION 'the manifest references registry credential %, which belongs to another customer',
                v_ref.id USING ERRCODE = 'HN205';
        ELSIF v_ref.status = 'revoked' OR v_ref.deleted_at IS NOT NULL THEN
            RAISE EXCEPTION 'the manifest references registry credential %, which is revoked or deleted', v_ref.id
                USING ERRCODE = 'HN205';
        END IF;
    END LOOP;
END;
$$;
