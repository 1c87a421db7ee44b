package store

import (
	"context"
	"fmt"
	"time"
)

// RateHit counts one request against key with the generic cell rate
// algorithm (GCRA): a request is allowed when, after it, the key's
// theoretical arrival time (tat) is at most limit ahead of now; each
// allowed request moves tat by interval. interval is 1/rate and limit is
// burst×interval, so the key behaves as a token bucket of size burst
// refilled at rate.
//
// It is one statement (an UPSERT with RETURNING) outside any transaction:
// one round trip, atomic under concurrency on every node. When the request
// is refused, retryAfter says how long until one would be allowed.
func (db *DB) RateHit(ctx context.Context, key string, now time.Time, interval, limit time.Duration) (allowed bool, retryAfter time.Duration, err error) {
	t, i, l := micros(now), interval.Microseconds(), limit.Microseconds()
	var q string
	if db.dialect == Postgres {
		q = `INSERT INTO rate_limits AS r (key, tat, allowed) VALUES ($1, $2::bigint + $3::bigint, TRUE)
			ON CONFLICT (key) DO UPDATE SET
				allowed = GREATEST(r.tat, $2::bigint) + $3::bigint - $2::bigint <= $4::bigint,
				tat = CASE WHEN GREATEST(r.tat, $2::bigint) + $3::bigint - $2::bigint <= $4::bigint
					THEN GREATEST(r.tat, $2::bigint) + $3::bigint ELSE r.tat END
			RETURNING tat, allowed`
	} else {
		q = `INSERT INTO rate_limits AS r (key, tat, allowed) VALUES (?1, ?2 + ?3, 1)
			ON CONFLICT (key) DO UPDATE SET
				allowed = MAX(r.tat, ?2) + ?3 - ?2 <= ?4,
				tat = CASE WHEN MAX(r.tat, ?2) + ?3 - ?2 <= ?4 THEN MAX(r.tat, ?2) + ?3 ELSE r.tat END
			RETURNING tat, allowed`
	}
	var tat int64
	if err := db.sql.QueryRowContext(ctx, q, key, t, i, l).Scan(&tat, &allowed); err != nil {
		return false, 0, fmt.Errorf("rate limit: %w", err)
	}
	if allowed {
		return true, 0, nil
	}
	return false, time.Duration(tat+i-l-t) * time.Microsecond, nil
}

// SweepRateLimits deletes keys whose bucket is full again (tat before
// now): they mean the same as no row. It returns how many went.
func (db *DB) SweepRateLimits(ctx context.Context, now time.Time) (int64, error) {
	res, err := db.sql.ExecContext(ctx, db.rebind(`DELETE FROM rate_limits WHERE tat < ?`), micros(now))
	if err != nil {
		return 0, fmt.Errorf("sweep rate limits: %w", err)
	}
	return res.RowsAffected()
}
