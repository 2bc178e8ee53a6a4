-- Materialised scores (migration 0004): written by `cdm score --all`, read by the API.

-- name: stored_scores_by_customer_ids
SELECT customer_id, as_of, churn_probability, churn_model_version, purchase_30d_probability,
       expected_purchases, expected_days_to_next, next_purchase_model_version,
       recommended_product_ids, upsell_model_version, scored_at
  FROM customer_scores
 WHERE customer_id = ANY ($1::bigint[]);

-- name: stored_scores_summary
-- How fresh the stored scores are: one run's as-of time, when it ran, with which models.
SELECT count(*) AS customers, min(as_of) AS as_of, max(scored_at) AS scored_at,
       max(churn_model_version) AS churn_model_version,
       max(next_purchase_model_version) AS next_purchase_model_version,
       max(upsell_model_version) AS upsell_model_version
  FROM customer_scores;

-- name: create_score_staging
CREATE TEMP TABLE score_staging (LIKE customer_scores INCLUDING DEFAULTS) ON COMMIT DROP;

-- name: clear_stored_scores
-- With insert_staged_scores, in the staging transaction: readers see the old run or the new
-- one, never a mix (DELETE, not TRUNCATE, keeps that true for readers already running).
DELETE FROM customer_scores;

-- name: lock_stored_scores
-- Taken before clear/insert: a refusal or an erasure (which delete stored scores) either
-- committed first and is seen by insert_staged_scores, or waits for this transaction and
-- then deletes the new row. Readers (ACCESS SHARE) do not wait.
LOCK TABLE customer_scores IN SHARE ROW EXCLUSIVE MODE;

-- name: insert_staged_scores
-- Customers deleted, merged away, erased or objecting to profiling since the run read its
-- snapshot are left out: stored scores exist only for modelled customers.
INSERT INTO customer_scores
SELECT s.* FROM score_staging s JOIN modelled_customers c ON c.id = s.customer_id;

-- name: staged_scores_left_out
-- After insert_staged_scores stored fewer rows than were staged: which ones it left out.
SELECT s.customer_id FROM score_staging s
 WHERE NOT EXISTS (SELECT 1 FROM customer_scores c WHERE c.customer_id = s.customer_id);

-- name: begin_snapshot
-- `cdm score --all` reads features and purchase histories over two connections at once;
-- both transactions see one snapshot (export_snapshot / import_snapshot).
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;

-- name: export_snapshot
SELECT pg_export_snapshot();

-- name: import_snapshot
-- $1 is spliced in as a literal by the caller (SET TRANSACTION takes no bind parameters);
-- it is a snapshot id the server itself returned, checked against its format.
SET TRANSACTION SNAPSHOT $1;

-- name: customers_scored_as_of
-- The customers features.sql scores as of $1: every modelled customer created before it, or
-- those of the ids $2 (unknown, erased and objecting ones are absent). Read through COPY.
SELECT id
  FROM modelled_customers
 WHERE created_at < $1::timestamptz
   AND ($2::bigint[] IS NULL OR id = ANY ($2::bigint[]))
 ORDER BY id;

-- name: score_file_external_ids
-- `cdm score --all --output`: one external id per customer of $1 (of source $2 when given),
-- the earliest recorded one (then the lowest identity id), so that a customer with several
-- (several sources, or a merge) is always written with the same one. Those without any are
-- absent. $1 may hold every customer: joined through unnest, so they can be hash-joined.
SELECT DISTINCT ON (i.customer_id) i.customer_id, i.value, i.source
  FROM unnest($1::bigint[]) AS asked (id)
  JOIN identities i ON i.customer_id = asked.id
 WHERE i.kind = 'external_id' AND ($2::text IS NULL OR i.source = $2::text)
 ORDER BY i.customer_id, i.created_at, i.id;

-- name: score_file_skus
-- The SKUs of the products recommended in a score file ($1: the distinct ids).
SELECT id, sku FROM products WHERE id = ANY ($1::bigint[]);
