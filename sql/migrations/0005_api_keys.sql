-- API keys: who is calling, with which role. A key is shown once at creation; only its
-- SHA-256 is kept (keys are 32 random bytes, so a fast hash is enough). The prefix is the
-- key's public, listable handle and the lookup index.
CREATE TABLE api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role        text NOT NULL
                CHECK (role IN ('admin', 'analyst', 'app', 'personalization', 'data_scientist')),
    prefix      text NOT NULL UNIQUE,
    secret_hash bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);
