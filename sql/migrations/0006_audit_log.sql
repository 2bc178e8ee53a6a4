-- The audit log: who did what to whose data, and who read whose personal data.
-- Entries name people by customer id only, never by their data, so the log can outlive an
-- erasure. Append-only for everyone: triggers refuse UPDATE, DELETE and TRUNCATE whatever the
-- role's privileges (only a superuser who disables triggers could rewrite history).
CREATE TABLE audit_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    actor         text NOT NULL CHECK (actor <> ''),
    role          text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('mutation', 'read', 'command')),
    operation     text NOT NULL CHECK (operation <> ''),
    customer_ids  bigint[] NOT NULL DEFAULT '{}',
    request_id    text,
    details       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object')
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_customers_idx ON audit_log USING gin (customer_ids);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
