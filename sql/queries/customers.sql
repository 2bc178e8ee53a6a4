-- name: customers_by_ids
-- By id; an id merged into another customer resolves to the survivor (requested_id says
-- which id was asked for). An erased person's tombstone is absent, exactly like an id that
-- names no one: a reader cannot tell that someone was there (no existence oracle).
SELECT c.id, c.first_name, c.last_name, c.email, c.phone, c.country, c.birth_date,
       c.created_at, c.updated_at, c.field_sources, k.id AS requested_id
  FROM unnest($1::bigint[]) AS k(id)
  LEFT JOIN customer_aliases a ON a.merged_id = k.id
  JOIN customers c ON c.id = coalesce(a.customer_id, k.id)
 WHERE c.erased_at IS NULL;

-- name: customer_ids_by_external_id
-- External ids of any source (when the caller does not name one).
SELECT DISTINCT customer_id
  FROM identities
 WHERE value = $1 AND kind = 'external_id'
 LIMIT 2;

-- name: customer_ids_by_external_ids
-- Many external ids at once (of source $2, or of any when NULL), in the order asked; an id
-- that two sources give to different customers answers the lower customer id.
SELECT DISTINCT ON (x.ord) x.ord, i.customer_id
  FROM unnest($1::text[]) WITH ORDINALITY AS x(value, ord)
  JOIN identities i ON i.kind = 'external_id' AND i.value = x.value
                   AND ($2::text IS NULL OR i.source = $2::text)
 ORDER BY x.ord, i.customer_id;

-- name: customer_ids_by_source_external_id
SELECT customer_id
  FROM identities
 WHERE kind = 'external_id' AND source = $1 AND value = $2;

-- name: identities_by_customer_ids
SELECT id, customer_id, kind, source, value, created_at
  FROM identities
 WHERE customer_id = ANY ($1::bigint[])
 ORDER BY customer_id, kind, source, id;

-- name: current_consents_by_customer_ids
SELECT DISTINCT ON (customer_id, purpose)
       customer_id, purpose, granted, source, recorded_at
  FROM consents
 WHERE customer_id = ANY ($1::bigint[])
 ORDER BY customer_id, purpose, recorded_at DESC, id DESC;

-- name: purchase_summaries_by_customer_ids
-- Stored running totals, plus the distinct counts computed from each customer's purchases
-- (an index range per customer; they cannot be kept by addition).
SELECT s.customer_id, s.purchase_count, d.order_count, s.total_spend, s.first_purchase_at,
       s.last_purchase_at, d.distinct_products, d.distinct_categories, s.currencies
  FROM customer_purchase_stats s
 CROSS JOIN LATERAL (
       SELECT count(DISTINCT coalesce(p.order_ref, p.external_id)) AS order_count,
              count(DISTINCT p.product_id) AS distinct_products,
              count(DISTINCT pr.category) AS distinct_categories
         FROM purchases p
         LEFT JOIN products pr ON pr.id = p.product_id
        WHERE p.customer_id = s.customer_id
       ) d
 WHERE s.customer_id = ANY ($1::bigint[]);

-- name: purchases_page_by_customer_ids
-- Per customer, the newest purchases of a window: $2/$3 bound the time, ($4, $5) is the
-- keyset cursor (purchased_at, id) of the last row seen, $6 the rows to return. With $7 the
-- lines' products come along (NULL columns otherwise: the join is then skipped outright).
-- The outer ORDER BY makes the per-customer order a guarantee rather than a plan detail.
SELECT p.id, p.customer_id, p.product_id, p.order_ref, p.quantity, p.unit_price, p.amount,
       p.currency, p.channel, p.purchased_at, p.source, p.external_id,
       pr.sku, pr.name, pr.category, pr.price, pr.currency AS product_currency,
       pr.created_at AS product_created_at
  FROM unnest($1::bigint[]) AS k(customer_id)
 CROSS JOIN LATERAL (
       SELECT *
         FROM purchases p
        WHERE p.customer_id = k.customer_id
          AND ($2::timestamptz IS NULL OR p.purchased_at >= $2)
          AND ($3::timestamptz IS NULL OR p.purchased_at < $3)
          AND ($4::timestamptz IS NULL OR (p.purchased_at, p.id) < ($4, $5::bigint))
        ORDER BY p.purchased_at DESC, p.id DESC
        LIMIT $6
       ) p
  LEFT JOIN products pr ON $7::boolean AND pr.id = p.product_id
 ORDER BY p.customer_id, p.purchased_at DESC, p.id DESC;

-- name: purchase_counts_by_customer_ids
SELECT k.customer_id, count(p.id) AS n
  FROM unnest($1::bigint[]) AS k(customer_id)
  LEFT JOIN purchases p
    ON p.customer_id = k.customer_id
   AND ($2::timestamptz IS NULL OR p.purchased_at >= $2)
   AND ($3::timestamptz IS NULL OR p.purchased_at < $3)
 GROUP BY k.customer_id;

-- name: interactions_page_by_customer_ids
SELECT i.id, i.customer_id, i.occurred_at, i.channel, i.kind, i.properties, i.source,
       i.external_id
  FROM unnest($1::bigint[]) AS k(customer_id)
 CROSS JOIN LATERAL (
       SELECT *
         FROM interactions i
        WHERE i.customer_id = k.customer_id
          AND ($2::timestamptz IS NULL OR i.occurred_at >= $2)
          AND ($3::timestamptz IS NULL OR i.occurred_at < $3)
          AND ($4::timestamptz IS NULL OR (i.occurred_at, i.id) < ($4, $5::bigint))
          AND ($7::text[] IS NULL OR i.kind = ANY ($7))
        ORDER BY i.occurred_at DESC, i.id DESC
        LIMIT $6
       ) i
 ORDER BY i.customer_id, i.occurred_at DESC, i.id DESC;

-- name: interaction_counts_by_customer_ids
SELECT k.customer_id, count(i.id) AS n
  FROM unnest($1::bigint[]) AS k(customer_id)
  LEFT JOIN interactions i
    ON i.customer_id = k.customer_id
   AND ($2::timestamptz IS NULL OR i.occurred_at >= $2)
   AND ($3::timestamptz IS NULL OR i.occurred_at < $3)
   AND ($4::text[] IS NULL OR i.kind = ANY ($4))
 GROUP BY k.customer_id;

-- name: customers_generation
-- How many statements have changed `customers` (migration 0015). Two snapshots that see the
-- same generation see the same customers.
SELECT coalesce(sum(delta), 0)::bigint AS generation
  FROM count_deltas
 WHERE counter = 'customers_changes' AND key = '';
