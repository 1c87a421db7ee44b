-- Access control: custom roles, delegations, authority limits, pending
-- approvals, signed audit checkpoints.

-- A custom role inherits a built-in role and adds permissions. Definitions
-- are versioned: every change bumps version and is audited.
CREATE TABLE custom_roles (
    name        TEXT PRIMARY KEY,
    base_role   TEXT NOT NULL,
    permissions TEXT NOT NULL DEFAULT '',   -- comma-separated
    authority_limit BIGINT,                 -- minor units; NULL = the base role's
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Per-user override of the monetary authority for deciding and paying.
ALTER TABLE users ADD COLUMN authority_limit BIGINT;

CREATE TABLE delegations (
    id          TEXT PRIMARY KEY,
    from_user   TEXT NOT NULL REFERENCES users(id),
    to_user     TEXT NOT NULL REFERENCES users(id),
    permissions TEXT NOT NULL,              -- comma-separated
    max_amount  BIGINT,                     -- scope: claims up to this total (minor units)
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX delegations_to ON delegations(to_user, expires_at);
CREATE INDEX delegations_from ON delegations(from_user);

-- A decision above the decider's authority waits here for a second person.
ALTER TABLE claims ADD COLUMN proposed_by TEXT;

CREATE TABLE audit_checkpoints (
    seq        BIGINT PRIMARY KEY,           -- the entry count the checkpoint covers
    head_hash  BYTEA NOT NULL,
    at         BIGINT NOT NULL,
    key_id     TEXT NOT NULL,
    signature  BYTEA NOT NULL
);
