-- Identity hardening: MFA, lockouts and throttles, password resets, an
-- outbox for mail, session bookkeeping for step-up and eviction.
ALTER TABLE users ADD COLUMN mfa_secret BYTEA;            -- sealed TOTP secret
ALTER TABLE users ADD COLUMN mfa_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN mfa_last_step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until BIGINT NOT NULL DEFAULT 0;

ALTER TABLE sessions ADD COLUMN mfa_at BIGINT NOT NULL DEFAULT 0;  -- last MFA check in this session (step-up)

CREATE TABLE recovery_codes (
    hash     BYTEA PRIMARY KEY,
    user_id  TEXT NOT NULL REFERENCES users(id),
    used_at  BIGINT
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);

-- A half-finished sign-in: password accepted, second factor pending.
CREATE TABLE mfa_challenges (
    hash       BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    expires_at BIGINT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    used_at    BIGINT
);

-- Failed sign-ins per key ("account:<id>" or "ip:<address>"), shared by
-- every node through the database.
CREATE TABLE login_throttle (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    last_failure BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL
);

CREATE TABLE password_resets (
    hash       BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

-- Mail waiting to be sent (or, without SMTP, read by an admin in
-- development). Recipient and body are sealed: they hold reset links.
CREATE TABLE outbox (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    recipient  BYTEA NOT NULL,
    body       BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at    BIGINT
);
