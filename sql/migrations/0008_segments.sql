-- Segmentation: RFM scores as of a time (one snapshot, replaced by each `cdm rfm` run),
-- saved segments (typed definitions, compiled to parameterised SQL at query time) and their
-- sizes over time.
CREATE TABLE customer_rfm (
    customer_id   bigint PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
    as_of         timestamptz NOT NULL,
    recency_days  integer NOT NULL CHECK (recency_days >= 0),
    frequency     integer NOT NULL CHECK (frequency > 0),
    monetary      numeric(16, 2) NOT NULL CHECK (monetary >= 0),
    r             smallint NOT NULL CHECK (r BETWEEN 1 AND 5),
    f             smallint NOT NULL CHECK (f BETWEEN 1 AND 5),
    m             smallint NOT NULL CHECK (m BETWEEN 1 AND 5),
    segment       text NOT NULL
);
CREATE INDEX customer_rfm_segment_idx ON customer_rfm (segment);

CREATE TABLE segments (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    description  text CHECK (length(description) <= 2000),
    definition   jsonb NOT NULL CHECK (jsonb_typeof(definition) = 'object'),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE segment_sizes (
    segment_id   bigint NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT now(),
    size         bigint NOT NULL CHECK (size >= 0),
    PRIMARY KEY (segment_id, at)
);

