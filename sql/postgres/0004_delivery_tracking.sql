-- Outgoing messages get a write order (seq) so each recipient receives them in
-- order, and the id the network assigned (wire_id). Inbound messages point at their
-- response row and count delivery attempts, so an unprocessed message can be
-- delivered again after a restart. Polls remember their options to decode votes.
ALTER TABLE outbox_messages ADD COLUMN seq BIGSERIAL;
ALTER TABLE outbox_messages ADD COLUMN wire_id TEXT;
CREATE INDEX idx_outbox_participant_seq ON outbox_messages (participant_id, seq);

ALTER TABLE inbound_dedup ADD COLUMN response_id INTEGER;
ALTER TABLE inbound_dedup ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX idx_inbound_dedup_unprocessed ON inbound_dedup (processed_at);

CREATE TABLE polls (
    wire_id TEXT PRIMARY KEY,
    outbox_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    question TEXT NOT NULL,
    options JSONB NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT NOW()
);
