-- Timesheets. Dates are ISO text in the C collation, so they sort as dates and
-- keyset comparisons match ORDER BY; times are Unix microseconds.
CREATE TABLE timesheets (
    id              TEXT COLLATE "C" PRIMARY KEY,
    user_id         TEXT NOT NULL,
    work_date       TEXT COLLATE "C" NOT NULL,
    project         TEXT NOT NULL,
    hours           DOUBLE PRECISION NOT NULL,
    notes           TEXT NOT NULL,
    approved        BOOLEAN NOT NULL DEFAULT FALSE,
    approved_by     TEXT NOT NULL DEFAULT '',
    create_time_us  BIGINT NOT NULL,
    approve_time_us BIGINT,
    -- Who stored the row (the importer for uploads); idempotency keys are scoped to it.
    created_by      TEXT NOT NULL,
    request_id      TEXT,
    fingerprint     TEXT
);

-- NULL request_ids are distinct, so only keyed requests are deduplicated; the
-- index also serialises concurrent retries across replicas.
CREATE UNIQUE INDEX timesheets_idempotency ON timesheets (created_by, request_id);
-- ListTimesheets: one owner's rows, newest date first, then id (keyset seeks).
CREATE INDEX timesheets_by_owner ON timesheets (user_id, work_date DESC, id);
-- ListPendingApprovals: unapproved rows only, oldest date first.
CREATE INDEX timesheets_pending ON timesheets (work_date, id) WHERE NOT approved;

-- Server-wide secrets shared by every replica (the page-token MAC key).
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
