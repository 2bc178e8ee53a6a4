-- RFM (migration 0008): scores of every modelled customer (not erased, no objection to
-- profiling) with a purchase before the as-of time,
-- computed set-based and stored as one snapshot. See domain.rfm for the scoring rule.

-- name: rfm_clear
DELETE FROM customer_rfm;

-- name: rfm_compute
-- $1 as-of; $2, $3, $4: the (r, f) -> segment map from domain.rfm.segment_map().
WITH base AS (
    SELECT p.customer_id,
           floor(extract(epoch FROM $1::timestamptz - max(p.purchased_at)) / 86400)::integer
               AS recency_days,
           count(DISTINCT coalesce(p.order_ref, p.external_id))::integer AS frequency,
           sum(p.amount) AS monetary
      FROM purchases p
      -- RFM is profiling: only who may be profiled (migration 0011), never the erased
      JOIN modelled_customers m ON m.id = p.customer_id
     WHERE p.purchased_at < $1
     GROUP BY p.customer_id
), scored AS (
    SELECT b.*,
           least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY recency_days DESC)))::smallint AS r,
           least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY frequency)))::smallint AS f,
           least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY monetary)))::smallint AS m
      FROM base b
)
INSERT INTO customer_rfm (customer_id, as_of, recency_days, frequency, monetary, r, f, m, segment)
SELECT s.customer_id, $1, s.recency_days, s.frequency, s.monetary, s.r, s.f, s.m, map.segment
  FROM scored s
  JOIN unnest($2::smallint[], $3::smallint[], $4::text[]) AS map(r, f, segment)
    ON map.r = s.r AND map.f = s.f;

-- name: rfm_by_customer_ids
SELECT customer_id, as_of, recency_days, frequency, monetary, r, f, m, segment
  FROM customer_rfm
 WHERE customer_id = ANY ($1::bigint[]);

-- name: rfm_summary
SELECT segment, count(*) AS customers, sum(monetary) AS monetary,
       avg(recency_days)::float8 AS average_recency_days,
       avg(frequency)::float8 AS average_frequency, max(as_of) AS as_of
  FROM customer_rfm
 GROUP BY segment;

-- name: rfm_count
SELECT count(*) FROM customer_rfm;
