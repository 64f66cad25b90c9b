-- The schema of the Go original, unchanged, so a database it created opens as is.
-- Every statement is idempotent because such a database already has these tables.

CREATE TABLE IF NOT EXISTS receipts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient TEXT NOT NULL,
    status TEXT NOT NULL,
    time INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sender TEXT NOT NULL,
    body TEXT NOT NULL,
    time INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS flow_states (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    participant_id TEXT NOT NULL,
    flow_type TEXT NOT NULL,
    current_state TEXT NOT NULL,
    state_data TEXT,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (participant_id, flow_type)
);

CREATE TABLE IF NOT EXISTS conversation_participants (
    id TEXT PRIMARY KEY,
    phone_number TEXT NOT NULL UNIQUE,
    name TEXT,
    gender TEXT,
    ethnicity TEXT,
    background TEXT,
    status TEXT NOT NULL,
    enrolled_at DATETIME NOT NULL,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS idx_conversation_participants_phone
    ON conversation_participants (phone_number);
CREATE INDEX IF NOT EXISTS idx_conversation_participants_status
    ON conversation_participants (status);

CREATE TABLE IF NOT EXISTS registered_hooks (
    phone_number TEXT PRIMARY KEY,
    hook_type TEXT NOT NULL,
    parameters TEXT NOT NULL,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS idx_registered_hooks_type ON registered_hooks (hook_type);

CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    run_at DATETIME NOT NULL,
    payload_json TEXT,
    status TEXT NOT NULL DEFAULT 'queued',
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    last_error TEXT,
    locked_at DATETIME,
    dedupe_key TEXT,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS idx_jobs_status_run_at ON jobs (status, run_at);
CREATE INDEX IF NOT EXISTS idx_jobs_kind ON jobs (kind);
CREATE UNIQUE INDEX IF NOT EXISTS idx_jobs_dedupe_key ON jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status NOT IN ('done', 'canceled');

CREATE TABLE IF NOT EXISTS outbox_messages (
    id TEXT PRIMARY KEY,
    participant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload_json TEXT,
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DATETIME,
    dedupe_key TEXT,
    locked_at DATETIME,
    last_error TEXT,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS idx_outbox_status_next ON outbox_messages (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS idx_outbox_participant ON outbox_messages (participant_id);
CREATE UNIQUE INDEX IF NOT EXISTS idx_outbox_dedupe_key ON outbox_messages (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status NOT IN ('sent', 'canceled');

CREATE TABLE IF NOT EXISTS inbound_dedup (
    message_id TEXT PRIMARY KEY,
    participant_id TEXT NOT NULL,
    received_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    processed_at DATETIME
);

CREATE INDEX IF NOT EXISTS idx_inbound_dedup_participant ON inbound_dedup (participant_id);

-- Legacy tables: created for compatibility, not used.
CREATE TABLE IF NOT EXISTS intervention_participants (
    id TEXT PRIMARY KEY,
    phone_number TEXT NOT NULL UNIQUE,
    name TEXT,
    timezone TEXT,
    status TEXT NOT NULL,
    enrolled_at DATETIME NOT NULL,
    daily_prompt_time TEXT NOT NULL,
    weekly_reset DATETIME,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS idx_intervention_participants_phone
    ON intervention_participants (phone_number);
CREATE INDEX IF NOT EXISTS idx_intervention_participants_status
    ON intervention_participants (status);

CREATE TABLE IF NOT EXISTS intervention_responses (
    id TEXT PRIMARY KEY,
    participant_id TEXT NOT NULL
        REFERENCES intervention_participants (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    response_text TEXT NOT NULL,
    response_type TEXT NOT NULL,
    timestamp DATETIME NOT NULL
);

CREATE INDEX IF NOT EXISTS idx_intervention_responses_participant
    ON intervention_responses (participant_id);
CREATE INDEX IF NOT EXISTS idx_intervention_responses_timestamp
    ON intervention_responses (timestamp);
