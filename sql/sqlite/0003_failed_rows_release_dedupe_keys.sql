-- A permanently failed job or message no longer reserves its dedupe key, so the same
-- intent can be scheduled again.
DROP INDEX IF EXISTS idx_jobs_dedupe_key;
CREATE UNIQUE INDEX idx_jobs_dedupe_key ON jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status NOT IN ('done', 'canceled', 'failed');

DROP INDEX IF EXISTS idx_outbox_dedupe_key;
CREATE UNIQUE INDEX idx_outbox_dedupe_key ON outbox_messages (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status NOT IN ('sent', 'canceled', 'failed');
