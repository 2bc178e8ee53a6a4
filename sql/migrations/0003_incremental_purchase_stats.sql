-- Purchase stats kept incrementally on insert.
--
-- 0001 recomputed every affected customer's aggregates from all their purchases after each
-- statement. For bulk loads that re-reads each customer's whole history once per chunk,
-- which dominated large imports. Inserts (by far the common case) now add their counts, sums
-- and time bounds to the stored row; updates and deletes still recompute (they are rare, and
-- a sum cannot be adjusted without the old values anyway). Distinct counts (orders,
-- products, categories) cannot be maintained by addition, so they leave the table and are
-- computed per customer when read (a few index-range rows per customer).

ALTER TABLE customer_purchase_stats
    DROP COLUMN order_count,
    DROP COLUMN distinct_products,
    DROP COLUMN distinct_categories;

CREATE OR REPLACE FUNCTION refresh_customer_purchase_stats(ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM customer_purchase_stats s
     WHERE s.customer_id = ANY (ids)
       AND NOT EXISTS (SELECT 1 FROM purchases p WHERE p.customer_id = s.customer_id);
    INSERT INTO customer_purchase_stats AS s
    SELECT p.customer_id, count(*), sum(p.amount), min(p.purchased_at), max(p.purchased_at),
           array_agg(DISTINCT p.currency::text ORDER BY p.currency::text)
      FROM purchases p
     WHERE p.customer_id = ANY (ids)
     GROUP BY p.customer_id
    ON CONFLICT (customer_id) DO UPDATE
       SET purchase_count = EXCLUDED.purchase_count,
           total_spend = EXCLUDED.total_spend,
           first_purchase_at = EXCLUDED.first_purchase_at,
           last_purchase_at = EXCLUDED.last_purchase_at,
           currencies = EXCLUDED.currencies;
$$;

CREATE OR REPLACE FUNCTION purchases_changed_ins() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO customer_purchase_stats AS s
    SELECT customer_id, count(*), sum(amount), min(purchased_at), max(purchased_at),
           array_agg(DISTINCT currency::text ORDER BY currency::text)
      FROM new_rows
     GROUP BY customer_id
     -- One lock order for every writer: concurrent import chunks wait, never deadlock.
     ORDER BY customer_id
    ON CONFLICT (customer_id) DO UPDATE
       SET purchase_count = s.purchase_count + EXCLUDED.purchase_count,
           total_spend = s.total_spend + EXCLUDED.total_spend,
           first_purchase_at = least(s.first_purchase_at, EXCLUDED.first_purchase_at),
           last_purchase_at = greatest(s.last_purchase_at, EXCLUDED.last_purchase_at),
           currencies = ARRAY(SELECT DISTINCT c
                                FROM unnest(s.currencies || EXCLUDED.currencies) AS c
                               ORDER BY c);
    RETURN NULL;
END $$;
