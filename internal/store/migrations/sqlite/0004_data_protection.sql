-- Data protection (issue 6): re-encryption progress, erasure requests and
-- the erasure register. None of these tables holds personal data: only ids,
-- statuses and times.

-- Which generation of subject key a policyholder's data is sealed under.
-- `claims keys reencrypt` moves every holder to a new generation, one holder
-- per transaction, so an interrupted run resumes where it stopped.
ALTER TABLE policyholders ADD COLUMN subject_key_version BIGINT NOT NULL DEFAULT 1;

-- The re-encryption run in progress (at most one row).
CREATE TABLE key_reencrypt (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    target      BIGINT NOT NULL,     -- the subject_key_version being moved to
    started_at  BIGINT NOT NULL,
    finished_at BIGINT
);

-- A customer's request to be erased, approved by an administrator.
CREATE TABLE erasure_requests (
    id           TEXT PRIMARY KEY,
    holder_id    TEXT NOT NULL REFERENCES policyholders(id),
    user_id      TEXT NOT NULL,
    status       TEXT NOT NULL,       -- pending | approved
    requested_at BIGINT NOT NULL,
    decided_by   TEXT,
    decided_at   BIGINT
);
CREATE INDEX erasure_requests_status ON erasure_requests(status, requested_at);

-- Every erased subject, by id and time only. It is copied to
-- <keys-dir>/erasure-register.jsonl and re-applied after every restore, so
-- restoring a backup taken before an erasure does not bring the subject back.
CREATE TABLE erasure_register (
    holder_id TEXT PRIMARY KEY,
    user_id   TEXT NOT NULL DEFAULT '',
    erased_at BIGINT NOT NULL
);
