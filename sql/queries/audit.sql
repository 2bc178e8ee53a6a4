-- The audit log (migration 0006): appended by the API and CLI, read by admins.

-- name: audit_insert
INSERT INTO audit_log (actor, role, kind, operation, customer_ids, request_id, details)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: audit_insert_many
-- A batch as one statement: one array per column (customer ids as array literals, details as
-- JSON text), so PostgreSQL starts one executor for the batch rather than one per entry.
INSERT INTO audit_log (actor, role, kind, operation, customer_ids, request_id, details)
SELECT u.actor, u.role, u.kind, u.operation, u.customer_ids::bigint[], u.request_id,
       u.details::jsonb
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
              $7::text[]) AS u(actor, role, kind, operation, customer_ids, request_id, details);

-- name: audit_page
-- Newest first; every filter optional. Keyset pagination on (at, id).
SELECT id, at, actor, role, kind, operation, customer_ids, request_id, details
  FROM audit_log
 WHERE ($1::bigint IS NULL OR customer_ids @> ARRAY[$1::bigint])
   AND ($2::text IS NULL OR actor = $2)
   AND ($3::text IS NULL OR operation = $3)
   AND ($4::text IS NULL OR kind = $4)
   AND ($5::timestamptz IS NULL OR at >= $5)
   AND ($6::timestamptz IS NULL OR at < $6)
   AND ($7::timestamptz IS NULL OR (at, id) < ($7, $8::bigint))
 ORDER BY at DESC, id DESC
 LIMIT $9;

-- name: audit_count
SELECT count(*)
  FROM audit_log
 WHERE ($1::bigint IS NULL OR customer_ids @> ARRAY[$1::bigint])
   AND ($2::text IS NULL OR actor = $2)
   AND ($3::text IS NULL OR operation = $3)
   AND ($4::text IS NULL OR kind = $4)
   AND ($5::timestamptz IS NULL OR at >= $5)
   AND ($6::timestamptz IS NULL OR at < $6);
