-- A generation number of the customers table, so that an exact count of a filtered list
-- (a search, a created range) can be remembered and reused until the table changes, instead
-- of re-counting the matching rows on every page of the same list (api/remembered_counts.py).
--
-- The generation is a counter of migration 0012's kind: every statement that changes rows of
-- `customers` (and every TRUNCATE) adds 1, as a delta row, so writers never wait on each
-- other here. It only grows (folding keeps the sum): a reader's snapshot sees as generation
-- the number of change statements committed before it, and a later snapshot sees a superset
-- of an earlier one's, so two snapshots with the same generation see the same customers.

ALTER TABLE count_deltas DROP CONSTRAINT count_deltas_counter_check;
ALTER TABLE count_deltas ADD CONSTRAINT count_deltas_counter_check
    CHECK (counter IN ('customers', 'customers_by_country', 'products', 'customers_changes'));

CREATE FUNCTION customers_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed boolean;
BEGIN
    -- A statement that touched no row changed nothing. (One query per branch: a transition
    -- table exists only for the events that have it.)
    IF TG_OP = 'TRUNCATE' THEN
        changed := true;
    ELSIF TG_OP = 'INSERT' THEN
        changed := EXISTS (SELECT FROM new_rows);
    ELSE
        changed := EXISTS (SELECT FROM old_rows);
    END IF;
    IF changed THEN
        PERFORM count_deltas_add('customers_changes', ARRAY[''], ARRAY[1::bigint]);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER customers_changes_ins AFTER INSERT ON customers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION customers_changed();
CREATE TRIGGER customers_changes_upd AFTER UPDATE ON customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION customers_changed();
CREATE TRIGGER customers_changes_del AFTER DELETE ON customers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION customers_changed();
-- counts_truncated (0012) resets the counts but not this: a TRUNCATE moves the generation on
-- like any other change, so a generation number never comes back.
CREATE TRIGGER customers_changes_truncate AFTER TRUNCATE ON customers
    FOR EACH STATEMENT EXECUTE FUNCTION customers_changed();
