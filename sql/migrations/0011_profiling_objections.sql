-- Erasure and objections to profiling reach the models (GDPR art. 17, 21, 22).
--
-- profiling_refusals is THE definition of "has refused profiling": the customers whose latest
-- decision (by recorded_at, then id, as everywhere) for `personalization` or `profiling` is a
-- refusal. domain/consent.py states the same rule for one loaded customer; a test checks both
-- agree. Written without DISTINCT or GROUP BY so that PostgreSQL flattens it into the query
-- that uses it: a few customer ids become index lookups (consents_current_idx), everyone one
-- anti-join. A customer may appear once per refused purpose; ask it with EXISTS / IN.
CREATE VIEW profiling_refusals AS
SELECT k.customer_id
  FROM consents k
 WHERE k.purpose IN ('personalization', 'profiling')
   AND NOT k.granted
   AND NOT EXISTS (SELECT 1 FROM consents later
                    WHERE later.customer_id = k.customer_id
                      AND later.purpose = k.purpose
                      -- implied by the line above, but lets a scan of everyone hash only
                      -- these two purposes' decisions instead of all of them
                      AND later.purpose IN ('personalization', 'profiling')
                      AND (later.recorded_at, later.id) > (k.recorded_at, k.id));

-- The customers models may learn from and score: not erased, no objection to profiling.
-- Features, training populations, item statistics, batch and live scoring all read it, and
-- stored scores are only ever inserted for them. It is the state *now*, whatever as-of time a
-- query asks about: an objection stops all later processing, including training on the past.
CREATE VIEW modelled_customers AS
SELECT c.id, c.created_at
  FROM customers c
 WHERE c.erased_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM profiling_refusals r WHERE r.customer_id = c.id);

-- A refusal removes the customer's stored score and RFM scores (RFM evaluates a person's
-- behaviour: profiling too) in the transaction that records it, whatever records it
-- (setConsent, an import, a merge moving consents to a survivor): every reader of
-- customer_scores and customer_rfm (lists, segments, exports) is then right without a
-- consent condition of its own. Statement-level, like the purchase statistics: a chunk of consents costs one
-- DELETE, which looks only at customers given a decision for one of the two purposes.
CREATE FUNCTION forget_scores_of_objectors() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM customer_scores s
     WHERE s.customer_id IN (SELECT c.customer_id FROM changed c
                              WHERE c.purpose IN ('personalization', 'profiling'))
       AND s.customer_id IN (SELECT r.customer_id FROM profiling_refusals r);
    DELETE FROM customer_rfm s
     WHERE s.customer_id IN (SELECT c.customer_id FROM changed c
                              WHERE c.purpose IN ('personalization', 'profiling'))
       AND s.customer_id IN (SELECT r.customer_id FROM profiling_refusals r);
    RETURN NULL;
END
$$;

-- A trigger with transition tables takes one event, hence two.
CREATE TRIGGER consents_forget_scores_on_insert
    AFTER INSERT ON consents REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION forget_scores_of_objectors();
CREATE TRIGGER consents_forget_scores_on_update
    AFTER UPDATE ON consents REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION forget_scores_of_objectors();
