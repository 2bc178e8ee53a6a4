-- One person per identity under concurrency (docs/design.md, "One person per identity").
-- Whoever resolves identities to customers (matching a record, creating a customer for an
-- unseen external id, erasing a person) first locks the identity keys involved, for the rest
-- of its transaction. Two writers naming the same e-mail, phone or external id then run one
-- after the other, and the second one's lookup (a new snapshot: READ COMMITTED) finds the
-- customer the first one created.
--
-- A small batch takes the shared "identity resolution" lock and one exclusive lock per key,
-- in hash order so two batches can never wait on each other in a cycle. A batch of more than
-- 256 keys (an import chunk) takes that lock exclusively instead: one lock instead of tens of
-- thousands, which PostgreSQL's shared lock table could not hold. Bulk chunks therefore
-- resolve identities one at a time; small writes on different people still run side by side.
-- The key of a kind is the one identity_hash uses: e-mails and phones whatever the source,
-- other kinds within their source.
CREATE FUNCTION lock_identity_keys(kinds text[], sources text[], identity_values text[])
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    key bigint;
BEGIN
    IF cardinality(kinds) > 256 THEN
        PERFORM pg_advisory_xact_lock(4408397, 1);  -- 4408397: 'CDM' as an integer
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(4408397, 1);
    FOR key IN
        SELECT DISTINCT hashtextextended(
                   k.kind || chr(31)
                   || CASE WHEN k.kind IN ('email', 'phone') THEN '' ELSE k.source END
                   || chr(31) || k.value, 0)
          FROM unnest(kinds, sources, identity_values) AS k(kind, source, value)
         ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(key);
    END LOOP;
END
$$;
