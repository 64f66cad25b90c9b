-- Rewrite every stored timestamp as UTC text in one fixed-width form,
-- 'YYYY-MM-DD HH:MM:SS.ffffff', so that comparing them as text orders them in time.
-- The Go original wrote the process's local offset ('...+02:00') and SQL defaults
-- wrote 'YYYY-MM-DD HH:MM:SS'; SQLite's strftime converts both to UTC.
UPDATE flow_states SET
    created_at = strftime('%Y-%m-%d %H:%M:%f', created_at) || '000',
    updated_at = strftime('%Y-%m-%d %H:%M:%f', updated_at) || '000';
UPDATE conversation_participants SET
    enrolled_at = strftime('%Y-%m-%d %H:%M:%f', enrolled_at) || '000',
    created_at = strftime('%Y-%m-%d %H:%M:%f', created_at) || '000',
    updated_at = strftime('%Y-%m-%d %H:%M:%f', updated_at) || '000';
UPDATE registered_hooks SET
    created_at = strftime('%Y-%m-%d %H:%M:%f', created_at) || '000',
    updated_at = strftime('%Y-%m-%d %H:%M:%f', updated_at) || '000';
UPDATE jobs SET
    run_at = strftime('%Y-%m-%d %H:%M:%f', run_at) || '000',
    locked_at = CASE WHEN locked_at IS NULL THEN NULL
        ELSE strftime('%Y-%m-%d %H:%M:%f', locked_at) || '000' END,
    created_at = strftime('%Y-%m-%d %H:%M:%f', created_at) || '000',
    updated_at = strftime('%Y-%m-%d %H:%M:%f', updated_at) || '000';
UPDATE outbox_messages SET
    next_attempt_at = CASE WHEN next_attempt_at IS NULL THEN NULL
        ELSE strftime('%Y-%m-%d %H:%M:%f', next_attempt_at) || '000' END,
    locked_at = CASE WHEN locked_at IS NULL THEN NULL
        ELSE strftime('%Y-%m-%d %H:%M:%f', locked_at) || '000' END,
    created_at = strftime('%Y-%m-%d %H:%M:%f', created_at) || '000',
    updated_at = strftime('%Y-%m-%d %H:%M:%f', updated_at) || '000';
UPDATE inbound_dedup SET
    received_at = strftime('%Y-%m-%d %H:%M:%f', received_at) || '000',
    processed_at = CASE WHEN processed_at IS NULL THEN NULL
        ELSE strftime('%Y-%m-%d %H:%M:%f', processed_at) || '000' END;
