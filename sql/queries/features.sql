-- Model features: one definition, read for training (many customers, a past as-of time) and
-- for serving (a few customers, now). ml/features.py runs it and names the columns
-- (ml.features.FEATURES lists them in this order).
--
-- Point in time: every row read is strictly before the as-of time ($1): purchases by
-- purchased_at, interactions by occurred_at, customers by created_at. Nothing at or after it
-- can change the answer, with one deliberate exception: who is modelled at all is decided
-- now (modelled_customers, migration 0011). Erased customers and those whose latest
-- personalization/profiling decision is a refusal have no row, at any as-of time: an
-- objection stops training on their past too.
--
-- Consent is not a feature: a decision about how someone's data may be used is not evidence
-- about what they will buy, and learning from it would profile the decision itself.
--
-- Set-based: each source is aggregated grouped by customer, windows being FILTERs over the
-- same scan (purchases are read twice: per order, and per category), and the aggregates are
-- joined to the customers on their id. No per-customer subqueries: a million customers cost
-- a few scans and sorts, not a million lookups.
--
-- Parameters: $1 the as-of time; $2 the customer ids, or NULL for every (modelled) customer
-- created before $1. ml/features.py runs this through COPY, which inlines both as literals, so
-- PostgreSQL plans each call for its own values: the `$2 IS NULL OR ...` guards fold away,
-- a handful of ids become index lookups and everyone becomes full scans. (Run as a prepared
-- statement instead, a cached generic plan could not tell the two cases apart.)
--
-- Output: customer_id (bigint), then one float8 per feature and never NULL: counts and sums
-- are 0 when there is nothing to count, undefined values (recency without a purchase, an
-- interval without two orders, a ratio over zero) are 'NaN'.
-- Fixed-width rows let ml/features.py read the binary COPY straight into numpy.
--
-- Definitions:
--   day     24 hours, whatever the session's time zone (windows are written in hours).
--   order   the lines a customer bought at one instant (distinct purchased_at): lines of an
--           order share their timestamp, also when a source sent no order_ref.
--   window  "30d" is [as_of - 30 days, as_of); "prev 90d" is [as_of - 180 d, as_of - 90 d).
--   season  "next 30d last year" is [as_of - 365 d, as_of - 335 d): the coming 30 days, a
--           year earlier (likewise 90 d); it tells how this time of year suits the customer.
--   trend   (last 90 d - previous 90 d) / (last 90 d + previous 90 d), in [-1, 1]: -1 all
--           of it before, +1 all of it recent; NaN when both are zero.
--   gaps    days between consecutive orders: mean NaN below two orders, sample standard
--           deviation NaN below three; overdue ratio = days since the last order / mean gap.
--   spend   the sum of amounts in whatever currency each line has (see docs/design.md,
--           known limits).

-- name: customer_features
WITH orders AS (
    -- One row per order.
    SELECT p.customer_id, p.purchased_at AS at, sum(p.amount)::float8 AS amount,
           count(*) AS lines, sum(p.quantity) AS quantity
      FROM purchases p
     WHERE p.purchased_at < $1::timestamptz
       AND ($2::bigint[] IS NULL OR p.customer_id = ANY ($2::bigint[]))
     GROUP BY p.customer_id, p.purchased_at
), order_stats AS (
    SELECT customer_id,
           count(*) AS orders,
           count(*) FILTER (WHERE at >= $1::timestamptz - interval '720 hours') AS orders_30d,
           count(*) FILTER (WHERE at >= $1::timestamptz - interval '2160 hours') AS orders_90d,
           count(*) FILTER (WHERE at >= $1::timestamptz - interval '8760 hours') AS orders_365d,
           count(*) FILTER (WHERE at < $1::timestamptz - interval '2160 hours'
                              AND at >= $1::timestamptz - interval '4320 hours') AS orders_prev_90d,
           sum(amount) AS spend,
           coalesce(sum(amount) FILTER (
               WHERE at >= $1::timestamptz - interval '720 hours'), 0) AS spend_30d,
           coalesce(sum(amount) FILTER (
               WHERE at >= $1::timestamptz - interval '2160 hours'), 0) AS spend_90d,
           coalesce(sum(amount) FILTER (
               WHERE at >= $1::timestamptz - interval '8760 hours'), 0) AS spend_365d,
           coalesce(sum(amount) FILTER (
               WHERE at < $1::timestamptz - interval '2160 hours'
                 AND at >= $1::timestamptz - interval '4320 hours'), 0) AS spend_prev_90d,
           -- Seasonality: what the customer did in the window ahead, one year earlier.
           count(*) FILTER (WHERE at >= $1::timestamptz - interval '8760 hours'
                              AND at < $1::timestamptz - interval '8040 hours')
               AS orders_next_30d_last_year,
           count(*) FILTER (WHERE at >= $1::timestamptz - interval '8760 hours'
                              AND at < $1::timestamptz - interval '6600 hours')
               AS orders_next_90d_last_year,
           sum(lines)::float8 AS lines,
           sum(quantity)::float8 AS quantity,
           date_part('epoch', $1::timestamptz - max(at)) / 86400 AS days_since_last,
           date_part('epoch', $1::timestamptz - min(at)) / 86400 AS days_since_first,
           -- Mean gap between orders: the first-to-last span over the gaps (NULL for one).
           date_part('epoch', max(at) - min(at)) / 86400 / nullif(count(*) - 1, 0) AS gap_mean,
           -- Sample standard deviation of the gaps: NULL below three orders.
           stddev_samp(gap) AS gap_std
      FROM (SELECT customer_id, at, amount, lines, quantity,
                   date_part('epoch', at - lag(at) OVER (PARTITION BY customer_id ORDER BY at))
                       / 86400 AS gap
              FROM orders) o
     GROUP BY customer_id
), category_stats AS (
    SELECT customer_id, count(category) AS categories,
           max(amount) FILTER (WHERE category IS NOT NULL) AS top_category_spend
      FROM (SELECT p.customer_id, pr.category, sum(p.amount)::float8 AS amount
              FROM purchases p
              LEFT JOIN products pr ON pr.id = p.product_id
             WHERE p.purchased_at < $1::timestamptz
               AND ($2::bigint[] IS NULL OR p.customer_id = ANY ($2::bigint[]))
             GROUP BY p.customer_id, pr.category) c
     GROUP BY customer_id
), interaction_stats AS (
    -- Windowed counts need only the last 90 days; the last complaint and ticket may be older,
    -- but support contacts are few.
    SELECT i.customer_id,
           count(*) FILTER (WHERE i.kind = 'complaint'
                              AND i.occurred_at >= $1::timestamptz - interval '720 hours')
               AS complaints_30d,
           count(*) FILTER (WHERE i.kind = 'complaint'
                              AND i.occurred_at >= $1::timestamptz - interval '2160 hours')
               AS complaints_90d,
           count(*) FILTER (WHERE i.kind = 'ticket_opened'
                              AND i.occurred_at >= $1::timestamptz - interval '720 hours')
               AS tickets_30d,
           count(*) FILTER (WHERE i.kind = 'ticket_opened'
                              AND i.occurred_at >= $1::timestamptz - interval '2160 hours')
               AS tickets_90d,
           count(*) FILTER (WHERE i.kind = 'email_open'
                              AND i.occurred_at >= $1::timestamptz - interval '720 hours')
               AS email_opens_30d,
           count(*) FILTER (WHERE i.kind = 'email_open'
                              AND i.occurred_at >= $1::timestamptz - interval '2160 hours')
               AS email_opens_90d,
           count(*) FILTER (WHERE i.kind = 'email_click'
                              AND i.occurred_at >= $1::timestamptz - interval '720 hours')
               AS email_clicks_30d,
           count(*) FILTER (WHERE i.kind = 'email_click'
                              AND i.occurred_at >= $1::timestamptz - interval '2160 hours')
               AS email_clicks_90d,
           count(*) FILTER (WHERE i.kind = 'page_view'
                              AND i.occurred_at >= $1::timestamptz - interval '720 hours')
               AS page_views_30d,
           count(*) FILTER (WHERE i.kind = 'page_view'
                              AND i.occurred_at >= $1::timestamptz - interval '2160 hours')
               AS page_views_90d,
           count(*) FILTER (WHERE i.kind = 'review'
                              AND i.occurred_at >= $1::timestamptz - interval '2160 hours')
               AS reviews_90d,
           count(*) FILTER (WHERE i.channel = 'web'
                              AND i.occurred_at >= $1::timestamptz - interval '2160 hours')
               AS web_interactions_90d,
           count(*) FILTER (WHERE i.channel = 'app'
                              AND i.occurred_at >= $1::timestamptz - interval '2160 hours')
               AS app_interactions_90d,
           count(*) FILTER (WHERE i.occurred_at >= $1::timestamptz - interval '2160 hours')
               AS interactions_90d,
           max(i.occurred_at) FILTER (WHERE i.kind = 'complaint') AS last_complaint_at,
           max(i.occurred_at) FILTER (WHERE i.kind = 'ticket_opened') AS last_ticket_at
      FROM interactions i
     WHERE i.occurred_at < $1::timestamptz
       AND ($2::bigint[] IS NULL OR i.customer_id = ANY ($2::bigint[]))
       AND (i.occurred_at >= $1::timestamptz - interval '2160 hours'
            OR i.kind IN ('complaint', 'ticket_opened'))
     GROUP BY i.customer_id
)
SELECT cu.id AS customer_id,
       -- Purchases: recency, frequency, monetary value.
       coalesce(o.days_since_last, 'NaN') AS days_since_last_purchase,
       coalesce(o.days_since_first, 'NaN') AS days_since_first_purchase,
       date_part('epoch', $1::timestamptz - cu.created_at) / 86400 AS tenure_days,
       coalesce(o.orders_30d, 0)::float8 AS orders_30d,
       coalesce(o.orders_90d, 0)::float8 AS orders_90d,
       coalesce(o.orders_365d, 0)::float8 AS orders_365d,
       coalesce(o.orders, 0)::float8 AS orders_lifetime,
       coalesce(o.spend_30d, 0) AS spend_30d,
       coalesce(o.spend_90d, 0) AS spend_90d,
       coalesce(o.spend_365d, 0) AS spend_365d,
       coalesce(o.spend, 0) AS spend_lifetime,
       coalesce((o.spend_90d - o.spend_prev_90d) / nullif(o.spend_90d + o.spend_prev_90d, 0),
                'NaN') AS spend_trend_90d,
       coalesce((o.orders_90d - o.orders_prev_90d)::float8
                / nullif(o.orders_90d + o.orders_prev_90d, 0), 'NaN') AS orders_trend_90d,
       coalesce(o.spend / o.orders, 'NaN') AS avg_order_value,
       coalesce(o.lines / o.orders, 'NaN') AS avg_basket_lines,
       coalesce(o.quantity / o.orders, 'NaN') AS avg_basket_quantity,
       -- Rhythm and season.
       coalesce(o.orders_next_30d_last_year, 0)::float8 AS orders_next_30d_last_year,
       coalesce(o.orders_next_90d_last_year, 0)::float8 AS orders_next_90d_last_year,
       coalesce(o.gap_mean, 'NaN') AS interpurchase_mean_days,
       coalesce(o.gap_std, 'NaN') AS interpurchase_std_days,
       coalesce(o.days_since_last / nullif(o.gap_mean, 0), 'NaN') AS overdue_ratio,
       -- Breadth.
       coalesce(k.categories, 0)::float8 AS distinct_categories,
       coalesce(k.top_category_spend / nullif(o.spend, 0), 'NaN') AS top_category_share,
       -- Interactions.
       coalesce(i.complaints_30d, 0)::float8 AS complaints_30d,
       coalesce(i.complaints_90d, 0)::float8 AS complaints_90d,
       coalesce(i.tickets_30d, 0)::float8 AS tickets_30d,
       coalesce(i.tickets_90d, 0)::float8 AS tickets_90d,
       coalesce(date_part('epoch', $1::timestamptz - i.last_complaint_at) / 86400, 'NaN')
           AS days_since_last_complaint,
       coalesce(date_part('epoch', $1::timestamptz - i.last_ticket_at) / 86400, 'NaN')
           AS days_since_last_ticket,
       coalesce(i.email_opens_30d, 0)::float8 AS email_opens_30d,
       coalesce(i.email_opens_90d, 0)::float8 AS email_opens_90d,
       coalesce(i.email_clicks_30d, 0)::float8 AS email_clicks_30d,
       coalesce(i.email_clicks_90d, 0)::float8 AS email_clicks_90d,
       coalesce(i.email_clicks_90d::float8 / nullif(i.email_opens_90d, 0), 'NaN')
           AS email_click_rate_90d,
       coalesce(i.page_views_30d, 0)::float8 AS page_views_30d,
       coalesce(i.page_views_90d, 0)::float8 AS page_views_90d,
       coalesce(i.reviews_90d, 0)::float8 AS reviews_90d,
       coalesce(i.web_interactions_90d, 0)::float8 AS web_interactions_90d,
       coalesce(i.app_interactions_90d, 0)::float8 AS app_interactions_90d,
       coalesce(i.interactions_90d, 0)::float8 AS interactions_90d
  FROM modelled_customers cu
  LEFT JOIN order_stats o ON o.customer_id = cu.id
  LEFT JOIN category_stats k ON k.customer_id = cu.id
  LEFT JOIN interaction_stats i ON i.customer_id = cu.id
 WHERE cu.created_at < $1::timestamptz
   AND ($2::bigint[] IS NULL OR cu.id = ANY ($2::bigint[]))
 ORDER BY cu.id;
