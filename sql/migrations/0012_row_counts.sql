-- Exact row counts without scanning: `totalCount` of an unfiltered (or country-only)
-- customer list and of the whole catalogue read a handful of delta rows instead of counting
-- a million customers.
--
-- Delta rows, not one counter row (see docs/design.md, "Exact counts"): every statement that
-- changes what counts INSERTs its net change; a count is the sum of its rows. Concurrent
-- imports therefore never wait on each other here (inserts take no lock on existing rows),
-- and cannot deadlock. Writers fold the rows back together opportunistically
-- (count_deltas_fold, SKIP LOCKED: a fold never waits either).
--
-- Counters:
--   'customers'             key ''       count(*) FROM customers WHERE erased_at IS NULL
--   'customers_by_country'  key country  the same, per country (NULL countries not kept)
--   'products'              key ''       count(*) FROM products

CREATE TABLE count_deltas (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    counter  text NOT NULL CHECK (counter IN ('customers', 'customers_by_country', 'products')),
    key      text NOT NULL DEFAULT '',
    delta    bigint NOT NULL
);
CREATE INDEX count_deltas_key_idx ON count_deltas (counter, key) INCLUDE (delta);
-- Small and churning: vacuum it often so reads stay a few index entries.
ALTER TABLE count_deltas SET (autovacuum_vacuum_threshold = 200,
                              autovacuum_vacuum_scale_factor = 0);

-- Fold the committed rows of one counter key into one row. Rows another transaction is
-- folding (or has just written, uncommitted: invisible here) are skipped, not waited for, so
-- each row's delta moves exactly once. Only under READ COMMITTED: a REPEATABLE READ writer
-- would get a serialisation error locking a row a fold has deleted since its snapshot.
CREATE FUNCTION count_deltas_fold(p_counter text, p_key text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RETURN;
    END IF;
    ids := ARRAY(SELECT id FROM count_deltas
                  WHERE counter = p_counter AND key = p_key
                    FOR UPDATE SKIP LOCKED);
    IF cardinality(ids) < 2 THEN
        RETURN;
    END IF;
    WITH gone AS (DELETE FROM count_deltas WHERE id = ANY (ids) RETURNING delta)
    INSERT INTO count_deltas (counter, key, delta)
    SELECT p_counter, p_key, sum(delta) FROM gone HAVING sum(delta) <> 0;
END $$;

-- Record net changes (NULL or zero ones are dropped) and fold keys that have gathered rows.
-- The fold threshold keeps a single-row write cheap (one INSERT) and reads to ~16 rows.
CREATE FUNCTION count_deltas_add(p_counter text, keys text[], deltas bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    k text;
BEGIN
    INSERT INTO count_deltas (counter, key, delta)
    SELECT p_counter, x.key, x.delta
      FROM unnest(keys, deltas) AS x(key, delta)
     WHERE x.key IS NOT NULL AND x.delta <> 0;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RETURN;  -- see count_deltas_fold; a later writer folds
    END IF;
    FOR k IN
        SELECT c.key FROM count_deltas c
         WHERE c.counter = p_counter AND c.key = ANY (keys)
         GROUP BY c.key HAVING count(*) >= 16
    LOOP
        PERFORM count_deltas_fold(p_counter, k);
    END LOOP;
END $$;

-- Net change per country among not-erased customers, from the statement's transition tables.
-- An UPDATE counts out its old rows and in its new ones: an erasure (erased_at set) or a
-- country change nets to a change; any other update nets to nothing and writes no row.
CREATE FUNCTION customers_counted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    countries text[];
    deltas bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(d.country), array_agg(d.n) INTO countries, deltas
          FROM (SELECT country::text, count(*) AS n FROM new_rows
                 WHERE erased_at IS NULL GROUP BY country) d;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(d.country), array_agg(d.n) INTO countries, deltas
          FROM (SELECT country::text, -count(*) AS n FROM old_rows
                 WHERE erased_at IS NULL GROUP BY country) d;
    ELSE
        SELECT array_agg(d.country), array_agg(d.n) INTO countries, deltas
          FROM (SELECT x.country, sum(x.s) AS n
                  FROM (SELECT country::text, 1 AS s FROM new_rows WHERE erased_at IS NULL
                        UNION ALL
                        SELECT country::text, -1 FROM old_rows WHERE erased_at IS NULL) x
                 GROUP BY x.country
                HAVING sum(x.s) <> 0) d;
    END IF;
    IF countries IS NOT NULL THEN
        PERFORM count_deltas_add('customers', ARRAY[''],
                                 ARRAY[(SELECT sum(n) FROM unnest(deltas) n)::bigint]);
        PERFORM count_deltas_add('customers_by_country', countries, deltas);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION products_counted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO n FROM new_rows;
    ELSE
        SELECT -count(*) INTO n FROM old_rows;
    END IF;
    PERFORM count_deltas_add('products', ARRAY[''], ARRAY[n]);
    RETURN NULL;
END $$;

-- TRUNCATE holds an exclusive lock on the table, so no writer's delta is in flight.
CREATE FUNCTION counts_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'customers' THEN
        DELETE FROM count_deltas WHERE counter IN ('customers', 'customers_by_country');
    ELSE
        DELETE FROM count_deltas WHERE counter = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END $$;

-- Counting the existing rows and creating the triggers under one lock that keeps writers
-- out (readers go on) makes the start exact: no write is missed or counted twice.
LOCK TABLE customers, products IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER customers_count_ins AFTER INSERT ON customers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION customers_counted();
CREATE TRIGGER customers_count_upd AFTER UPDATE ON customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION customers_counted();
CREATE TRIGGER customers_count_del AFTER DELETE ON customers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION customers_counted();
CREATE TRIGGER customers_count_truncate AFTER TRUNCATE ON customers
    FOR EACH STATEMENT EXECUTE FUNCTION counts_truncated();

CREATE TRIGGER products_count_ins AFTER INSERT ON products
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION products_counted();
CREATE TRIGGER products_count_del AFTER DELETE ON products
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION products_counted();
CREATE TRIGGER products_count_truncate AFTER TRUNCATE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION counts_truncated();

INSERT INTO count_deltas (counter, key, delta)
SELECT 'customers', '', count(*) FROM customers WHERE erased_at IS NULL HAVING count(*) > 0;
INSERT INTO count_deltas (counter, key, delta)
SELECT 'customers_by_country', country::text, count(*)
  FROM customers WHERE erased_at IS NULL AND country IS NOT NULL GROUP BY country;
INSERT INTO count_deltas (counter, key, delta)
SELECT 'products', '', count(*) FROM products HAVING count(*) > 0;
