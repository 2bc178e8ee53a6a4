-- Inputs of the predictive models besides the customer features (features.sql): who is in a
-- training population, what happened after a cutoff (labels), and who bought what (the
-- candidates and features of recommendations). ml/ reads the numeric ones through binary
-- COPY (sql/matrix.py): a bigint key, float8 columns, never NULL ('NaN' for none).
--
-- Point in time: $1 is always the cutoff. Inputs read only rows strictly before it; labels
-- read only rows in [cutoff, horizon end). An order is the lines a customer bought at one
-- instant (distinct purchased_at), as in features.sql.
--
-- Who: only modelled_customers (migration 0011) are learned from, as of now whatever the
-- cutoff: erased customers and those objecting to profiling are in no population, and their
-- purchases feed no item statistics.

-- name: customers_buying_before
-- The population the purchase models learn from and are evaluated on: customers who existed
-- and had bought at least once before the cutoff (and may be modelled).
SELECT s.customer_id, 0::float8
  FROM customer_purchase_stats s
  JOIN modelled_customers c ON c.id = s.customer_id
 WHERE s.first_purchase_at < $1::timestamptz
   AND c.created_at < $1::timestamptz
 ORDER BY s.customer_id;

-- name: purchase_outcomes
-- Per customer of $3 who ordered in [$1, $2): orders in the window, and days from $1 to the
-- first of them. Customers absent from the result did not order (censored at the horizon).
SELECT p.customer_id,
       count(DISTINCT p.purchased_at)::float8 AS orders,
       (extract(epoch FROM min(p.purchased_at) - $1::timestamptz) / 86400)::float8 AS days_to_first
  FROM purchases p
 WHERE p.purchased_at >= $1::timestamptz
   AND p.purchased_at < $2::timestamptz
   AND p.customer_id = ANY ($3::bigint[])
 GROUP BY p.customer_id;

-- name: product_history
-- Who bought which product in [$2, $1) (or ever before $1 when $2 is NULL), for the customers
-- of $3 (or everyone when NULL), modelled customers only: orders containing the product, days
-- since the latest one. Serves customers' own histories and everyone's item statistics.
SELECT p.customer_id,
       p.product_id::float8,
       count(DISTINCT p.purchased_at)::float8 AS orders,
       (extract(epoch FROM $1::timestamptz - max(p.purchased_at)) / 86400)::float8 AS days_since
  FROM purchases p
 WHERE p.purchased_at < $1::timestamptz
   AND ($2::timestamptz IS NULL OR p.purchased_at >= $2::timestamptz)
   AND p.product_id IS NOT NULL
   AND ($3::bigint[] IS NULL OR p.customer_id = ANY ($3::bigint[]))
   AND p.customer_id IN (SELECT m.id FROM modelled_customers m)
 GROUP BY p.customer_id, p.product_id;

-- name: products_bought_between
-- Which products the customers of $3 bought in [$1, $2): the recommendation labels.
SELECT DISTINCT p.customer_id, p.product_id::float8
  FROM purchases p
 WHERE p.purchased_at >= $1::timestamptz
   AND p.purchased_at < $2::timestamptz
   AND p.product_id IS NOT NULL
   AND p.customer_id = ANY ($3::bigint[]);

-- name: product_catalogue
-- Every product with its name, category and list price (the catalogue as it is now: products are
-- not versioned, so a re-categorised product is seen in its new category at every cutoff).
SELECT id, name, category, price::float8 AS price
  FROM products
 ORDER BY id;

-- name: population_reached_at
-- When the $1-th modelled customer had first bought (NULL if fewer ever did): a cutoff after
-- it has at least $1 customers to learn from (customers_buying_before counts the same ones).
SELECT greatest(s.first_purchase_at, c.created_at) AS at
  FROM customer_purchase_stats s
  JOIN modelled_customers c ON c.id = s.customer_id
 ORDER BY 1
OFFSET $1::int - 1
 LIMIT 1;

-- name: purchase_history_span
-- The first and the latest purchase on record (NULLs when there are none).
SELECT min(first_purchase_at) AS first, max(last_purchase_at) AS last
  FROM customer_purchase_stats;

-- name: orders_by_step
-- Per customer of $4 who ordered in [$1, $2): orders (distinct purchase times, as
-- purchase_outcomes counts them) in each step of $3 days after $1, step 0 first.
SELECT p.customer_id,
       floor(extract(epoch FROM p.purchased_at - $1::timestamptz) / 86400 / $3::float8)::float8
         AS step,
       count(DISTINCT p.purchased_at)::float8 AS orders
  FROM purchases p
 WHERE p.purchased_at >= $1::timestamptz
   AND p.purchased_at < $2::timestamptz
   AND p.customer_id = ANY ($4::bigint[])
 GROUP BY 1, 2
 ORDER BY 1, 2;

-- name: repurchase_history
-- Buy-again inputs (ml/buy_again.py): per customer of $3 (or everyone when NULL) and product
-- bought in [$2, $1) (or ever before $1 when $2 is NULL), modelled customers only: orders
-- containing the product, days since the latest and the first of them, and the orders
-- weighted by exp(-age / $4 days) (recent orders count more).
SELECT o.customer_id,
       o.product_id::float8,
       count(*)::float8 AS orders,
       (extract(epoch FROM $1::timestamptz - max(o.purchased_at)) / 86400)::float8 AS days_since,
       (extract(epoch FROM $1::timestamptz - min(o.purchased_at)) / 86400)::float8 AS days_first,
       sum(exp(-extract(epoch FROM $1::timestamptz - o.purchased_at) / 86400 / $4::float8))::float8
         AS recent_orders
  FROM (SELECT DISTINCT p.customer_id, p.product_id, p.purchased_at
          FROM purchases p
         WHERE p.purchased_at < $1::timestamptz
           AND ($2::timestamptz IS NULL OR p.purchased_at >= $2::timestamptz)
           AND p.product_id IS NOT NULL
           AND ($3::bigint[] IS NULL OR p.customer_id = ANY ($3::bigint[]))
           AND p.customer_id IN (SELECT m.id FROM modelled_customers m)) o
 GROUP BY o.customer_id, o.product_id;

-- name: product_repurchase_cycles
-- Per product bought in [$2, $1) by a modelled customer: its buyers, those who bought it in two
-- orders or more, and the median over them of their mean days between two orders ('NaN' when
-- nobody re-bought it). ml/buy_again.py's product_cycles over repurchase_history, in SQL, so
-- that serving reads one row per product rather than one per (customer, product).
SELECT b.product_id,
       count(*)::float8 AS buyers,
       count(*) FILTER (WHERE b.orders >= 2)::float8 AS repeaters,
       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY b.interval)
                  FILTER (WHERE b.orders >= 2), 'NaN')::float8 AS median_interval
  FROM (SELECT o.customer_id, o.product_id, count(*) AS orders,
               extract(epoch FROM max(o.purchased_at) - min(o.purchased_at)) / 86400
                 / greatest(count(*) - 1, 1) AS interval
          FROM (SELECT DISTINCT p.customer_id, p.product_id, p.purchased_at
                  FROM purchases p
                 WHERE p.purchased_at < $1::timestamptz
                   AND p.purchased_at >= $2::timestamptz
                   AND p.product_id IS NOT NULL
                   AND p.customer_id IN (SELECT m.id FROM modelled_customers m)) o
         GROUP BY o.customer_id, o.product_id) b
 GROUP BY b.product_id;
