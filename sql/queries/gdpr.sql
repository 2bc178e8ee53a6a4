-- Data-subject rights (migration 0007): export everything held about a person; erase it.

-- name: gdpr_resolve
-- The customer an id names (a merged id names its survivor), locked for erasure.
SELECT c.id, c.erased_at
  FROM customers c
 WHERE c.id = coalesce((SELECT a.customer_id FROM customer_aliases a WHERE a.merged_id = $1), $1)
   FOR UPDATE;

-- name: gdpr_find
SELECT c.id
  FROM customers c
 WHERE c.id = coalesce((SELECT a.customer_id FROM customer_aliases a WHERE a.merged_id = $1), $1);

-- name: gdpr_profile
SELECT id, first_name, last_name, email, phone, country, birth_date, created_at, updated_at,
       erased_at, field_sources
  FROM customers WHERE id = $1;

-- name: gdpr_merged_ids
SELECT merged_id FROM customer_aliases WHERE customer_id = $1 ORDER BY merged_id;

-- name: gdpr_identities
SELECT kind, source, value, created_at FROM identities WHERE customer_id = $1 ORDER BY id;

-- name: gdpr_purchases
SELECT p.external_id, p.source, p.order_ref, pr.sku, pr.name AS product, p.quantity,
       p.unit_price, p.amount, p.currency, p.channel, p.purchased_at, p.recorded_at
  FROM purchases p LEFT JOIN products pr ON pr.id = p.product_id
 WHERE p.customer_id = $1
 ORDER BY p.purchased_at, p.id;

-- name: gdpr_interactions
SELECT external_id, source, occurred_at, channel, kind, properties, recorded_at
  FROM interactions WHERE customer_id = $1 ORDER BY occurred_at, id;

-- name: gdpr_consents
SELECT purpose, granted, source, recorded_at
  FROM consents WHERE customer_id = $1 ORDER BY recorded_at, id;

-- name: gdpr_scores
SELECT as_of, churn_probability, churn_model_version, purchase_30d_probability,
       expected_purchases, expected_days_to_next, next_purchase_model_version,
       recommended_product_ids, upsell_model_version, scored_at
  FROM customer_scores WHERE customer_id = $1;

-- name: gdpr_rfm
SELECT as_of, recency_days, frequency, monetary, r, f, m, segment
  FROM customer_rfm WHERE customer_id = $1;

-- name: gdpr_merges
SELECT id, survivor_id, merged_ids, merged_by, merged_at, undone_at, undone_by, evidence, plan
  FROM merges
 WHERE survivor_id = $1 OR merged_ids && $2::bigint[]
 ORDER BY id;

-- name: gdpr_audit
SELECT at, actor, role, kind, operation, request_id, details
  FROM audit_log WHERE customer_ids @> ARRAY[$1::bigint] ORDER BY at, id;

-- name: gdpr_erasure
SELECT erased_at, erased_by, request_id, removed FROM erasures WHERE customer_id = $1;

-- name: gdpr_lock_identities
-- The identities of the person an id names, locked as identity resolution locks them
-- (migration 0009) and before their row is (a writer holding them may be waiting for it): a
-- write bringing one either commits before the erasure (and is erased with the rest) or runs
-- after it (and is refused as an erased person's).
WITH person AS (
    SELECT coalesce((SELECT a.customer_id FROM customer_aliases a WHERE a.merged_id = $1), $1)
               AS id
)
SELECT lock_identity_keys(coalesce(array_agg(kind), '{}'), coalesce(array_agg(source), '{}'),
                          coalesce(array_agg(value), '{}'))
  FROM (SELECT kind, source, value FROM identities WHERE customer_id = (SELECT id FROM person)
        UNION
        SELECT 'email', '', email FROM customers WHERE id = (SELECT id FROM person)
                                                   AND email IS NOT NULL
        UNION
        SELECT 'phone', '', phone FROM customers WHERE id = (SELECT id FROM person)
                                                   AND phone IS NOT NULL) k;

-- name: gdpr_suppress
-- Remember the person's identities as salted hashes (identities and profile alike).
INSERT INTO suppressed_identities (identity_hash)
SELECT identity_hash(kind, source, value) FROM identities WHERE customer_id = $1
UNION
SELECT identity_hash('email', '', email) FROM customers WHERE id = $1 AND email IS NOT NULL
UNION
SELECT identity_hash('phone', '', phone) FROM customers WHERE id = $1 AND phone IS NOT NULL
ON CONFLICT (identity_hash) DO NOTHING;

-- name: gdpr_erase_rows
-- Everything personal beyond the profile: removed, or (merges) emptied of the values they
-- kept. Counts per table for the erasure record.
WITH identities_gone AS (DELETE FROM identities WHERE customer_id = $1 RETURNING 1),
     interactions_gone AS (DELETE FROM interactions WHERE customer_id = $1 RETURNING 1),
     consents_gone AS (DELETE FROM consents WHERE customer_id = $1 RETURNING 1),
     scores_gone AS (DELETE FROM customer_scores WHERE customer_id = $1 RETURNING 1),
     rfm_gone AS (DELETE FROM customer_rfm WHERE customer_id = $1 RETURNING 1),
     merges_scrubbed AS (
         UPDATE merges
            SET evidence = '{"erased": true}', plan = '{"erased": true}',
                before_images = '{"erased": true}'
          WHERE survivor_id = $1 OR merged_ids && $2::bigint[]
         RETURNING 1)
SELECT (SELECT count(*) FROM identities_gone) AS identities,
       (SELECT count(*) FROM interactions_gone) AS interactions,
       (SELECT count(*) FROM consents_gone) AS consents,
       (SELECT count(*) FROM scores_gone) AS customer_scores,
       (SELECT count(*) FROM rfm_gone) AS customer_rfm,
       (SELECT count(*) FROM merges_scrubbed) AS merges;

-- name: gdpr_erase_profile
-- The tombstone: no personal field left; country stays (tax accounting of the purchases).
UPDATE customers
   SET first_name = NULL, last_name = NULL, email = NULL, phone = NULL, birth_date = NULL,
       field_sources = '{}', erased_at = now(), updated_at = greatest(now(), created_at)
 WHERE id = $1;

-- name: gdpr_record_erasure
INSERT INTO erasures (customer_id, erased_by, request_id, removed)
VALUES ($1, $2, $3, $4)
RETURNING erased_at;

-- name: gdpr_suppressed_any
SELECT EXISTS (SELECT 1 FROM suppressed_identities);

-- name: gdpr_suppressed_keys
-- Which of the given identities (kind, value; source $1) belong to an erased person.
SELECT k.kind, k.value, s.erased_at
  FROM unnest($2::text[], $3::text[]) AS k(kind, value)
  JOIN suppressed_identities s ON s.identity_hash = identity_hash(k.kind, $1, k.value);

-- name: gdpr_unsuppress
DELETE FROM suppressed_identities
 WHERE identity_hash IN (SELECT identity_hash(k.kind, $1, k.value)
                           FROM unnest($2::text[], $3::text[]) AS k(kind, value));
