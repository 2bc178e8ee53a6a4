-- Core customer database: customers and their identities and consents, products,
-- purchases and interactions.
--
-- Distribution note (see docs/design.md): every customer-owned table carries customer_id
-- and includes it in its primary key and unique constraints, so a Citus scale-out can
-- distribute those tables by customer_id and co-locate them. products is a small reference
-- table; identities is the deliberate global lookup table.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- ISO 4217 shape; the domain layer checks the code against the real list.
CREATE DOMAIN currency_code AS char(3) CHECK (VALUE ~ '^[A-Z]{3}$');
-- ISO 3166-1 alpha-2 shape; the domain layer checks the code against the real list.
CREATE DOMAIN country_code AS char(2) CHECK (VALUE ~ '^[A-Z]{2}$');

CREATE TABLE customers (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_name   text CHECK (first_name <> ''),
    last_name    text CHECK (last_name <> ''),
    email        text CHECK (email <> '' AND email = lower(email)),
    phone        text CHECK (phone ~ '^\+[1-9][0-9]{3,14}$'),  -- E.164
    country      country_code,
    birth_date   date CHECK (birth_date >= DATE '1900-01-01'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (updated_at >= created_at),
    -- Lower-cased text the list search matches against (trigram-indexed below).
    search_text  text GENERATED ALWAYS AS (
        lower(coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' '
              || coalesce(email, ''))
    ) STORED
);
CREATE INDEX customers_created_idx ON customers (created_at, id);
CREATE INDEX customers_country_created_idx ON customers (country, created_at, id);
CREATE INDEX customers_email_idx ON customers (email);
CREATE INDEX customers_search_trgm_idx ON customers USING gin (search_text gin_trgm_ops);

CREATE TABLE identities (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('email', 'phone', 'external_id', 'cookie', 'device')),
    source       text NOT NULL CHECK (source ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    value        text NOT NULL CHECK (value <> ''),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, source, value)
);
CREATE INDEX identities_customer_idx ON identities (customer_id);
-- externalId lookups that do not name the source.
CREATE INDEX identities_value_idx ON identities (value, kind);

CREATE TABLE products (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku          text NOT NULL UNIQUE CHECK (sku <> ''),
    name         text NOT NULL CHECK (name <> ''),
    category     text NOT NULL CHECK (category <> ''),
    price        numeric(12, 2) NOT NULL CHECK (price >= 0),
    currency     currency_code NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_category_idx ON products (category, id);

CREATE TABLE purchases (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    customer_id   bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    product_id    bigint REFERENCES products (id),
    order_ref     text CHECK (order_ref <> ''),
    quantity      integer NOT NULL DEFAULT 1 CHECK (quantity > 0),
    unit_price    numeric(12, 2) CHECK (unit_price >= 0),
    amount        numeric(14, 2) NOT NULL CHECK (amount >= 0),
    currency      currency_code NOT NULL,
    channel       text NOT NULL CHECK (channel IN ('web', 'store', 'app', 'phone', 'marketplace', 'other')),
    purchased_at  timestamptz NOT NULL,
    source        text NOT NULL CHECK (source <> ''),
    external_id   text NOT NULL CHECK (external_id <> ''),
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, id),
    UNIQUE (customer_id, source, external_id)
);
-- A customer's purchases, newest first (connections, summaries, features).
CREATE INDEX purchases_customer_time_idx ON purchases (customer_id, purchased_at DESC, id DESC);
-- Time-range scans across customers (analytics, "purchased since" filters).
CREATE INDEX purchases_time_idx ON purchases (purchased_at);
CREATE INDEX purchases_product_idx ON purchases (product_id) WHERE product_id IS NOT NULL;

CREATE TABLE interactions (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    customer_id  bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    occurred_at  timestamptz NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('web', 'email', 'support', 'social', 'store', 'app', 'phone')),
    kind         text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,62}$'),
    properties   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(properties) = 'object'),
    source       text NOT NULL CHECK (source <> ''),
    external_id  text NOT NULL CHECK (external_id <> ''),
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, id),
    UNIQUE (customer_id, source, external_id)
);
CREATE INDEX interactions_customer_time_idx ON interactions (customer_id, occurred_at DESC, id DESC);
CREATE INDEX interactions_kind_time_idx ON interactions (kind, occurred_at);

CREATE TABLE consents (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    customer_id  bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    purpose      text NOT NULL CHECK (purpose ~ '^[a-z][a-z0-9_]{0,62}$'),
    granted      boolean NOT NULL,
    source       text NOT NULL CHECK (source <> ''),
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, id)
);
-- History is kept; the current state per purpose is the newest row.
CREATE INDEX consents_current_idx ON consents (customer_id, purpose, recorded_at DESC, id DESC);

-- Per-customer purchase aggregates, kept in step with purchases by a statement-level
-- trigger (one set-based recompute per statement, so COPY and batch inserts stay fast).
-- They make "order by total spend / last purchase" and "minimum spend" filters index scans
-- on a million customers instead of aggregating every purchase per request.
CREATE TABLE customer_purchase_stats (
    customer_id         bigint PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
    purchase_count      integer NOT NULL CHECK (purchase_count > 0),
    order_count         integer NOT NULL CHECK (order_count > 0),
    total_spend         numeric(16, 2) NOT NULL CHECK (total_spend >= 0),
    first_purchase_at   timestamptz NOT NULL,
    last_purchase_at    timestamptz NOT NULL,
    distinct_products   integer NOT NULL,
    distinct_categories integer NOT NULL,
    currencies          text[] NOT NULL
);
CREATE INDEX customer_stats_spend_idx ON customer_purchase_stats (total_spend DESC, customer_id DESC);
CREATE INDEX customer_stats_last_idx ON customer_purchase_stats (last_purchase_at DESC, customer_id DESC);

CREATE FUNCTION refresh_customer_purchase_stats(ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM customer_purchase_stats s
     WHERE s.customer_id = ANY (ids)
       AND NOT EXISTS (SELECT 1 FROM purchases p WHERE p.customer_id = s.customer_id);
    INSERT INTO customer_purchase_stats AS s
    SELECT p.customer_id,
           count(*),
           count(DISTINCT coalesce(p.order_ref, p.external_id)),
           sum(p.amount),
           min(p.purchased_at),
           max(p.purchased_at),
           count(DISTINCT p.product_id),
           count(DISTINCT pr.category),
           array_agg(DISTINCT p.currency::text ORDER BY p.currency::text)
      FROM purchases p
      LEFT JOIN products pr ON pr.id = p.product_id
     WHERE p.customer_id = ANY (ids)
     GROUP BY p.customer_id
    ON CONFLICT (customer_id) DO UPDATE
       SET purchase_count = EXCLUDED.purchase_count,
           order_count = EXCLUDED.order_count,
           total_spend = EXCLUDED.total_spend,
           first_purchase_at = EXCLUDED.first_purchase_at,
           last_purchase_at = EXCLUDED.last_purchase_at,
           distinct_products = EXCLUDED.distinct_products,
           distinct_categories = EXCLUDED.distinct_categories,
           currencies = EXCLUDED.currencies;
$$;

CREATE FUNCTION purchases_changed_ins() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_customer_purchase_stats(ARRAY(SELECT DISTINCT customer_id FROM new_rows));
    RETURN NULL;
END $$;

CREATE FUNCTION purchases_changed_del() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_customer_purchase_stats(ARRAY(SELECT DISTINCT customer_id FROM old_rows));
    RETURN NULL;
END $$;

CREATE FUNCTION purchases_changed_upd() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_customer_purchase_stats(ARRAY(
        SELECT customer_id FROM new_rows UNION SELECT customer_id FROM old_rows));
    RETURN NULL;
END $$;

CREATE TRIGGER purchases_stats_ins AFTER INSERT ON purchases
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION purchases_changed_ins();
CREATE TRIGGER purchases_stats_upd AFTER UPDATE ON purchases
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION purchases_changed_upd();
CREATE TRIGGER purchases_stats_del AFTER DELETE ON purchases
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION purchases_changed_del();
