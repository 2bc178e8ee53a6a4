-- Data collection: survivorship per profile field, idempotent consents, merges that can be
-- undone, aliases that keep merged ids resolving, and a record of every import run.

-- Which source gave each profile field its current value, and when:
-- {"email": {"source": "crm", "at": "2025-01-31T10:00:00+00:00"}, ...}
ALTER TABLE customers
    ADD COLUMN field_sources jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(field_sources) = 'object');

-- Identity resolution matches incoming records on phone as well as e-mail.
CREATE INDEX customers_phone_idx ON customers (phone) WHERE phone IS NOT NULL;

-- A consent decision is identified by who, what, where from and when: importing the same
-- history twice adds nothing.
ALTER TABLE consents
    ADD CONSTRAINT consents_natural_key UNIQUE (customer_id, purpose, source, recorded_at);

CREATE TABLE merges (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- No foreign keys: the history of a merge outlives the rows it talks about.
    survivor_id    bigint NOT NULL,
    merged_ids     bigint[] NOT NULL CHECK (cardinality(merged_ids) > 0),
    evidence       jsonb NOT NULL,
    plan           jsonb NOT NULL,
    -- Everything needed to undo it exactly: the merged customers' rows, the survivor's row
    -- before the merge, and the ids of every row that moved or was dropped as a duplicate.
    before_images  jsonb NOT NULL,
    merged_by      text NOT NULL,
    merged_at      timestamptz NOT NULL DEFAULT now(),
    undone_at      timestamptz,
    undone_by      text,
    CHECK (NOT (survivor_id = ANY (merged_ids)))
);
CREATE INDEX merges_survivor_idx ON merges (survivor_id);
CREATE INDEX merges_merged_idx ON merges USING gin (merged_ids);

-- A merged customer's id keeps resolving to the survivor (lookups by an old id still work).
-- Like identities, a global lookup table (by the old id), not distributed by customer.
CREATE TABLE customer_aliases (
    merged_id    bigint PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    merge_id     bigint NOT NULL REFERENCES merges (id),
    CHECK (merged_id <> customer_id)
);
CREATE INDEX customer_aliases_customer_idx ON customer_aliases (customer_id);

CREATE TABLE import_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity       text NOT NULL CHECK (entity IN
                     ('customers', 'products', 'purchases', 'interactions', 'consents')),
    source       text NOT NULL,
    files        text[] NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    status       text NOT NULL DEFAULT 'running'
                     CHECK (status IN ('running', 'succeeded', 'failed')),
    rows_read    bigint NOT NULL DEFAULT 0,
    inserted     bigint NOT NULL DEFAULT 0,
    updated      bigint NOT NULL DEFAULT 0,
    unchanged    bigint NOT NULL DEFAULT 0,
    rejected     bigint NOT NULL DEFAULT 0
);
