-- Saved segments (migration 0008). Membership conditions are compiled in sql/segments.py and
-- appended to the fixed select lists below.

-- name: segment_insert
INSERT INTO segments (name, description, definition, created_by)
VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO NOTHING
RETURNING id, name, description, definition, created_by, created_at, updated_at;

-- name: segment_by_id
SELECT id, name, description, definition, created_by, created_at, updated_at
  FROM segments WHERE id = $1;

-- name: segment_by_name
SELECT id, name, description, definition, created_by, created_at, updated_at
  FROM segments WHERE name = $1;

-- name: segments_all
SELECT id, name, description, definition, created_by, created_at, updated_at
  FROM segments ORDER BY name;

-- name: segment_delete
DELETE FROM segments WHERE id = $1 RETURNING id;

-- name: segment_size_insert
INSERT INTO segment_sizes (segment_id, size) VALUES ($1, $2)
ON CONFLICT (segment_id, at) DO UPDATE SET size = EXCLUDED.size;

-- name: segment_sizes
SELECT at, size FROM (
    SELECT at, size FROM segment_sizes WHERE segment_id = $1 ORDER BY at DESC LIMIT $2
) newest ORDER BY at;

-- name: segment_stats_select
SELECT count(*) AS customers,
       coalesce(sum(s.total_spend), 0) AS total_spend,
       round(avg(coalesce(s.total_spend, 0)), 2) AS average_spend,
       coalesce(sum(s.purchase_count), 0) AS purchases,
       avg(cs.churn_probability) AS average_churn_probability,
       count(cs.churn_probability) AS scored

-- name: segment_export_select
SELECT c.id, c.first_name, c.last_name, c.email, c.phone, c.country,
       coalesce(s.total_spend, 0) AS total_spend, s.last_purchase_at,
       rfm.segment AS rfm_segment, cs.churn_probability

-- name: segment_attributes_select
-- An analytics export: ids and attributes, never a contact field.
SELECT c.id, c.country, coalesce(s.total_spend, 0) AS total_spend, s.last_purchase_at,
       rfm.segment AS rfm_segment, cs.churn_probability
