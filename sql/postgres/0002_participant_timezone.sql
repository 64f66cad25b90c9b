-- Participants keep the IANA time zone given at enrollment or update.
ALTER TABLE conversation_participants ADD COLUMN timezone TEXT;
