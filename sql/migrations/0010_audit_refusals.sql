-- Refusals are audited too: a 401 or 403 is recorded as kind 'refusal' (who, if known; what
-- was asked; why it was refused), rate-limited by the API so a flood cannot fill the disk.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_kind_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_kind_check
    CHECK (kind IN ('mutation', 'read', 'command', 'refusal'));
