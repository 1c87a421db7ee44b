-- A customer's email is verified by a code mailed to it; until then no
-- policy is attached to the account by email. Staff accounts are created
-- by an operator or administrator, who vouches for them.
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
UPDATE users SET email_verified = 1 WHERE role <> 'customer';

CREATE TABLE email_verifications (
    hash       BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
