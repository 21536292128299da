-- The idempotency index holds only keyed rows: unkeyed creates, nearly all of
-- them, no longer add an entry that nothing looks up. Dropped and created in
-- this migration's transaction, which holds the table's lock throughout, so
-- no replica inserts while the index is missing.
DROP INDEX timesheets_idempotency;
CREATE UNIQUE INDEX timesheets_idempotency ON timesheets (created_by, request_id)
    WHERE request_id IS NOT NULL;
