package ratelimit

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Store is what Shared needs from the database (store.DB implements it).
type Store interface {
	RateHit(ctx context.Context, key string, now time.Time, interval, limit time.Duration) (bool, time.Duration, error)
	SweepRateLimits(ctx context.Context, now time.Time) (int64, error)
}

// Shared keeps the buckets in the database, so every node counts the same
// requests: one atomic UPSERT per check (GCRA). When the database does not
// answer in time, it falls back to an in-process Memory limiter for that
// request (each node then limits on its own) and logs, rather than failing
// every request or letting everything through.
type Shared struct {
	st       Store
	now      func() time.Time
	log      *slog.Logger
	fallback *Memory
	timeout  time.Duration
	lastWarn atomic.Int64
}

// NewShared returns a database-backed limiter. now is the clock (nil:
// time.Now); every node's clock should be NTP-synchronised (skew shifts
// when a bucket refills, not how many requests it admits).
func NewShared(st Store, log *slog.Logger, now func() time.Time) *Shared {
	if now == nil {
		now = time.Now
	}
	return &Shared{st: st, now: now, log: log, fallback: NewMemory(0, now), timeout: 500 * time.Millisecond}
}

// SetTimeout sets how long a check waits for the database (pool wait
// included) before falling back to the in-process bucket; default 500ms.
func (s *Shared) SetTimeout(d time.Duration) { s.timeout = d }

// Allow implements Limiter.
func (s *Shared) Allow(ctx context.Context, key string, l Limit) (bool, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ok, wait, err := s.st.RateHit(ctx, key, s.now(), l.Interval(), l.Per)
	if err != nil {
		if t := time.Now().Unix(); s.lastWarn.Swap(t) != t { // at most one line a second
			s.log.WarnContext(ctx, "shared rate limiter unavailable; limiting in process", "err", err)
		}
		ok, wait = s.fallback.allow(key, l, s.now())
	}
	return ok, wait, nil
}

// Sweep removes the rows of full buckets every interval until ctx ends.
// Any number of nodes may run it.
func (s *Shared) Sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.st.SweepRateLimits(ctx, s.now()); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "sweeping rate limits", "err", err)
			}
		}
	}
}
