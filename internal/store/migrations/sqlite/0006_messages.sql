-- Claim messages (issue 8): customers and processors who may read a claim
-- exchange short messages on it. body is sealed under the policyholder's
-- subject key (bound to claim_messages.body:<id>), so erasing the holder
-- makes every message on their claims unreadable with the rest of their
-- data. Authors and times stay in clear: they are what the audit log holds
-- too.
CREATE TABLE claim_messages (
    id          TEXT PRIMARY KEY,
    claim_id    TEXT NOT NULL REFERENCES claims(id),
    holder_id   TEXT NOT NULL REFERENCES policyholders(id),
    author_id   TEXT NOT NULL REFERENCES users(id),
    author_role TEXT NOT NULL,          -- built-in role at the time of posting
    body        BLOB NOT NULL,          -- sealed under the holder's DEK
    created_at  BIGINT NOT NULL
);
CREATE INDEX claim_messages_claim ON claim_messages(claim_id, created_at, id);
CREATE INDEX claim_messages_holder ON claim_messages(holder_id);
