-- Rate limits (package ratelimit, docs/edge.md). On SQLite the server keeps
-- them in memory (one node); the table exists so both engines share one
-- schema and the store's statement is tested on both.
CREATE TABLE rate_limits (
    key     TEXT PRIMARY KEY,
    tat     BIGINT NOT NULL,
    allowed INTEGER NOT NULL
);
