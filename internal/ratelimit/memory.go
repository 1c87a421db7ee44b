package ratelimit

import (
	"container/list"
	"context"
	"hash/maphash"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Memory keeps token buckets in process: right for one node (SQLite), and
// the fallback of Shared when the database does not answer. Memory is
// bounded: at most maxKeys buckets, least recently used dropped first (a
// dropped bucket comes back full, which only ever errs towards allowing).
type Memory struct {
	now    func() time.Time
	seed   maphash.Seed
	shards [memShards]memShard
}

const memShards = 32

type memShard struct {
	mu    sync.Mutex
	max   int
	keys  map[string]*list.Element
	order list.List // front = most recently used
}

type memEntry struct {
	key string
	lim *rate.Limiter
	per Limit // the limit the bucket was made for
}

// NewMemory returns an in-process limiter holding at most maxKeys buckets
// (<= 0: 100,000). now is the clock (nil: time.Now).
func NewMemory(maxKeys int, now func() time.Time) *Memory {
	if maxKeys <= 0 {
		maxKeys = 100_000
	}
	if now == nil {
		now = time.Now
	}
	m := &Memory{now: now, seed: maphash.MakeSeed()}
	per := (maxKeys + memShards - 1) / memShards
	for i := range m.shards {
		m.shards[i].max = per
		m.shards[i].keys = make(map[string]*list.Element)
	}
	return m
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (bool, time.Duration, error) {
	ok, wait := m.allow(key, l, m.now())
	return ok, wait, nil
}

func (m *Memory) allow(key string, l Limit, now time.Time) (bool, time.Duration) {
	s := &m.shards[maphash.String(m.seed, key)%memShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	var e *memEntry
	if el, ok := s.keys[key]; ok {
		e = el.Value.(*memEntry)
		s.order.MoveToFront(el)
		if e.per != l { // the configuration changed (tests): start afresh
			e.lim, e.per = rate.NewLimiter(rate.Every(l.Interval()), l.N), l
		}
	} else {
		if s.order.Len() >= s.max {
			old := s.order.Back()
			delete(s.keys, old.Value.(*memEntry).key)
			s.order.Remove(old)
		}
		e = &memEntry{key: key, lim: rate.NewLimiter(rate.Every(l.Interval()), l.N), per: l}
		s.keys[key] = s.order.PushFront(e)
	}
	r := e.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, l.Per
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Len returns how many buckets are held.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		m.shards[i].mu.Lock()
		n += m.shards[i].order.Len()
		m.shards[i].mu.Unlock()
	}
	return n
}
