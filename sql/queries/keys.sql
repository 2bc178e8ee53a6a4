-- API keys (migration 0005): created and revoked by `cdm keys`, checked on every request.

-- name: insert_api_key
INSERT INTO api_keys (name, role, prefix, secret_hash, expires_at)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, name, role, prefix, created_at, expires_at, revoked_at;

-- name: api_key_by_prefix
SELECT id, name, role, prefix, secret_hash, created_at, expires_at, revoked_at
  FROM api_keys
 WHERE prefix = $1;

-- name: list_api_keys
SELECT id, name, role, prefix, created_at, expires_at, revoked_at
  FROM api_keys
 ORDER BY id;

-- name: revoke_api_key
-- By id or prefix; revoking twice keeps the first time.
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
 WHERE id::text = $1 OR prefix = $1
RETURNING id, name, role, prefix, created_at, expires_at, revoked_at;
