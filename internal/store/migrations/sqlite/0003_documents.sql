-- Claim documents (issue 7). The content lives encrypted in the blob store
-- under blob_id (a random id, never a name); the row holds what the
-- pipeline decided about it. filename is sealed under the policyholder's
-- subject key (a file name can be personal: "jane-doe-mri.pdf"), so erasing
-- the holder makes it unreadable with the rest of their data.
CREATE TABLE documents (
    id               TEXT PRIMARY KEY,
    claim_id         TEXT NOT NULL REFERENCES claims(id),
    holder_id        TEXT NOT NULL REFERENCES policyholders(id),
    blob_id          TEXT NOT NULL UNIQUE,
    original_blob_id TEXT UNIQUE,          -- the upload as sent, only when originals are kept
    filename         BLOB NOT NULL,        -- sealed under the holder's DEK
    content_type     TEXT NOT NULL,        -- decided from the bytes
    size             BIGINT NOT NULL,      -- stored plaintext bytes
    sha256           TEXT NOT NULL,        -- hex, of the stored plaintext
    original_sha256  TEXT NOT NULL,        -- hex, of the bytes as uploaded
    status           TEXT NOT NULL,        -- pending_scan | clean | quarantined
    scan_signature   TEXT NOT NULL DEFAULT '',
    scan_attempts    INTEGER NOT NULL DEFAULT 0,
    scan_after       BIGINT NOT NULL DEFAULT 0, -- retry backoff: not before this instant
    uploaded_by      TEXT NOT NULL REFERENCES users(id),
    created_at       BIGINT NOT NULL,
    scanned_at       BIGINT
);
CREATE INDEX documents_claim ON documents(claim_id, created_at);
CREATE INDEX documents_sha256 ON documents(sha256);
CREATE UNIQUE INDEX documents_claim_sha256 ON documents(claim_id, sha256);
CREATE INDEX documents_pending ON documents(status, scan_after);
