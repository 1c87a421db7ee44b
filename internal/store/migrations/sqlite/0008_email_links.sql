-- Proof of email ownership before an account is linked to a policyholder
-- that an admin or an import created with that email: a single-use token
-- mailed to the address.
CREATE TABLE email_links (
    hash       BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    holder_id  TEXT NOT NULL REFERENCES policyholders(id),
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
