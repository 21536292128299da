-- Every create writes each B-tree of the table, and every B-tree it touches is
-- a page or more in the WAL at each group commit. Two fewer:
-- - WITHOUT ROWID: the rows live in the primary key's B-tree instead of a rowid
--   table plus a separate index on id (GetTimesheet also seeks once, not twice);
--   the other indexes already end in id, so they grow no larger.
-- - The idempotency index holds only keyed rows: unkeyed creates, nearly all of
--   them, no longer add an entry that nothing looks up.
CREATE TABLE timesheets_v2 (
    id              TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL,
    work_date       TEXT NOT NULL,
    project         TEXT NOT NULL,
    hours           REAL NOT NULL,
    notes           TEXT NOT NULL,
    approved        BOOLEAN NOT NULL DEFAULT FALSE,
    approved_by     TEXT NOT NULL DEFAULT '',
    create_time_us  BIGINT NOT NULL,
    approve_time_us BIGINT,
    created_by      TEXT NOT NULL,
    request_id      TEXT,
    fingerprint     TEXT
) WITHOUT ROWID;

INSERT INTO timesheets_v2 (id, user_id, work_date, project, hours, notes, approved, approved_by,
                           create_time_us, approve_time_us, created_by, request_id, fingerprint)
SELECT id, user_id, work_date, project, hours, notes, approved, approved_by,
       create_time_us, approve_time_us, created_by, request_id, fingerprint
FROM timesheets;

DROP TABLE timesheets;
ALTER TABLE timesheets_v2 RENAME TO timesheets;

CREATE UNIQUE INDEX timesheets_idempotency ON timesheets (created_by, request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX timesheets_by_owner ON timesheets (user_id, work_date DESC, id);
CREATE INDEX timesheets_pending ON timesheets (work_date, id) WHERE NOT approved;
