-- Identity resolution: duplicate candidates (blocking), merges and their exact undo.
-- The blocking keys and the merge rules are explained in domain/matching.py and
-- domain/merging.py; sql/identity.py runs these statements in order, in one transaction.

-- name: dedupe_pairs
-- Candidate pairs over the whole table (the keys: domain/matching.py). Each customer gets up
-- to five blocking keys; a key shared by 2..$1 customers ($2 for name keys) pairs them up:
-- bigger blocks say little and grow quadratically. Each address is also paired with the next
-- one in byte order when their trigram similarity is at least $4 (sorted neighbourhood:
-- catches a typo late in an address). One scan of customers, sorts and merge joins, no
-- per-row index probes; keys compare byte-wise (COLLATE "C"), as equality is all blocking
-- needs and locale-aware sorting of a million keys is what would cost. Pairs whose birth
-- dates are both known and differ are never proposed. At most $3 pairs: those sharing most
-- identifier keys (e-mail, phone) first, then the most alike neighbouring addresses, then
-- those sharing most name keys.
WITH base AS (
    SELECT id, email, phone, country, birth_date,
           lower(first_name) AS first_name, lower(last_name) AS last_name,
           -- domain.matching.canonical_email's local part (addresses are stored lower-case)
           CASE WHEN split_part(email, '@', 2) IN ('gmail.com', 'googlemail.com')
                THEN replace(split_part(split_part(email, '@', 1), '+', 1), '.', '')
                ELSE split_part(split_part(email, '@', 1), '+', 1)
           END AS email_local
      FROM customers
), keyed AS (
    SELECT b.id, b.birth_date, k.kind, k.key COLLATE "C" AS key, k.weak
      FROM base b
     CROSS JOIN LATERAL (VALUES
           ('email', b.email, false),
           ('email_local', CASE WHEN length(b.email_local) >= 3 THEN b.email_local END, false),
           ('phone_suffix', right(b.phone, 8), false),
           ('name', b.first_name || ' ' || b.last_name, true),
           ('name_prefix', left(b.last_name, 4) || ' ' || left(b.first_name, 1) || ' '
                           || coalesce(b.country, ''), true)
          ) AS k(kind, key, weak)
     WHERE k.key IS NOT NULL
), sized AS (
    SELECT id, birth_date, kind, key, weak, count(*) OVER (PARTITION BY kind, key) AS n
      FROM keyed
), blocked AS (
    SELECT id, birth_date, kind, key, weak
      FROM sized
     WHERE n >= 2 AND n <= CASE WHEN weak THEN $2::int ELSE $1::int END
), ordered AS (
    SELECT id, birth_date, email,
           lead(id) OVER w AS next_id, lead(email) OVER w AS next_email,
           lead(birth_date) OVER w AS next_birth_date
      FROM customers
     WHERE email IS NOT NULL
    WINDOW w AS (ORDER BY email COLLATE "C", id)
), shared AS (
    SELECT a.id AS a_id, b.id AS b_id, a.kind, a.weak, NULL::real AS likeness
      FROM blocked a
      JOIN blocked b ON b.kind = a.kind AND b.key = a.key AND b.id > a.id
     WHERE a.birth_date IS NULL OR b.birth_date IS NULL OR a.birth_date = b.birth_date
    UNION ALL
    SELECT least(id, next_id), greatest(id, next_id), 'email_neighbour', true,
           similarity(email, next_email)
      FROM ordered
     WHERE next_email <> email AND similarity(email, next_email) >= $4::real
       AND (birth_date IS NULL OR next_birth_date IS NULL OR birth_date = next_birth_date)
), pairs AS (
    SELECT a_id, b_id, array_agg(kind ORDER BY kind) AS keys,
           count(*) FILTER (WHERE NOT weak) AS identifier_keys, max(likeness) AS likeness
      FROM shared
     GROUP BY a_id, b_id
)
SELECT a_id, b_id, keys
  FROM pairs
 ORDER BY identifier_keys DESC, likeness DESC NULLS LAST, cardinality(keys) DESC, a_id, b_id
 LIMIT $3;

-- name: dedupe_text_similarity
-- The pg_trgm similarity the `%` operator requires, for this transaction only.
SELECT set_config('pg_trgm.similarity_threshold', $1::text, true);

-- name: dedupe_pairs_for_customer
-- Candidate pairs of one customer ($1; a merged id resolves to its survivor), each branch
-- served by an index: the same e-mail or phone (b-tree), the same local part and similar
-- name-and-e-mail text (the trigram index on search_text; the threshold is set by
-- dedupe_text_similarity in the same transaction). At most $2 pairs.
WITH t AS (
    SELECT c.id, c.email, c.phone, c.birth_date, c.search_text,
           replace(replace(replace(split_part(c.email, '@', 1), '\', '\\'), '%', '\%'), '_', '\_')
               AS local_pattern
      FROM customers c
     WHERE c.id = coalesce((SELECT a.customer_id FROM customer_aliases a WHERE a.merged_id = $1),
                           $1)
), hits AS (
    SELECT c.id, 'email' AS kind FROM t JOIN customers c ON c.email = t.email
    UNION ALL
    SELECT c.id, 'phone' FROM t JOIN customers c ON c.phone = t.phone
    UNION ALL
    -- search_text ends in ' ' || email: the same local part at any domain.
    SELECT c.id, 'email_local' FROM t JOIN customers c
        ON length(t.local_pattern) >= 3 AND c.search_text LIKE '% ' || t.local_pattern || '@%'
    UNION ALL
    SELECT c.id, 'similar_text' FROM t JOIN customers c ON c.search_text % t.search_text
)
SELECT t.id AS a_id, h.id AS b_id, array_agg(DISTINCT h.kind ORDER BY h.kind) AS keys
  FROM t
  JOIN hits h ON h.id <> t.id
  JOIN customers b ON b.id = h.id
 WHERE t.birth_date IS NULL OR b.birth_date IS NULL OR t.birth_date = b.birth_date
 GROUP BY t.id, h.id, b.search_text, t.search_text
 ORDER BY count(DISTINCT h.kind) DESC, similarity(b.search_text, t.search_text) DESC, h.id
 LIMIT $2;

-- name: merge_lock_customers
-- The customers of a merge, locked (in id order, so concurrent merges cannot deadlock):
-- nothing can add rows to them or merge them elsewhere until this transaction ends.
SELECT id, first_name, last_name, email, phone, country, birth_date, field_sources,
       created_at, updated_at
  FROM customers
 WHERE id = ANY ($1::bigint[])
 ORDER BY id
   FOR UPDATE;

-- name: merge_aliases_of
SELECT merged_id, customer_id, merge_id
  FROM customer_aliases
 WHERE merged_id = ANY ($1::bigint[]);

-- name: merge_row_totals
-- Per customer, the rows it owns and the aliases pointing at it.
SELECT k.id AS customer_id,
       (SELECT count(*) FROM purchases x WHERE x.customer_id = k.id) AS purchases,
       (SELECT count(*) FROM interactions x WHERE x.customer_id = k.id) AS interactions,
       (SELECT count(*) FROM identities x WHERE x.customer_id = k.id) AS identities,
       (SELECT count(*) FROM consents x WHERE x.customer_id = k.id) AS consents,
       (SELECT count(*) FROM customer_aliases x WHERE x.customer_id = k.id) AS aliases
  FROM unnest($1::bigint[]) AS k(id);

-- name: merge_duplicates
-- Rows that would collide on a per-customer unique key once on one customer. $1 lists the
-- customers in priority order (survivor first): the first copy of each key is kept, the
-- others are dropped. Keys are compared as arrays, so ('a b', 'c') never equals ('a', 'b c').
WITH involved AS (
    SELECT id, ord FROM unnest($1::bigint[]) WITH ORDINALITY AS k(id, ord)
), copies AS (
    SELECT 'purchases' AS tbl, ARRAY[x.source, x.external_id] AS key, k.ord, x.customer_id, x.id
      FROM involved k JOIN purchases x ON x.customer_id = k.id
    UNION ALL
    SELECT 'interactions', ARRAY[x.source, x.external_id], k.ord, x.customer_id, x.id
      FROM involved k JOIN interactions x ON x.customer_id = k.id
    UNION ALL
    SELECT 'consents', ARRAY[x.purpose, x.source, x.recorded_at::text], k.ord, x.customer_id,
           x.id
      FROM involved k JOIN consents x ON x.customer_id = k.id
), ranked AS (
    SELECT tbl, key, customer_id, id,
           first_value(customer_id) OVER w AS kept_customer_id,
           first_value(id) OVER w AS kept_id,
           row_number() OVER w AS n
      FROM copies
    WINDOW w AS (PARTITION BY tbl, key ORDER BY ord, id)
)
SELECT tbl, array_to_string(key, ' / ') AS key, kept_customer_id, kept_id,
       customer_id AS dropped_customer_id, id AS dropped_id
  FROM ranked
 WHERE n > 1
 ORDER BY tbl, key, n;

-- name: merge_record
-- The merge's record, with the before-images of every customer involved (taken under the
-- locks of merge_lock_customers). Later steps add what they move and drop.
INSERT INTO merges (survivor_id, merged_ids, evidence, plan, before_images, merged_by)
SELECT $1, $2::bigint[], $3::jsonb, $4::jsonb,
       jsonb_build_object(
           'survivor', (SELECT to_jsonb(c) - 'search_text' FROM customers c WHERE c.id = $1),
           'merged', (SELECT jsonb_agg(to_jsonb(c) - 'search_text' ORDER BY c.id)
                        FROM customers c WHERE c.id = ANY ($2::bigint[]))),
       $5
RETURNING id;

-- name: merge_drop_duplicates
-- Delete the duplicate copies ($2 table, $3 customer, $4 row id) and keep them, whole, in
-- the merge's before-images (the undo inserts them again, ids included).
WITH doomed AS (
    SELECT * FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS d(tbl, customer_id, id)
), p AS (
    DELETE FROM purchases x USING doomed d
     WHERE d.tbl = 'purchases' AND x.customer_id = d.customer_id AND x.id = d.id
    RETURNING x.*
), i AS (
    DELETE FROM interactions x USING doomed d
     WHERE d.tbl = 'interactions' AND x.customer_id = d.customer_id AND x.id = d.id
    RETURNING x.*
), c AS (
    DELETE FROM consents x USING doomed d
     WHERE d.tbl = 'consents' AND x.customer_id = d.customer_id AND x.id = d.id
    RETURNING x.*
)
UPDATE merges
   SET before_images = before_images || jsonb_build_object('dropped', jsonb_build_object(
           'purchases', (SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.id), '[]') FROM p),
           'interactions', (SELECT coalesce(jsonb_agg(to_jsonb(i) ORDER BY i.id), '[]') FROM i),
           'consents', (SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.id), '[]') FROM c)))
 WHERE id = $1
RETURNING (SELECT count(*) FROM p) + (SELECT count(*) FROM i) + (SELECT count(*) FROM c)
          AS dropped;

-- name: merge_move_rows
-- Move every row of the merged customers ($3) to the survivor ($2) and re-point aliases
-- that named a merged customer (no alias chains), recording each row's id and former owner.
-- The purchases triggers refresh customer_purchase_stats for both sides.
WITH p AS (
    UPDATE purchases x SET customer_id = $2
      FROM purchases o
     WHERE o.customer_id = ANY ($3::bigint[]) AND x.customer_id = o.customer_id AND x.id = o.id
    RETURNING x.id, o.customer_id
), i AS (
    UPDATE interactions x SET customer_id = $2
      FROM interactions o
     WHERE o.customer_id = ANY ($3::bigint[]) AND x.customer_id = o.customer_id AND x.id = o.id
    RETURNING x.id, o.customer_id
), n AS (
    UPDATE identities x SET customer_id = $2
      FROM identities o
     WHERE o.customer_id = ANY ($3::bigint[]) AND x.id = o.id
    RETURNING x.id, o.customer_id
), c AS (
    UPDATE consents x SET customer_id = $2
      FROM consents o
     WHERE o.customer_id = ANY ($3::bigint[]) AND x.customer_id = o.customer_id AND x.id = o.id
    RETURNING x.id, o.customer_id
), a AS (
    UPDATE customer_aliases x SET customer_id = $2
      FROM customer_aliases o
     WHERE o.customer_id = ANY ($3::bigint[]) AND x.merged_id = o.merged_id
    RETURNING x.merged_id, o.customer_id
)
UPDATE merges
   SET before_images = before_images || jsonb_build_object('moved', jsonb_build_object(
           'purchases', (SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.id), '[]') FROM p),
           'interactions', (SELECT coalesce(jsonb_agg(to_jsonb(i) ORDER BY i.id), '[]') FROM i),
           'identities', (SELECT coalesce(jsonb_agg(to_jsonb(n) ORDER BY n.id), '[]') FROM n),
           'consents', (SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.id), '[]') FROM c),
           'aliases', (SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.merged_id), '[]')
                         FROM a)))
 WHERE id = $1
RETURNING (SELECT count(*) FROM p) AS purchases, (SELECT count(*) FROM i) AS interactions,
          (SELECT count(*) FROM n) AS identities, (SELECT count(*) FROM c) AS consents,
          (SELECT count(*) FROM a) AS aliases;

-- name: merge_update_survivor
-- The survivor's profile as planned; its row afterwards is kept so an undo can tell whether
-- anything changed it since.
WITH s AS (
    UPDATE customers c
       SET first_name = $3, last_name = $4, email = $5, phone = $6, country = $7,
           birth_date = $8, field_sources = $9::jsonb, created_at = $10,
           updated_at = greatest(now(), $10)
     WHERE c.id = $2
    RETURNING to_jsonb(c) - 'search_text' AS image
)
UPDATE merges
   SET before_images = before_images || jsonb_build_object('survivor_after', (SELECT image FROM s))
 WHERE id = $1;

-- name: merge_finish
-- The merged customers go; their ids become aliases of the survivor.
WITH gone AS (
    DELETE FROM customers WHERE id = ANY ($3::bigint[]) RETURNING id
)
INSERT INTO customer_aliases (merged_id, customer_id, merge_id)
SELECT id, $2, $1 FROM gone;

-- name: unmerge_lock
SELECT id, survivor_id, merged_ids, undone_at, before_images ? 'erased' AS erased
  FROM merges
 WHERE id = $1
   FOR UPDATE;

-- name: unmerge_lock_survivor
SELECT id FROM customers WHERE id = $1 FOR UPDATE;

-- name: unmerge_state
-- Whether merge $1 can still be undone exactly (see domain.merging.unmerge_conflict).
SELECT (SELECT min(l.id)
          FROM merges l
         WHERE l.id > m.id AND l.undone_at IS NULL
           AND (l.survivor_id = m.survivor_id OR l.merged_ids @> ARRAY[m.survivor_id]))
           AS later_merge_id,
       EXISTS (SELECT 1 FROM customers c WHERE c.id = m.survivor_id) AS survivor_exists,
       coalesce((SELECT (to_jsonb(c) - 'search_text') = m.before_images -> 'survivor_after'
                   FROM customers c WHERE c.id = m.survivor_id), false) AS survivor_unchanged,
       ARRAY(SELECT c.id FROM customers c WHERE c.id = ANY (m.merged_ids) ORDER BY c.id)
           AS ids_taken,
       (SELECT count(*)
          FROM jsonb_to_recordset(m.before_images #> '{moved,purchases}') r(id bigint)
         WHERE NOT EXISTS (SELECT 1 FROM purchases x
                            WHERE x.customer_id = m.survivor_id AND x.id = r.id))
     + (SELECT count(*)
          FROM jsonb_to_recordset(m.before_images #> '{moved,interactions}') r(id bigint)
         WHERE NOT EXISTS (SELECT 1 FROM interactions x
                            WHERE x.customer_id = m.survivor_id AND x.id = r.id))
     + (SELECT count(*)
          FROM jsonb_to_recordset(m.before_images #> '{moved,identities}') r(id bigint)
         WHERE NOT EXISTS (SELECT 1 FROM identities x
                            WHERE x.customer_id = m.survivor_id AND x.id = r.id))
     + (SELECT count(*)
          FROM jsonb_to_recordset(m.before_images #> '{moved,consents}') r(id bigint)
         WHERE NOT EXISTS (SELECT 1 FROM consents x
                            WHERE x.customer_id = m.survivor_id AND x.id = r.id))
     + (SELECT count(*)
          FROM jsonb_to_recordset(m.before_images #> '{moved,aliases}') r(merged_id bigint)
         WHERE NOT EXISTS (SELECT 1 FROM customer_aliases x
                            WHERE x.customer_id = m.survivor_id AND x.merged_id = r.merged_id))
           AS rows_missing
  FROM merges m
 WHERE m.id = $1;

-- name: unmerge_restore_customers
-- The merged customers again, with their own ids and exactly their former rows.
INSERT INTO customers (id, first_name, last_name, email, phone, country, birth_date,
                       field_sources, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT r.id, r.first_name, r.last_name, r.email, r.phone, r.country, r.birth_date,
       r.field_sources, r.created_at, r.updated_at
  FROM merges m
 CROSS JOIN LATERAL jsonb_populate_recordset(NULL::customers, m.before_images -> 'merged') r
 WHERE m.id = $1
RETURNING id;

-- name: unmerge_move_back
-- Exactly the rows the merge moved go back to their former owners; the merge's own aliases
-- go, and aliases it re-pointed point at their former customers again.
WITH m AS (
    SELECT id, survivor_id, before_images -> 'moved' AS moved FROM merges WHERE id = $1
), p AS (
    UPDATE purchases x SET customer_id = r.customer_id
      FROM m, jsonb_to_recordset(m.moved -> 'purchases') r(id bigint, customer_id bigint)
     WHERE x.customer_id = m.survivor_id AND x.id = r.id
    RETURNING x.id
), i AS (
    UPDATE interactions x SET customer_id = r.customer_id
      FROM m, jsonb_to_recordset(m.moved -> 'interactions') r(id bigint, customer_id bigint)
     WHERE x.customer_id = m.survivor_id AND x.id = r.id
    RETURNING x.id
), n AS (
    UPDATE identities x SET customer_id = r.customer_id
      FROM m, jsonb_to_recordset(m.moved -> 'identities') r(id bigint, customer_id bigint)
     WHERE x.customer_id = m.survivor_id AND x.id = r.id
    RETURNING x.id
), c AS (
    UPDATE consents x SET customer_id = r.customer_id
      FROM m, jsonb_to_recordset(m.moved -> 'consents') r(id bigint, customer_id bigint)
     WHERE x.customer_id = m.survivor_id AND x.id = r.id
    RETURNING x.id
), own AS (
    DELETE FROM customer_aliases x USING m WHERE x.merge_id = m.id RETURNING x.merged_id
), a AS (
    UPDATE customer_aliases x SET customer_id = r.customer_id
      FROM m, jsonb_to_recordset(m.moved -> 'aliases') r(merged_id bigint, customer_id bigint)
     WHERE x.merged_id = r.merged_id AND x.customer_id = m.survivor_id
    RETURNING x.merged_id
)
SELECT (SELECT count(*) FROM p) + (SELECT count(*) FROM i) + (SELECT count(*) FROM n)
     + (SELECT count(*) FROM c) + (SELECT count(*) FROM a) AS moved_back,
       (SELECT count(*) FROM own) AS aliases_removed;

-- name: unmerge_restore_dropped
-- The duplicate copies the merge dropped, inserted again whole (ids included).
WITH m AS (
    SELECT before_images -> 'dropped' AS dropped FROM merges WHERE id = $1
), p AS (
    INSERT INTO purchases OVERRIDING SYSTEM VALUE
    SELECT r.* FROM m, jsonb_populate_recordset(NULL::purchases, m.dropped -> 'purchases') r
    RETURNING id
), i AS (
    INSERT INTO interactions OVERRIDING SYSTEM VALUE
    SELECT r.* FROM m, jsonb_populate_recordset(NULL::interactions, m.dropped -> 'interactions') r
    RETURNING id
), c AS (
    INSERT INTO consents OVERRIDING SYSTEM VALUE
    SELECT r.* FROM m, jsonb_populate_recordset(NULL::consents, m.dropped -> 'consents') r
    RETURNING id
)
SELECT (SELECT count(*) FROM p) + (SELECT count(*) FROM i) + (SELECT count(*) FROM c)
           AS restored;

-- name: unmerge_restore_survivor
UPDATE customers c
   SET first_name = r.first_name, last_name = r.last_name, email = r.email, phone = r.phone,
       country = r.country, birth_date = r.birth_date, field_sources = r.field_sources,
       created_at = r.created_at, updated_at = r.updated_at
  FROM merges m
 CROSS JOIN LATERAL jsonb_populate_record(NULL::customers, m.before_images -> 'survivor') r
 WHERE m.id = $1 AND c.id = m.survivor_id;

-- name: unmerge_mark
UPDATE merges SET undone_at = now(), undone_by = $2 WHERE id = $1;
