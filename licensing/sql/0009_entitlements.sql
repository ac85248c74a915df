-- Entitlements enforced by the database (issue 12; docs/sql-api.md "Tiers and entitlements"): who may be a parent
-- customer (the sub_customers feature), and the registry credential limit (max_registries). The triggers that
-- call these functions are declared on the models (licensing/models.py) and created by the same migration.
-- Messages are the ones licensing/services.py raises, word for word.

-- license_features_include: whether a licenses.features object turns p_feature on (features hold booleans;
-- anything else is off).
CREATE OR REPLACE FUNCTION license_features_include(p_features jsonb, p_feature text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(p_features -> p_feature = 'true'::jsonb, false);
$$;

-- customer_usable_license_id: the customer's own usable license (active, not deleted, not past its expiry), or
-- NULL. At most one exists (licenses_one_active_per_customer).
CREATE OR REPLACE FUNCTION customer_usable_license_id(p_customer_id uuid)
RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT l.id
      FROM licenses l
     WHERE l.customer_id = p_customer_id AND l.status = 'active' AND l.deleted_at IS NULL
       AND (l.expires_at IS NULL OR l.expires_at > now())
     LIMIT 1;
$$;

-- customer_entitled_license_id: the license whose entitlements apply to a customer: its own usable license, else
-- (a sub-customer without one) its parent's usable license when that license has sub_customers; else NULL.
CREATE OR REPLACE FUNCTION customer_entitled_license_id(p_customer_id uuid)
RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        customer_usable_license_id(p_customer_id),
        (SELECT l.id
           FROM customers c
           JOIN licenses l ON l.customer_id = c.parent_id
          WHERE c.id = p_customer_id AND l.status = 'active' AND l.deleted_at IS NULL
            AND (l.expires_at IS NULL OR l.expires_at > now())
            AND license_features_include(l.features, 'sub_customers')
          LIMIT 1)
    );
$$;

-- customer_require_parent: raise HN203 unless p_parent_id may be the parent of p_customer_id: the parent is live,
-- is not itself a sub-customer (one level only), its usable license has sub_customers, and the customer has no
-- live sub-customers of its own. The parent's license row is locked FOR SHARE, so a concurrent change that drops
-- the feature (an UPDATE, which needs FOR NO KEY UPDATE) waits for this transaction and then sees the new child
-- (licenses trigger licenses_keep_sub_customers), or this check waits for it and sees the feature gone.
CREATE OR REPLACE FUNCTION customer_require_parent(p_customer_id uuid, p_customer_name text, p_parent_id uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_parent customers;
    v_license_id uuid;
BEGIN
    IF p_parent_id IS NULL THEN
        RETURN;
    END IF;
    SELECT c.* INTO v_parent FROM customers c WHERE c.id = p_parent_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % does not exist', p_parent_id USING ERRCODE = 'HN101';
    END IF;
    IF v_parent.deleted_at IS NOT NULL THEN
        RAISE EXCEPTION 'Customer "%" is deleted and cannot have sub-customers.', v_parent.name
            USING ERRCODE = 'HN203';
    END IF;
    IF v_parent.parent_id IS NOT NULL THEN
        RAISE EXCEPTION 'Customer "%" is itself a sub-customer; sub-customers cannot have sub-customers of their own.',
            v_parent.name USING ERRCODE = 'HN203';
    END IF;
    IF EXISTS (SELECT 1 FROM customers c WHERE c.parent_id = p_customer_id AND c.deleted_at IS NULL) THEN
        RAISE EXCEPTION 'Customer "%" has sub-customers of its own, so it cannot become a sub-customer.',
            p_customer_name USING ERRCODE = 'HN203';
    END IF;
    SELECT l.id INTO v_license_id
      FROM licenses l
     WHERE l.customer_id = p_parent_id AND l.status = 'active' AND l.deleted_at IS NULL
       AND (l.expires_at IS NULL OR l.expires_at > now())
       AND license_features_include(l.features, 'sub_customers')
     LIMIT 1
       FOR SHARE;
    IF v_license_id IS NULL THEN
        RAISE EXCEPTION 'Customer "%" cannot have sub-customers: it has no usable license with the sub_customers entitlement.',
            v_parent.name USING ERRCODE = 'HN203';
    END IF;
END;
$$;

-- license_require_sub_customers_kept: raise HN203 when an active license of a customer with live sub-customers
-- lacks sub_customers (a downgrade, a feature override, or a new license without it). Suspending, revoking,
-- deleting or expiring the license is allowed: the family is then simply without a usable license.
CREATE OR REPLACE FUNCTION license_require_sub_customers_kept(p_customer_id uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_name text;
BEGIN
    IF EXISTS (SELECT 1 FROM customers c WHERE c.parent_id = p_customer_id AND c.deleted_at IS NULL) THEN
        SELECT c.name INTO v_name FROM customers c WHERE c.id = p_customer_id;
        RAISE EXCEPTION 'Customer "%" has sub-customers, so its usable license must keep the sub_customers entitlement; move them first.',
            v_name USING ERRCODE = 'HN203';
    END IF;
END;
$$;

-- registry_credential_require_room: raise HN204 when the customer already has as many active credentials as the
-- max_registries of its entitled license (customer_entitled_license_id; NULL: unlimited). The license row is
-- locked FOR NO KEY UPDATE first (as licensing.services.credential_add does, and as a tier change does), so two
-- concurrent inserts for one customer are serialised and the second one counts the first. A customer without a
-- usable license has no limit here (the service refuses it with "This customer has no usable license.").
CREATE OR REPLACE FUNCTION registry_credential_require_room(p_customer_id uuid, p_credential_id uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_license_id uuid := customer_entitled_license_id(p_customer_id);
    v_limit integer;
    v_count integer;
BEGIN
    IF v_license_id IS NULL THEN
        RETURN;
    END IF;
    SELECT l.max_registries INTO v_limit FROM licenses l WHERE l.id = v_license_id FOR NO KEY UPDATE;
    IF v_limit IS NULL THEN
        RETURN;
    END IF;
    -- A fresh snapshot, taken after the lock: it sees every credential committed by the lock's previous holder.
    SELECT count(*) INTO v_count
      FROM registry_credentials r
     WHERE r.customer_id = p_customer_id AND r.status = 'active' AND r.deleted_at IS NULL
       AND r.id IS DISTINCT FROM p_credential_id;
    IF v_count >= v_limit THEN
        RAISE EXCEPTION 'The license allows % registry credential(s) and this customer already has %.',
            v_limit, v_count USING ERRCODE = 'HN204';
    END IF;
END;
$$;
