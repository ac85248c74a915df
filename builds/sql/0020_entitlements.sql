-- Entitlements on the build path (issue 12; docs/sql-api.md "Tiers and entitlements"): the outputs a build is
-- entitled to, fixed at enqueue (build_queue.entitled_outputs, set by the BEFORE INSERT trigger
-- build_queue_entitled_outputs declared on builds.models.Build); sbom/signature artifacts refused for builds not
-- entitled to them (trigger build_artifacts_require_entitlement on BuildArtifact); and family sharing of private
-- cache entries in record_cache_access.

-- license_entitled_outputs: the outputs a license's features entitle a build to, in a fixed order: 'sbom' (an
-- SBOM artifact) and 'signing' (a signature artifact). '{}' for an unknown license.
CREATE OR REPLACE FUNCTION license_entitled_outputs(p_license_id uuid)
RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT array_remove(ARRAY[
                    CASE WHEN license_features_include(l.features, 'sbom') THEN 'sbom' END,
                    CASE WHEN license_features_include(l.features, 'signing') THEN 'signing' END
                ], NULL)
           FROM licenses l WHERE l.id = p_license_id),
        '{}'::text[]);
$$;

-- build_queue_set_entitled_outputs: the BEFORE INSERT trigger function of build_queue_entitled_outputs (declared on
-- builds.models.Build, which executes this function directly rather than through django-pgtrigger's wrapper: the
-- wrapper's ignore check opens a subtransaction on every row, and this runs on every enqueue). The expression is
-- license_entitled_outputs' inlined (a call to that SQL function costs a separate executor per row, ~15 us more);
-- a test checks that the two agree for every tier.
CREATE OR REPLACE FUNCTION build_queue_set_entitled_outputs()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.entitled_outputs := coalesce(
        (SELECT array_remove(ARRAY[
                    CASE WHEN l.features -> 'sbom' = 'true'::jsonb THEN 'sbom' END,
                    CASE WHEN l.features -> 'signing' = 'true'::jsonb THEN 'signing' END
                ], NULL)
           FROM licenses l WHERE l.id = NEW.license_id),
        '{}'::text[]);
    RETURN NEW;
END;
$$;

-- build_entitled_to_artifact: whether a build may carry an artifact of p_kind: 'sbom' needs 'sbom' in its
-- entitled_outputs, 'signature' needs 'signing'; every other kind is always allowed. False for an unknown build
-- or a NULL argument. For agents' attach functions (attach_build_artifact) and the artifacts trigger.
CREATE OR REPLACE FUNCTION build_entitled_to_artifact(p_build_id uuid, p_kind text)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT CASE p_kind
                    WHEN 'sbom' THEN 'sbom' = ANY (b.entitled_outputs)
                    WHEN 'signature' THEN 'signing' = ANY (b.entitled_outputs)
                    ELSE p_kind IS NOT NULL
                END
           FROM build_queue b WHERE b.id = p_build_id),
        false);
$$;

-- build_require_artifact_entitlement: raise HN203 (missing entitlement) when build_entitled_to_artifact is false
-- for an sbom or signature artifact. The message is builds.services.ARTIFACT_NOT_ENTITLED.
CREATE OR REPLACE FUNCTION build_require_artifact_entitlement(p_build_id uuid, p_kind text)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_kind IN ('sbom', 'signature') AND NOT build_entitled_to_artifact(p_build_id, p_kind) THEN
        RAISE EXCEPTION 'build % is not entitled to % artifacts: its license had no % entitlement when it was enqueued',
            p_build_id, p_kind, CASE p_kind WHEN 'sbom' THEN 'sbom' ELSE 'signing' END
            USING ERRCODE = 'HN203';
    END IF;
END;
$$;

-- Builds that are still queued or running get their entitlements from their license now; finished builds keep
-- '{}' (the column's default: what they were entitled to when enqueued is not recorded, and they take no more
-- artifacts from workers).
UPDATE build_queue b
   SET entitled_outputs = license_entitled_outputs(b.license_id)
 WHERE b.status IN ('queued', 'running');

-- record_cache_access: as in 0003_cache.sql (same signature, result and logging), with families (a parent whose
-- license has sub_customers and its sub-customers, licensing/sql/0009_entitlements.sql): after the customer's own
-- live entry, the newest live entry of another member of its family (private or shared); then, when the tier of
-- its entitled license reads shared entries, the newest live shared entry. A family shares while its parent's
-- usable license has sub_customers; its private entries are never served outside it. A sub-customer without a
-- license of its own reads shared entries by its parent's tier. A customer in no family pays nothing more: a hit
-- costs what it did, and a miss looks for sub-customers only when the customer's own license has sub_customers.
CREATE OR REPLACE FUNCTION record_cache_access(p_manifest_hash text, p_customer_id uuid)
RETURNS SETOF build_cache_registry
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_started timestamptz := clock_timestamp();
    v_parent uuid;
    v_root uuid;
    v_has_sub_customers boolean;
    v_tier text;
    v_parent_tier text;
    v_entry build_cache_registry;
BEGIN
    PERFORM cache_validate_hash(p_manifest_hash);
    SELECT c.parent_id INTO v_parent FROM customers c WHERE c.id = p_customer_id AND c.deleted_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % does not exist', coalesce(p_customer_id::text, 'NULL') USING ERRCODE = 'P0002';
    END IF;

    SELECT e.* INTO v_entry
      FROM build_cache_registry e
     WHERE e.manifest_hash = p_manifest_hash AND e.owner_id = p_customer_id
       AND e.deleted_at IS NULL AND (e.expires_at IS NULL OR e.expires_at > now())
     ORDER BY e.visibility = 'private' DESC, e.created_at DESC
     LIMIT 1;

    IF NOT FOUND THEN
        SELECT l.tier, license_features_include(l.features, 'sub_customers') INTO v_tier, v_has_sub_customers
          FROM licenses l
         WHERE l.customer_id = p_customer_id AND l.status = 'active' AND l.deleted_at IS NULL
           AND (l.expires_at IS NULL OR l.expires_at > now())
         LIMIT 1;
        -- The family: only while its parent's usable license has sub_customers. A customer whose license lacks
        -- the feature (every customer of the other tiers) cannot be a parent, so it pays nothing more here.
        IF v_parent IS NOT NULL THEN
            SELECT l.tier INTO v_parent_tier
              FROM licenses l
             WHERE l.customer_id = v_parent AND l.status = 'active' AND l.deleted_at IS NULL
               AND (l.expires_at IS NULL OR l.expires_at > now())
               AND license_features_include(l.features, 'sub_customers')
             LIMIT 1;
            IF FOUND THEN
                v_root := v_parent;
                -- A sub-customer without a license of its own reads shared entries by its parent's tier.
                v_tier := coalesce(v_tier, v_parent_tier);
            END IF;
        ELSIF v_has_sub_customers THEN
            IF EXISTS (SELECT 1 FROM customers k WHERE k.parent_id = p_customer_id AND k.deleted_at IS NULL) THEN
                v_root := p_customer_id;
            END IF;
        END IF;
        IF v_root IS NOT NULL THEN
            SELECT e.* INTO v_entry
              FROM build_cache_registry e
             WHERE e.manifest_hash = p_manifest_hash
               AND e.owner_id IN (SELECT m.id FROM customers m
                                   WHERE (m.id = v_root OR m.parent_id = v_root) AND m.deleted_at IS NULL)
               AND e.owner_id <> p_customer_id
               AND e.deleted_at IS NULL AND (e.expires_at IS NULL OR e.expires_at > now())
             ORDER BY e.created_at DESC, e.id
             LIMIT 1;
        END IF;
        IF v_entry.id IS NULL AND cache_tier_reads_shared(v_tier) THEN
            SELECT e.* INTO v_entry
              FROM build_cache_registry e
             WHERE e.manifest_hash = p_manifest_hash AND e.visibility = 'shared'
               AND e.deleted_at IS NULL AND (e.expires_at IS NULL OR e.expires_at > now())
             ORDER BY e.created_at DESC, e.id
             LIMIT 1;
        END IF;
    END IF;

    INSERT INTO build_access_log (manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at)
    VALUES (p_manifest_hash, p_customer_id, v_entry.id, v_entry.id IS NOT NULL,
            (extract(epoch FROM clock_timestamp() - v_started) * 1000000)::integer, now());

    IF v_entry.id IS NOT NULL THEN
        RETURN NEXT v_entry;
    END IF;
    RETURN;
END;
$$;
