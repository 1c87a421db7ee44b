-- Rate limits shared by every node (package ratelimit, docs/edge.md): one
-- row per key ("ip:<class>:<address>" or "user:<class>:<id>") holding the
-- GCRA theoretical arrival time in Unix microseconds. A row whose tat is in
-- the past is the same as no row (a full bucket) and is swept.
--
-- UNLOGGED: counters need no crash safety or replication (after a crash the
-- table comes back empty, i.e. every bucket full), and skipping the WAL
-- makes the one UPSERT per request cheap. fillfactor leaves room on each
-- page for HOT updates, which touch no index.
CREATE UNLOGGED TABLE rate_limits (
    key     TEXT PRIMARY KEY,
    tat     BIGINT NOT NULL,
    allowed BOOLEAN NOT NULL
) WITH (fillfactor = 50);
