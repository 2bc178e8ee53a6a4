-- Analytics: set-based aggregates over purchases, customers and stored scores. Periods are
-- calendar periods in UTC. `/*segment*/ true` marks where sql/analytics.py puts a saved
-- segment's membership condition (compiled from fixed fragments, values bound).

-- name: analytics_revenue
-- $1 granularity (day, week, month), $2 from, $3 to, $4 country, $5 channel, $6 category.
-- Orders and buyers are counted by grouping in stages (line -> order -> buyer -> period):
-- hash aggregates, several times faster than count(DISTINCT ...) over the raw lines.
WITH periods AS (
    SELECT generate_series(date_trunc($1, $2::timestamptz AT TIME ZONE 'UTC'),
                           $3::timestamptz AT TIME ZONE 'UTC' - interval '1 microsecond',
                           ('1 ' || $1)::interval) AS period
), lines AS (
    SELECT date_trunc($1, p.purchased_at AT TIME ZONE 'UTC') AS period, p.customer_id,
           coalesce(p.order_ref, p.external_id) AS order_key, p.amount
      FROM purchases p
      JOIN customers c ON c.id = p.customer_id
      LEFT JOIN products pr ON pr.id = p.product_id
     WHERE p.purchased_at >= $2 AND p.purchased_at < $3
       AND ($4::text IS NULL OR c.country = $4)
       AND ($5::text IS NULL OR p.channel = $5)
       AND ($6::text IS NULL OR pr.category = $6)
       AND /*segment*/ true
), orders AS (
    SELECT period, customer_id, sum(amount) AS amount
      FROM lines
     GROUP BY period, customer_id, order_key
), buyers AS (
    SELECT period, sum(amount) AS amount, count(*) AS orders
      FROM orders
     GROUP BY period, customer_id
), totals AS (
    SELECT period, sum(amount) AS revenue, sum(orders)::bigint AS orders,
           count(*) AS active_customers
      FROM buyers
     GROUP BY period
)
SELECT k.period AT TIME ZONE 'UTC' AS period, coalesce(t.revenue, 0) AS revenue,
       coalesce(t.orders, 0) AS orders, coalesce(t.active_customers, 0) AS active_customers
  FROM periods k
  LEFT JOIN totals t ON t.period = k.period
 ORDER BY k.period;

-- name: analytics_cohorts
-- First-purchase month cohorts starting in [$1, $2), and how many of each bought in each
-- later month (offset 0 is the cohort's own month).
WITH cohorts AS (
    SELECT customer_id, date_trunc('month', first_purchase_at AT TIME ZONE 'UTC') AS cohort
      FROM customer_purchase_stats
     WHERE first_purchase_at >= $1 AND first_purchase_at < $2
), active AS (
    SELECT DISTINCT p.customer_id, date_trunc('month', p.purchased_at AT TIME ZONE 'UTC') AS month
      FROM purchases p
      JOIN cohorts k USING (customer_id)
     WHERE p.purchased_at >= $1
)
SELECT k.cohort AT TIME ZONE 'UTC' AS cohort,
       ((extract(year FROM a.month) - extract(year FROM k.cohort)) * 12
        + extract(month FROM a.month) - extract(month FROM k.cohort))::integer AS month_offset,
       count(*) AS customers
  FROM cohorts k
  JOIN active a USING (customer_id)
 GROUP BY 1, 2
 ORDER BY 1, 2;

-- name: analytics_top_products
-- n: the rank, for who reads the rows inside a larger statement (api/sql_analytics.py).
SELECT pr.id, sum(p.amount) AS revenue, sum(p.quantity)::bigint AS units,
       count(DISTINCT p.customer_id) AS customers,
       row_number() OVER (ORDER BY sum(p.amount) DESC, pr.id) AS n
  FROM purchases p
  JOIN products pr ON pr.id = p.product_id
 WHERE p.purchased_at >= $1 AND p.purchased_at < $2
   AND ($3::text IS NULL OR pr.category = $3)
 GROUP BY pr.id
 ORDER BY n
 LIMIT $4;

-- name: analytics_top_categories
SELECT pr.category, sum(p.amount) AS revenue, sum(p.quantity)::bigint AS units,
       count(DISTINCT p.customer_id) AS customers,
       row_number() OVER (ORDER BY sum(p.amount) DESC, pr.category) AS n
  FROM purchases p
  JOIN products pr ON pr.id = p.product_id
 WHERE p.purchased_at >= $1 AND p.purchased_at < $2
 GROUP BY pr.category
 ORDER BY n
 LIMIT $3;

-- name: analytics_churn_histogram
-- Stored churn probabilities in $1 equal bins over [0, 1].
SELECT least(width_bucket(cs.churn_probability, 0, 1, $1), $1) AS bin, count(*) AS customers
  FROM customer_scores cs
  JOIN customers c ON c.id = cs.customer_id AND c.erased_at IS NULL
 WHERE cs.churn_probability IS NOT NULL
 GROUP BY 1
 ORDER BY 1;

-- name: analytics_kpis
-- Headline numbers over [$1, $2), counted in stages like analytics_revenue.
WITH orders AS (
    SELECT customer_id, sum(amount) AS amount
      FROM purchases
     WHERE purchased_at >= $1 AND purchased_at < $2
     GROUP BY customer_id, coalesce(order_ref, external_id)
), buyers AS (
    SELECT sum(amount) AS amount, count(*) AS orders FROM orders GROUP BY customer_id
)
SELECT (SELECT count(*) FROM customers WHERE erased_at IS NULL) AS customers,
       coalesce(sum(amount), 0) AS revenue, coalesce(sum(orders), 0)::bigint AS orders,
       count(*) AS active_customers
  FROM buyers;

-- name: analytics_time_range
SELECT min(purchased_at) AS first, max(purchased_at) AS last FROM purchases;
