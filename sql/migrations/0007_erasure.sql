-- Erasure (GDPR art. 17): a person's data is removed or anonymised in one transaction; the
-- customer row stays as a tombstone (no personal data, erased_at set) so de-identified
-- purchases keep their accounting meaning. Their identities are remembered only as salted
-- hashes, so re-importing old records cannot bring the person back.
ALTER TABLE customers ADD COLUMN erased_at timestamptz;

CREATE TABLE erasures (
    customer_id  bigint PRIMARY KEY REFERENCES customers (id),
    erased_at    timestamptz NOT NULL DEFAULT now(),
    erased_by    text NOT NULL,
    request_id   text,
    removed      jsonb NOT NULL CHECK (jsonb_typeof(removed) = 'object')  -- rows per table
);

-- A random salt made once per installation: identity hashes cannot be reversed by hashing a
-- list of known e-mail addresses without it.
CREATE TABLE installation_secrets (
    name   text PRIMARY KEY,
    value  bytea NOT NULL
);
INSERT INTO installation_secrets (name, value)
VALUES ('identity_hash_salt',
        decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

-- E-mails and phones identify a person whatever the source; other kinds only with theirs.
CREATE FUNCTION identity_hash(kind text, source text, value text) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256((SELECT s.value FROM installation_secrets s WHERE s.name = 'identity_hash_salt')
                  || convert_to(kind || chr(31)
                                || CASE WHEN kind IN ('email', 'phone') THEN '' ELSE source END
                                || chr(31) || value, 'UTF8'))
$$;

CREATE TABLE suppressed_identities (
    identity_hash  bytea PRIMARY KEY,
    erased_at      timestamptz NOT NULL DEFAULT now()
);
