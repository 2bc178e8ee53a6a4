-- Materialised model scores (`cdm score --all`): one row per customer, for targeting lists
-- (filter and order customers by churn risk) and for tools outside CDM. Replaced as a whole
-- by each run, in one transaction, so the table always holds one consistent run.
CREATE TABLE customer_scores (
    customer_id                 bigint PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
    as_of                       timestamptz NOT NULL,
    churn_probability           float8 CHECK (churn_probability BETWEEN 0 AND 1),
    churn_model_version         integer,
    purchase_30d_probability    float8 CHECK (purchase_30d_probability BETWEEN 0 AND 1),
    expected_purchases          float8 CHECK (expected_purchases >= 0),
    expected_days_to_next       float8 CHECK (expected_days_to_next >= 0),
    next_purchase_model_version integer,
    recommended_product_ids     bigint[],
    upsell_model_version        integer,
    scored_at                   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX customer_scores_churn_idx ON customer_scores (churn_probability DESC, customer_id);
