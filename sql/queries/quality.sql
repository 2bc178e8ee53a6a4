-- The data-quality report (sql/quality.py runs these in one read-only, repeatable-read
-- transaction, so they all see one snapshot and one now()).
--
-- Each table is read once: a first CTE flags every row against the rules, a second counts
-- the flags, and a VALUES list turns that one row of counts into one row per (field, rule),
-- carrying the rule's name and description so that the catalogue of checks lives here, next
-- to the predicates that implement it. Columns of the per-table statements:
--   whole_table    true for the row(s) about the whole table; false for one row per source
--   source         the source (rows with whole_table false); NULL otherwise
--   row_count      rows of the table (or of the source)
--   last_record_at newest record received (per source)
--   last_event_at  newest event time (per source; NULL where a table has no event time)
--   position, field, filled, invalid, rule, description, count
--                  one row per rule of a field (rule NULL for a field without rules);
--                  `invalid` counts the field's rows breaking at least one of its rules
-- Tables with a source column group by GROUPING SETS ((source), ()), so the same scan gives
-- the per-source freshness and the whole-table counts, and an empty table still answers its
-- whole-table row (with zeros).

-- name: quality_snapshot_time
SELECT now() AS generated_at;

-- name: quality_customers
-- $1: the ISO 3166-1 alpha-2 codes (the column's domain checks only the shape, so 'XX' gets in).
-- Names and e-mails are compared with their standard form (domain/standardize.py): whitespace
-- collapsed and trimmed, e-mails lower-case. The e-mail pattern is deliberately loose (one @,
-- no spaces, a dotted domain): it finds garbage without refusing international addresses.
WITH flagged AS (
    SELECT first_name, last_name, email, phone, country, birth_date,
           first_name <> btrim(regexp_replace(first_name, '\s+', ' ', 'g')) AS first_name_untidy,
           last_name <> btrim(regexp_replace(last_name, '\s+', ' ', 'g')) AS last_name_untidy,
           email <> lower(email) AS email_not_lower_case,
           email !~ '^[^@\s]+@([^@\s.]+\.)+[^@\s.]{2,}$' AS email_malformed,
           phone !~ '^\+[1-9][0-9]{7,14}$' AS phone_not_e164,
           country::text <> ALL ($1::text[]) AS country_unknown,
           birth_date > current_date AS birth_date_in_future,
           created_at > now() AS created_in_future
      FROM customers
), totals AS (
    SELECT count(*) AS row_count,
           count(first_name) AS first_name_filled,
           count(*) FILTER (WHERE first_name_untidy) AS first_name_untidy,
           count(last_name) AS last_name_filled,
           count(*) FILTER (WHERE last_name_untidy) AS last_name_untidy,
           count(email) AS email_filled,
           count(*) FILTER (WHERE email_not_lower_case OR email_malformed) AS email_invalid,
           count(*) FILTER (WHERE email_not_lower_case) AS email_not_lower_case,
           count(*) FILTER (WHERE email_malformed) AS email_malformed,
           count(phone) AS phone_filled,
           count(*) FILTER (WHERE phone_not_e164) AS phone_not_e164,
           count(country) AS country_filled,
           count(*) FILTER (WHERE country_unknown) AS country_unknown,
           count(birth_date) AS birth_date_filled,
           count(*) FILTER (WHERE birth_date_in_future) AS birth_date_in_future,
           count(*) FILTER (WHERE created_in_future) AS created_in_future
      FROM flagged
)
SELECT true AS whole_table, NULL::text AS source, t.row_count,
       NULL::timestamptz AS last_record_at, NULL::timestamptz AS last_event_at, v.*
  FROM totals t
 CROSS JOIN LATERAL (VALUES
       (1, 'first_name', t.first_name_filled, t.first_name_untidy, 'untidy_whitespace',
        'leading, trailing or repeated whitespace', t.first_name_untidy),
       (2, 'last_name', t.last_name_filled, t.last_name_untidy, 'untidy_whitespace',
        'leading, trailing or repeated whitespace', t.last_name_untidy),
       (3, 'email', t.email_filled, t.email_invalid, 'not_lower_case',
        'has upper-case letters (addresses are stored lower-case)', t.email_not_lower_case),
       (4, 'email', t.email_filled, t.email_invalid, 'malformed',
        'not shaped like an e-mail address (one @, no spaces, a dotted domain)',
        t.email_malformed),
       (5, 'phone', t.phone_filled, t.phone_not_e164, 'not_e164',
        'not E.164 (+, country code, 8 to 15 digits in all)', t.phone_not_e164),
       (6, 'country', t.country_filled, t.country_unknown, 'unknown_code',
        'not an ISO 3166-1 alpha-2 country code', t.country_unknown),
       (7, 'birth_date', t.birth_date_filled, t.birth_date_in_future, 'in_future',
        'after today', t.birth_date_in_future),
       (8, 'created_at', t.row_count, t.created_in_future, 'in_future',
        'after the time of the report', t.created_in_future)
       ) AS v(position, field, filled, invalid, rule, description, count)
 ORDER BY v.position;

-- name: quality_identities
-- Identity values by kind: e-mails in standard form, phones in E.164, and no value with
-- whitespace around it (an external id with a trailing blank never matches its source's).
WITH flagged AS (
    SELECT source, created_at,
           kind = 'email' AND value <> lower(value) AS email_not_lower_case,
           kind = 'email' AND value !~ '^[^@\s]+@([^@\s.]+\.)+[^@\s.]{2,}$' AS email_malformed,
           kind = 'phone' AND value !~ '^\+[1-9][0-9]{7,14}$' AS phone_not_e164,
           value ~ '^\s|\s$' AS untidy,
           created_at > now() AS created_in_future
      FROM identities
), grouped AS (
    SELECT GROUPING(source) = 1 AS whole_table, source, count(*) AS row_count,
           max(created_at) AS last_record_at,
           count(*) FILTER (WHERE email_not_lower_case OR email_malformed OR phone_not_e164
                                  OR untidy) AS value_invalid,
           count(*) FILTER (WHERE email_not_lower_case) AS email_not_lower_case,
           count(*) FILTER (WHERE email_malformed) AS email_malformed,
           count(*) FILTER (WHERE phone_not_e164) AS phone_not_e164,
           count(*) FILTER (WHERE untidy) AS untidy,
           count(*) FILTER (WHERE created_in_future) AS created_in_future
      FROM flagged
     GROUP BY GROUPING SETS ((source), ())
)
SELECT g.whole_table, g.source, g.row_count, g.last_record_at,
       NULL::timestamptz AS last_event_at, v.*
  FROM grouped g
  LEFT JOIN LATERAL (VALUES
       (1, 'value', g.row_count, g.value_invalid, 'email_not_lower_case',
        'an e-mail identity with upper-case letters', g.email_not_lower_case),
       (2, 'value', g.row_count, g.value_invalid, 'email_malformed',
        'an e-mail identity not shaped like an e-mail address', g.email_malformed),
       (3, 'value', g.row_count, g.value_invalid, 'phone_not_e164',
        'a phone identity not in E.164', g.phone_not_e164),
       (4, 'value', g.row_count, g.value_invalid, 'untidy_whitespace',
        'leading or trailing whitespace', g.untidy),
       (5, 'created_at', g.row_count, g.created_in_future, 'in_future',
        'after the time of the report', g.created_in_future)
       ) AS v(position, field, filled, invalid, rule, description, count) ON g.whole_table
 ORDER BY g.whole_table DESC, g.source, v.position;

-- name: quality_purchases
-- $1: the ISO 4217 currency codes (the column's domain checks only the shape).
-- A line's amount may differ from quantity x unit price for a reason (a discount), but the
-- usual cause is a source sending the line total as the unit price or the other way round.
-- "Before the customer was created": created_at is the customer's signup, and a purchase
-- before it suggests a wrong timestamp or a wrong customer.
WITH flagged AS (
    SELECT p.source, p.recorded_at, p.purchased_at, p.product_id, p.order_ref, p.unit_price,
           p.unit_price IS NOT NULL AND p.amount <> p.quantity * p.unit_price
               AS amount_mismatch,
           p.currency::text <> ALL ($1::text[]) AS currency_unknown,
           p.purchased_at > now() AS in_future,
           p.purchased_at < c.created_at AS before_customer
      FROM purchases p
      JOIN customers c ON c.id = p.customer_id
), grouped AS (
    SELECT GROUPING(source) = 1 AS whole_table, source, count(*) AS row_count,
           max(recorded_at) AS last_record_at, max(purchased_at) AS last_event_at,
           count(product_id) AS product_id_filled,
           count(order_ref) AS order_ref_filled,
           count(unit_price) AS unit_price_filled,
           count(*) FILTER (WHERE amount_mismatch) AS amount_mismatch,
           count(*) FILTER (WHERE currency_unknown) AS currency_unknown,
           count(*) FILTER (WHERE in_future OR before_customer) AS purchased_at_invalid,
           count(*) FILTER (WHERE in_future) AS in_future,
           count(*) FILTER (WHERE before_customer) AS before_customer
      FROM flagged
     GROUP BY GROUPING SETS ((source), ())
)
SELECT g.whole_table, g.source, g.row_count, g.last_record_at, g.last_event_at, v.*
  FROM grouped g
  LEFT JOIN LATERAL (VALUES
       (1, 'product_id', g.product_id_filled, 0::bigint, NULL, NULL, NULL::bigint),
       (2, 'order_ref', g.order_ref_filled, 0, NULL, NULL, NULL),
       (3, 'unit_price', g.unit_price_filled, 0, NULL, NULL, NULL),
       (4, 'amount', g.row_count, g.amount_mismatch, 'not_quantity_times_unit_price',
        'differs from quantity x unit price (where the unit price is known)',
        g.amount_mismatch),
       (5, 'currency', g.row_count, g.currency_unknown, 'unknown_code',
        'not an ISO 4217 currency code', g.currency_unknown),
       (6, 'purchased_at', g.row_count, g.purchased_at_invalid, 'in_future',
        'after the time of the report', g.in_future),
       (7, 'purchased_at', g.row_count, g.purchased_at_invalid, 'before_customer_created',
        'before the customer''s created_at', g.before_customer)
       ) AS v(position, field, filled, invalid, rule, description, count) ON g.whole_table
 ORDER BY g.whole_table DESC, g.source, v.position;

-- name: quality_interactions
WITH flagged AS (
    SELECT i.source, i.recorded_at, i.occurred_at,
           i.properties <> '{}'::jsonb AS has_properties,
           i.occurred_at > now() AS in_future,
           i.occurred_at < c.created_at AS before_customer
      FROM interactions i
      JOIN customers c ON c.id = i.customer_id
), grouped AS (
    SELECT GROUPING(source) = 1 AS whole_table, source, count(*) AS row_count,
           max(recorded_at) AS last_record_at, max(occurred_at) AS last_event_at,
           count(*) FILTER (WHERE has_properties) AS properties_filled,
           count(*) FILTER (WHERE in_future OR before_customer) AS occurred_at_invalid,
           count(*) FILTER (WHERE in_future) AS in_future,
           count(*) FILTER (WHERE before_customer) AS before_customer
      FROM flagged
     GROUP BY GROUPING SETS ((source), ())
)
SELECT g.whole_table, g.source, g.row_count, g.last_record_at, g.last_event_at, v.*
  FROM grouped g
  LEFT JOIN LATERAL (VALUES
       -- properties is NOT NULL (default {}): "filled" means it says something.
       (1, 'properties', g.properties_filled, 0::bigint, NULL, NULL, NULL::bigint),
       (2, 'occurred_at', g.row_count, g.occurred_at_invalid, 'in_future',
        'after the time of the report', g.in_future),
       (3, 'occurred_at', g.row_count, g.occurred_at_invalid, 'before_customer_created',
        'before the customer''s created_at', g.before_customer)
       ) AS v(position, field, filled, invalid, rule, description, count) ON g.whole_table
 ORDER BY g.whole_table DESC, g.source, v.position;

-- name: quality_consents
-- recorded_at is when the decision was made (consents have no separate receive time), so it
-- is also what freshness reports.
WITH grouped AS (
    SELECT GROUPING(source) = 1 AS whole_table, source, count(*) AS row_count,
           max(recorded_at) AS last_record_at,
           count(*) FILTER (WHERE recorded_at > now()) AS in_future
      FROM consents
     GROUP BY GROUPING SETS ((source), ())
)
SELECT g.whole_table, g.source, g.row_count, g.last_record_at,
       NULL::timestamptz AS last_event_at, v.*
  FROM grouped g
  LEFT JOIN LATERAL (VALUES
       (1, 'recorded_at', g.row_count, g.in_future, 'in_future',
        'after the time of the report', g.in_future)
       ) AS v(position, field, filled, invalid, rule, description, count) ON g.whole_table
 ORDER BY g.whole_table DESC, g.source, v.position;

-- name: quality_duplicates
-- Customers sharing an exact normalised value with another customer, per kind: `customers`
-- counts each such customer once, `groups` the distinct shared values. E-mails and phones
-- come from the profile and from identities (two customers known by one address in
-- different sources are the classic duplicate); UNION makes each (customer, value) count
-- once. Normal forms: e-mail trimmed and lower-cased; phone reduced to its digits and a
-- leading +; names whitespace-collapsed and lower-cased, with the country (all three set).
WITH emails AS (
    SELECT id AS customer_id, lower(btrim(email)) AS value
      FROM customers WHERE email IS NOT NULL
    UNION
    SELECT customer_id, lower(btrim(value)) FROM identities WHERE kind = 'email'
), phones AS (
    SELECT id AS customer_id, regexp_replace(phone, '[^0-9+]', '', 'g') AS value
      FROM customers WHERE phone IS NOT NULL
    UNION
    SELECT customer_id, regexp_replace(value, '[^0-9+]', '', 'g')
      FROM identities WHERE kind = 'phone'
), names AS (
    SELECT id AS customer_id,
           lower(btrim(regexp_replace(first_name, '\s+', ' ', 'g'))) || '|'
           || lower(btrim(regexp_replace(last_name, '\s+', ' ', 'g'))) || '|' || country
               AS value
      FROM customers
     WHERE first_name IS NOT NULL AND last_name IS NOT NULL AND country IS NOT NULL
), keyed AS (
    SELECT 1 AS position, customer_id, value FROM emails
    UNION ALL
    SELECT 2, customer_id, value FROM phones WHERE value <> ''
    UNION ALL
    SELECT 3, customer_id, value FROM names
), shared AS (
    SELECT position, customer_id, value
      FROM (SELECT position, customer_id, value,
                   count(*) OVER (PARTITION BY position, value) AS holders
              FROM keyed) k
     WHERE holders > 1
), counted AS (
    SELECT position, count(DISTINCT customer_id) AS customers, count(DISTINCT value) AS groups
      FROM shared
     GROUP BY position
)
SELECT v.kind, v.description, coalesce(c.customers, 0) AS customers,
       coalesce(c.groups, 0) AS groups
  FROM (VALUES
        (1, 'email', 'share an e-mail address (profile or identity, case-insensitive)'),
        (2, 'phone', 'share a phone number (profile or identity, punctuation ignored)'),
        (3, 'name_country', 'share first name, last name and country (case-insensitive)')
       ) AS v(position, kind, description)
  LEFT JOIN counted c ON c.position = v.position
 ORDER BY v.position;

-- name: quality_consistency
-- Rows that disagree with other rows. Foreign keys already rule out orphans (a purchase of
-- an unknown customer or product cannot exist), so these are the disagreements they cannot
-- catch. Columns: name, description, count, population (what the count is a share of).
WITH fresh AS (
    -- The purchase aggregates as the trigger would compute them now.
    SELECT customer_id, count(*) AS purchase_count, sum(amount) AS total_spend,
           min(purchased_at) AS first_at, max(purchased_at) AS last_at
      FROM purchases
     GROUP BY customer_id
), stats AS (
    SELECT count(*) FILTER (WHERE s.customer_id IS NULL) AS missing,
           count(*) FILTER (WHERE f.customer_id IS NULL) AS without_purchases,
           count(*) FILTER (
               WHERE s.customer_id IS NOT NULL AND f.customer_id IS NOT NULL
                 AND (s.purchase_count, s.total_spend, s.first_purchase_at, s.last_purchase_at)
                     IS DISTINCT FROM (f.purchase_count, f.total_spend, f.first_at, f.last_at)
           ) AS mismatched,
           count(f.customer_id) AS buyers,
           count(s.customer_id) AS stats_rows
      FROM customer_purchase_stats s
      FULL JOIN fresh f ON f.customer_id = s.customer_id
), profiles AS (
    SELECT count(*) AS customers,
           count(*) FILTER (
               WHERE NOT EXISTS (SELECT 1 FROM identities i WHERE i.customer_id = c.id)
           ) AS without_identity
      FROM customers c
), aliases AS (
    SELECT count(*) AS aliases,
           count(*) FILTER (
               WHERE EXISTS (SELECT 1 FROM customer_aliases b WHERE b.merged_id = a.customer_id)
           ) AS chained,
           count(*) FILTER (
               WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = a.merged_id)
           ) AS merged_still_live,
           count(*) FILTER (WHERE m.undone_at IS NOT NULL) AS of_undone_merge
      FROM customer_aliases a
      JOIN merges m ON m.id = a.merge_id
), merged_away AS (
    -- Every id a standing merge took away should still resolve through an alias.
    SELECT count(*) AS merged_ids,
           count(*) FILTER (
               WHERE NOT EXISTS (SELECT 1 FROM customer_aliases a WHERE a.merged_id = x.id)
           ) AS unresolvable
      FROM merges m
     CROSS JOIN LATERAL unnest(m.merged_ids) AS x(id)
     WHERE m.undone_at IS NULL
), decisions AS (
    -- Consent rows per (customer, purpose, instant): the current state is the newest row,
    -- so two opposite decisions at the same instant leave it to the tie-break (row id).
    SELECT coalesce(sum(n), 0)::bigint AS consents,
           coalesce(sum(n) FILTER (WHERE mixed), 0)::bigint AS conflicting
      FROM (SELECT count(*) AS n, bool_or(granted) AND NOT bool_and(granted) AS mixed
              FROM consents
             GROUP BY customer_id, purpose, recorded_at) d
)
SELECT v.name, v.description, v.count, v.population
  FROM stats, profiles, aliases, merged_away, decisions
 CROSS JOIN LATERAL (VALUES
       (1, 'customers_without_identity',
        'customers no source knows by any identity (no e-mail, phone, external id, ...)',
        profiles.without_identity, profiles.customers),
       (2, 'purchase_stats_mismatch',
        'customer_purchase_stats rows whose count, total, first or last purchase differ '
        || 'from a fresh aggregate of purchases', stats.mismatched, stats.stats_rows),
       (3, 'purchase_stats_missing',
        'customers with purchases but no customer_purchase_stats row', stats.missing,
        stats.buyers),
       (4, 'purchase_stats_without_purchases',
        'customer_purchase_stats rows of customers without purchases', stats.without_purchases,
        stats.stats_rows),
       (5, 'alias_chain',
        'aliases pointing at a customer that is itself merged away (lookups resolve one hop)',
        aliases.chained, aliases.aliases),
       (6, 'alias_of_live_customer',
        'aliases whose merged customer still exists (its id resolves to the survivor, yet '
        || 'it still shows in lists)', aliases.merged_still_live, aliases.aliases),
       (7, 'alias_of_undone_merge',
        'aliases left behind by a merge that was undone', aliases.of_undone_merge,
        aliases.aliases),
       (8, 'merged_id_without_alias',
        'ids merged away by a standing merge that no alias resolves any more',
        merged_away.unresolvable, merged_away.merged_ids),
       (9, 'consent_conflicting_decisions',
        'consent rows contradicted by another decision for the same customer and purpose '
        || 'at the same instant (the current state is then a tie-break)',
        decisions.conflicting, decisions.consents)
       ) AS v(position, name, description, count, population)
 ORDER BY v.position;
