-- Set-based writes of validated records: COPY into per-transaction staging tables, then one
-- statement per step. Every staging row carries `line`, the record's number in its input, so
-- refusals found here are reported against the line they came from.

-- name: stage_refs_create
CREATE TEMP TABLE stage_refs (
    line             bigint PRIMARY KEY,
    customer_id      bigint,
    customer_source  text,
    customer_ref     text,
    seen_at          timestamptz NOT NULL,  -- when the line's event happened
    missing_id       bigint  -- an id the line gave that names no live customer
) ON COMMIT DROP;

-- name: stage_refs_lock_external_ids
-- Before customers are created for unseen external ids: lock those ids (migration 0009), so
-- two writers naming the same new id create one customer between them.
SELECT lock_identity_keys(coalesce(array_agg('external_id'::text), '{}'),
                          coalesce(array_agg(customer_source), '{}'),
                          coalesce(array_agg(customer_ref), '{}'))
  FROM (SELECT DISTINCT customer_source, customer_ref
          FROM stage_refs
         WHERE customer_ref IS NOT NULL) d;

-- name: stage_refs_by_external_id
UPDATE stage_refs s
   SET customer_id = i.customer_id
  FROM identities i
 WHERE s.customer_id IS NULL
   AND i.kind = 'external_id' AND i.source = s.customer_source AND i.value = s.customer_ref;

-- name: stage_refs_follow_aliases
UPDATE stage_refs s
   SET customer_id = a.customer_id
  FROM customer_aliases a
 WHERE a.merged_id = s.customer_id;

-- name: stage_refs_live
-- Ids given directly must name a customer, and not an erased one.
UPDATE stage_refs s
   SET customer_id = NULL, missing_id = s.customer_id
 WHERE s.customer_id IS NOT NULL AND s.customer_ref IS NULL
   AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = s.customer_id AND c.erased_at IS NULL);

-- name: stage_refs_create_missing
-- A minimal customer (and its external-id identity) per unseen external id, created as of
-- its earliest event in the chunk: its history must not predate the customer.
WITH missing AS (
    SELECT customer_source, customer_ref, first_seen,
           nextval(pg_get_serial_sequence('customers', 'id')) AS id
      FROM (SELECT customer_source, customer_ref, min(seen_at) AS first_seen
              FROM stage_refs
             WHERE customer_id IS NULL AND customer_ref IS NOT NULL
             GROUP BY customer_source, customer_ref) d
     -- an erased person's external id does not come back (see migration 0007)
     WHERE NOT EXISTS (SELECT 1 FROM suppressed_identities x
                        WHERE x.identity_hash = identity_hash('external_id', customer_source,
                                                              customer_ref))
), made AS (
    INSERT INTO customers (id, created_at, updated_at) OVERRIDING SYSTEM VALUE
    SELECT id, first_seen, greatest(first_seen, now()) FROM missing
), known AS (
    INSERT INTO identities (customer_id, kind, source, value)
    SELECT id, 'external_id', customer_source, customer_ref FROM missing
)
UPDATE stage_refs s
   SET customer_id = m.id
  FROM missing m
 WHERE s.customer_id IS NULL
   AND s.customer_source = m.customer_source AND s.customer_ref = m.customer_ref;

-- name: stage_refs_resolved
-- Each line's customer, or why it has none.
SELECT s.line, s.customer_id,
       CASE WHEN s.customer_ref IS NULL THEN 'customer_id' ELSE 'customer_external_id' END
           AS field,
       CASE WHEN s.customer_id IS NOT NULL THEN NULL
            WHEN erased THEN 'erased_person'
            ELSE 'unknown_customer'
       END AS code,
       CASE WHEN s.customer_id IS NOT NULL THEN NULL
            WHEN s.customer_ref IS NULL AND erased
            THEN 'customer ' || s.missing_id || ' was erased; nothing more is recorded about them'
            WHEN s.customer_ref IS NULL
            THEN 'no customer with id ' || s.missing_id
            WHEN erased
            THEN 'the customer with external id ' || s.customer_ref || ' in source '
                 || s.customer_source || ' was erased; their records are not imported again'
            ELSE 'no customer with external id ' || s.customer_ref || ' in source '
                 || s.customer_source || ' (use --create-missing-customers to create one)'
       END AS message
  FROM stage_refs s
 CROSS JOIN LATERAL (
       SELECT CASE WHEN s.customer_id IS NOT NULL THEN false
                   WHEN s.customer_ref IS NULL
                   THEN EXISTS (SELECT 1 FROM customers c
                                 WHERE c.id = s.missing_id AND c.erased_at IS NOT NULL)
                   ELSE EXISTS (SELECT 1 FROM suppressed_identities x
                                 WHERE x.identity_hash = identity_hash('external_id',
                                           s.customer_source, s.customer_ref))
              END AS erased) e;

-- name: stage_refs_backdate_customers
-- A customer's created_at is never after its earliest event: lower it to the earliest event
-- this write kept ($1: the lines refused). Another writer may have created the customer from
-- a later event of another chunk, or the customer came in before its history. Rows are
-- locked in id order first, so writers touching the same customers cannot deadlock here.
WITH earliest AS (
    SELECT customer_id, min(seen_at) AS first_seen
      FROM stage_refs s
     WHERE customer_id IS NOT NULL
       -- an anti-join, not `<> ALL`: a chunk may refuse thousands of lines
       AND NOT EXISTS (SELECT 1 FROM unnest($1::bigint[]) AS x(line) WHERE x.line = s.line)
     GROUP BY customer_id
), locked AS (
    SELECT c.id, e.first_seen
      FROM customers c JOIN earliest e ON e.customer_id = c.id
     WHERE c.created_at > e.first_seen
     ORDER BY c.id
       FOR NO KEY UPDATE OF c
)
UPDATE customers c
   SET created_at = l.first_seen
  FROM locked l
 WHERE c.id = l.id AND c.created_at > l.first_seen;

-- name: stage_purchases_create
CREATE TEMP TABLE stage_purchases (
    line          bigint PRIMARY KEY,
    source        text NOT NULL,
    external_id   text NOT NULL,
    product_sku   text,
    order_ref     text,
    quantity      integer NOT NULL,
    unit_price    numeric(12, 2),
    amount        numeric(14, 2) NOT NULL,
    currency      text NOT NULL,
    channel       text NOT NULL,
    purchased_at  timestamptz NOT NULL
) ON COMMIT DROP;

-- name: stage_purchases_problems
-- Lines that cannot be written: an unknown product, or an earlier line of the same purchase
-- (the last line for a purchase wins, as if the lines had been imported one by one).
SELECT s.line, 'product_sku' AS field, 'unknown_product' AS code,
       'no product with sku ' || s.product_sku AS message
  FROM stage_purchases s
 WHERE s.product_sku IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM products p WHERE p.sku = s.product_sku)
UNION ALL
SELECT line, 'external_id', 'superseded', 'a later line (' || last_line || ') has the same purchase'
  FROM (SELECT s.line,
               max(s.line) OVER (PARTITION BY r.customer_id, s.source, s.external_id) AS last_line
          FROM stage_purchases s JOIN stage_refs r USING (line)) d
 WHERE line < last_line;

-- name: stage_purchases_drop
DELETE FROM stage_purchases WHERE line = ANY ($1::bigint[]);

-- The staged lines that match an existing purchase update it if anything differs, then leave
-- the staging table; the rest are inserted with a plain INSERT. (INSERT ... ON CONFLICT
-- made each row a speculative insertion and nearly doubled the cost of bulk loads.)

-- name: stage_purchases_update
WITH changed AS (
    UPDATE purchases t
       SET product_id = p.id, order_ref = s.order_ref, quantity = s.quantity,
           unit_price = s.unit_price, amount = s.amount, currency = s.currency,
           channel = s.channel, purchased_at = s.purchased_at, recorded_at = now()
      FROM stage_purchases s
      JOIN stage_refs r USING (line)
      LEFT JOIN products p ON p.sku = s.product_sku
     WHERE t.customer_id = r.customer_id AND t.source = s.source
       AND t.external_id = s.external_id
       AND (t.product_id, t.order_ref, t.quantity, t.unit_price, t.amount, t.currency,
            t.channel, t.purchased_at)
           IS DISTINCT FROM
           (p.id, s.order_ref, s.quantity, s.unit_price, s.amount, s.currency::currency_code,
            s.channel, s.purchased_at)
    RETURNING 1
)
SELECT count(*) FROM changed;

-- name: stage_purchases_take_existing
WITH known AS (
    DELETE FROM stage_purchases s
     USING stage_refs r, purchases t
     WHERE r.line = s.line AND t.customer_id = r.customer_id AND t.source = s.source
       AND t.external_id = s.external_id
    RETURNING 1
)
SELECT count(*) FROM known;

-- name: stage_purchases_insert
WITH written AS (
    INSERT INTO purchases (customer_id, product_id, order_ref, quantity, unit_price, amount,
                           currency, channel, purchased_at, source, external_id)
    SELECT r.customer_id, p.id, s.order_ref, s.quantity, s.unit_price, s.amount, s.currency,
           s.channel, s.purchased_at, s.source, s.external_id
      FROM stage_purchases s
      JOIN stage_refs r USING (line)
      LEFT JOIN products p ON p.sku = s.product_sku
    RETURNING 1
)
SELECT count(*) FROM written;

-- name: stage_interactions_create
CREATE TEMP TABLE stage_interactions (
    line          bigint PRIMARY KEY,
    source        text NOT NULL,
    external_id   text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    channel       text NOT NULL,
    kind          text NOT NULL,
    properties    text NOT NULL  -- JSON text: binary COPY cannot take our jsonb codec
) ON COMMIT DROP;

-- name: stage_interactions_problems
SELECT line, 'external_id' AS field, 'superseded' AS code,
       'a later line (' || last_line || ') has the same interaction' AS message
  FROM (SELECT s.line,
               max(s.line) OVER (PARTITION BY r.customer_id, s.source, s.external_id) AS last_line
          FROM stage_interactions s JOIN stage_refs r USING (line)) d
 WHERE line < last_line;

-- name: stage_interactions_drop
DELETE FROM stage_interactions WHERE line = ANY ($1::bigint[]);

-- name: stage_interactions_update
WITH changed AS (
    UPDATE interactions t
       SET occurred_at = s.occurred_at, channel = s.channel, kind = s.kind,
           properties = s.properties::jsonb, recorded_at = now()
      FROM stage_interactions s
      JOIN stage_refs r USING (line)
     WHERE t.customer_id = r.customer_id AND t.source = s.source
       AND t.external_id = s.external_id
       AND (t.occurred_at, t.channel, t.kind, t.properties)
           IS DISTINCT FROM (s.occurred_at, s.channel, s.kind, s.properties::jsonb)
    RETURNING 1
)
SELECT count(*) FROM changed;

-- name: stage_interactions_take_existing
WITH known AS (
    DELETE FROM stage_interactions s
     USING stage_refs r, interactions t
     WHERE r.line = s.line AND t.customer_id = r.customer_id AND t.source = s.source
       AND t.external_id = s.external_id
    RETURNING 1
)
SELECT count(*) FROM known;

-- name: stage_interactions_insert
WITH written AS (
    INSERT INTO interactions (customer_id, occurred_at, channel, kind, properties, source,
                              external_id)
    SELECT r.customer_id, s.occurred_at, s.channel, s.kind, s.properties::jsonb, s.source,
           s.external_id
      FROM stage_interactions s
      JOIN stage_refs r USING (line)
    RETURNING 1
)
SELECT count(*) FROM written;

-- name: stage_consents_create
CREATE TEMP TABLE stage_consents (
    line          bigint PRIMARY KEY,
    source        text NOT NULL,
    purpose       text NOT NULL,
    granted       boolean NOT NULL,
    recorded_at   timestamptz NOT NULL
) ON COMMIT DROP;

-- name: stage_consents_problems
SELECT line, 'recorded_at' AS field, 'superseded' AS code,
       'a later line (' || last_line || ') records the same decision' AS message
  FROM (SELECT s.line,
               max(s.line) OVER (PARTITION BY r.customer_id, s.purpose, s.source, s.recorded_at)
                   AS last_line
          FROM stage_consents s JOIN stage_refs r USING (line)) d
 WHERE line < last_line;

-- name: stage_consents_drop
DELETE FROM stage_consents WHERE line = ANY ($1::bigint[]);

-- name: stage_consents_upsert
-- Consent history is append-only: a decision already recorded is left as it is.
WITH written AS (
    INSERT INTO consents (customer_id, purpose, granted, source, recorded_at)
    SELECT r.customer_id, s.purpose, s.granted, s.source, s.recorded_at
      FROM stage_consents s
      JOIN stage_refs r USING (line)
    ON CONFLICT (customer_id, purpose, source, recorded_at) DO NOTHING
    RETURNING 1
)
SELECT count(*) AS inserted, 0::bigint AS updated FROM written;

-- name: stage_products_create
CREATE TEMP TABLE stage_products (
    line      bigint PRIMARY KEY,
    sku       text NOT NULL,
    name      text NOT NULL,
    category  text NOT NULL,
    price     numeric(12, 2) NOT NULL,
    currency  text NOT NULL
) ON COMMIT DROP;

-- name: stage_products_problems
SELECT line, 'sku' AS field, 'superseded' AS code,
       'a later line (' || last_line || ') has the same sku' AS message
  FROM (SELECT line, max(line) OVER (PARTITION BY sku) AS last_line FROM stage_products) d
 WHERE line < last_line;

-- name: stage_products_drop
DELETE FROM stage_products WHERE line = ANY ($1::bigint[]);

-- name: stage_products_upsert
WITH written AS (
    INSERT INTO products AS t (sku, name, category, price, currency)
    SELECT sku, name, category, price, currency FROM stage_products
    ON CONFLICT (sku) DO UPDATE
       SET name = EXCLUDED.name, category = EXCLUDED.category, price = EXCLUDED.price,
           currency = EXCLUDED.currency
     WHERE (t.name, t.category, t.price, t.currency)
           IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.category, EXCLUDED.price, EXCLUDED.currency)
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS updated
  FROM written;

-- name: import_run_start
INSERT INTO import_runs (entity, source, files) VALUES ($1, $2, $3) RETURNING id;

-- name: import_run_finish
UPDATE import_runs
   SET finished_at = now(), status = $2, rows_read = $3, inserted = $4, updated = $5,
       unchanged = $6, rejected = $7
 WHERE id = $1;

-- name: lock_identity_keys
-- Serialise identity resolution per identity key (migration 0009); held until commit.
SELECT lock_identity_keys($1::text[], $2::text[], $3::text[]);

-- name: customer_matches
-- Existing customers sharing an identity with incoming records: external ids of the given
-- source, and e-mails and phones (any source, identities and profiles).
SELECT 'x' AS kind, value, customer_id
  FROM identities
 WHERE kind = 'external_id' AND source = $1 AND value = ANY ($2::text[])
UNION ALL
SELECT 'e', value, customer_id FROM identities WHERE kind = 'email' AND value = ANY ($3::text[])
UNION ALL
SELECT 'e', email, id FROM customers WHERE email = ANY ($3::text[])
UNION ALL
SELECT 'p', value, customer_id FROM identities WHERE kind = 'phone' AND value = ANY ($4::text[])
UNION ALL
SELECT 'p', phone, id FROM customers WHERE phone = ANY ($4::text[]);

-- name: customer_profiles_for_update
SELECT id, first_name, last_name, email, phone, country, birth_date, field_sources, created_at
  FROM customers
 WHERE id = ANY ($1::bigint[])
 ORDER BY id
   FOR UPDATE;

-- name: customer_ids_allocate
SELECT nextval(pg_get_serial_sequence('customers', 'id')) AS id FROM generate_series(1, $1);

-- name: stage_customers_create
CREATE TEMP TABLE stage_customers (
    id             bigint PRIMARY KEY,
    is_new         boolean NOT NULL,
    first_name     text,
    last_name      text,
    email          text,
    phone          text,
    country        text,
    birth_date     date,
    field_sources  text NOT NULL,
    observed_at    timestamptz NOT NULL,
    created_at     timestamptz  -- from the source; NULL: now (new), unchanged (existing)
) ON COMMIT DROP;

-- name: stage_customers_insert
INSERT INTO customers (id, first_name, last_name, email, phone, country, birth_date,
                       field_sources, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT id, first_name, last_name, email, phone, country, birth_date, field_sources::jsonb,
       coalesce(created_at, now()), greatest(now(), created_at)
  FROM stage_customers
 WHERE is_new;

-- name: stage_customers_update
UPDATE customers c
   SET first_name = s.first_name, last_name = s.last_name, email = s.email, phone = s.phone,
       country = s.country, birth_date = s.birth_date, field_sources = s.field_sources::jsonb,
       created_at = least(c.created_at, s.created_at),
       updated_at = greatest(now(), c.created_at)
  FROM stage_customers s
 WHERE s.id = c.id AND NOT s.is_new;

-- name: stage_identities_create
CREATE TEMP TABLE stage_identities (
    customer_id  bigint NOT NULL,
    kind         text NOT NULL,
    source       text NOT NULL,
    value        text NOT NULL
) ON COMMIT DROP;

-- name: stage_identities_insert
INSERT INTO identities (customer_id, kind, source, value)
SELECT DISTINCT ON (kind, source, value) customer_id, kind, source, value
  FROM stage_identities
ON CONFLICT (kind, source, value) DO NOTHING;
