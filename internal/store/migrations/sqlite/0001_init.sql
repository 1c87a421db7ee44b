-- Times are BIGINT Unix microseconds (UTC) and dates TEXT 'YYYY-MM-DD' on
-- both engines: one on-disk form, ordered, never shifted by a zone.
-- Sealed values are BLOB (BYTEA on PostgreSQL). Money is BIGINT minor units
-- beside a TEXT currency.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email_index   BLOB NOT NULL UNIQUE,
    email_sealed  BLOB NOT NULL,
    role          TEXT NOT NULL,
    status        TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    holder_id     TEXT,
    authz_version BIGINT NOT NULL DEFAULT 1,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE policyholders (
    id                TEXT PRIMARY KEY,
    user_id           TEXT UNIQUE REFERENCES users(id),
    subject_key       BLOB,            -- the holder's DEK, wrapped; NULL once erased
    pii               BLOB,            -- sealed JSON under the holder's DEK
    national_id_index BLOB,
    email_index       BLOB,
    attributes        TEXT NOT NULL DEFAULT '{}',
    erased_at         BIGINT,
    source            TEXT NOT NULL DEFAULT 'api',
    source_key        TEXT,
    created_at        BIGINT NOT NULL
);
CREATE UNIQUE INDEX policyholders_source ON policyholders(source, source_key);
CREATE INDEX policyholders_national_id ON policyholders(national_id_index);
CREATE INDEX policyholders_email ON policyholders(email_index);

CREATE TABLE policies (
    id             TEXT PRIMARY KEY,
    number         TEXT NOT NULL UNIQUE,
    holder_id      TEXT NOT NULL REFERENCES policyholders(id),
    product_line   TEXT NOT NULL,
    status         TEXT NOT NULL,
    effective_date TEXT NOT NULL,
    expiry_date    TEXT NOT NULL,
    currency       TEXT NOT NULL,
    coverage_limit BIGINT NOT NULL,
    deductible     BIGINT NOT NULL,
    premium        BIGINT NOT NULL,
    coinsurance_bp INTEGER NOT NULL,
    attributes     TEXT NOT NULL DEFAULT '{}',
    created_at     BIGINT NOT NULL
);
CREATE INDEX policies_holder ON policies(holder_id);

CREATE TABLE claims (
    id            TEXT PRIMARY KEY,
    number        TEXT NOT NULL UNIQUE,
    policy_id     TEXT NOT NULL REFERENCES policies(id),
    holder_id     TEXT NOT NULL REFERENCES policyholders(id),
    filed_by      TEXT,
    type          TEXT NOT NULL,
    incident_date TEXT NOT NULL,
    reported_date TEXT NOT NULL,
    details       BLOB NOT NULL,       -- sealed JSON (description, location) under the holder's DEK
    currency      TEXT NOT NULL,
    total         BIGINT NOT NULL,
    payable       BIGINT NOT NULL,
    status        TEXT NOT NULL,
    assignee_id   TEXT REFERENCES users(id),
    outcome       TEXT NOT NULL DEFAULT '',
    decision_reason BLOB,              -- sealed under the holder's DEK
    deductible_applied BIGINT NOT NULL DEFAULT 0,
    decided_by    TEXT,
    decided_at    BIGINT,
    appealed      INTEGER NOT NULL DEFAULT 0,
    flags         TEXT NOT NULL DEFAULT '',
    source        TEXT NOT NULL,
    source_key    TEXT,
    attributes    TEXT NOT NULL DEFAULT '{}',
    version       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX claims_source ON claims(source, source_key);
CREATE INDEX claims_holder ON claims(holder_id, created_at, id);
CREATE INDEX claims_policy ON claims(policy_id, incident_date);
CREATE INDEX claims_list ON claims(created_at, id);
CREATE INDEX claims_status ON claims(status, created_at);
CREATE INDEX claims_assignee ON claims(assignee_id, created_at);

CREATE TABLE claim_lines (
    id           TEXT PRIMARY KEY,
    claim_id     TEXT NOT NULL REFERENCES claims(id),
    seq          INTEGER NOT NULL,
    category     TEXT NOT NULL,
    description  BLOB NOT NULL,        -- sealed under the holder's DEK
    service_date TEXT NOT NULL DEFAULT '',
    currency     TEXT NOT NULL,
    amount       BIGINT NOT NULL,
    -- the latest decision's explanation of this line (amounts, not personal)
    eligible            BIGINT,
    deductible_applied  BIGINT,
    coinsurance_applied BIGINT,
    limit_applied       BIGINT,
    benefit             BIGINT,
    reasons             TEXT NOT NULL DEFAULT '',
    UNIQUE (claim_id, seq)
);

CREATE TABLE claim_transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    claim_id    TEXT NOT NULL REFERENCES claims(id),
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    actor_id    TEXT,
    reason      BLOB,                  -- sealed under the holder's DEK
    at          BIGINT NOT NULL
);
CREATE INDEX claim_transitions_claim ON claim_transitions(claim_id, id);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    ip          TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    revoked_at  BIGINT,
    revoke_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions(user_id, created_at);

CREATE TABLE refresh_tokens (
    hash        BLOB PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    family      TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family);

CREATE TABLE idempotency_keys (
    user_id      TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    status_code  INTEGER NOT NULL,
    response     BLOB NOT NULL,        -- sealed: it may hold claim details
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE TABLE audit_log (
    seq          BIGINT PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor_id     TEXT NOT NULL DEFAULT '',
    on_behalf_of TEXT NOT NULL DEFAULT '',
    action       TEXT NOT NULL,
    object_type  TEXT NOT NULL DEFAULT '',
    object_id    TEXT NOT NULL DEFAULT '',
    outcome      TEXT NOT NULL,
    ip           TEXT NOT NULL DEFAULT '',
    request_id   TEXT NOT NULL DEFAULT '',
    details      TEXT NOT NULL DEFAULT '{}',
    prev_hash    BLOB NOT NULL,
    hash         BLOB NOT NULL
);
CREATE INDEX audit_log_object ON audit_log(object_type, object_id, seq);
CREATE INDEX audit_log_actor ON audit_log(actor_id, seq);

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BLOB NOT NULL
);

CREATE TABLE payments (
    id        TEXT PRIMARY KEY,
    claim_id  TEXT NOT NULL UNIQUE REFERENCES claims(id),
    currency  TEXT NOT NULL,
    amount    BIGINT NOT NULL,
    reference TEXT NOT NULL,
    paid_by   TEXT NOT NULL,
    paid_at   BIGINT NOT NULL
);
