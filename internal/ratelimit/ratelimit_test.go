package ratelimit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/ratelimit"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
	"github.com/openclaims/claims/internal/web"
)

func TestClassOf(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         ratelimit.Class
	}{
		{"POST", "/api/v1/auth/login", ratelimit.Auth},
		{"POST", "/api/v1/auth/mfa", ratelimit.Auth},
		{"POST", "/api/v1/auth/register", ratelimit.Auth},
		{"POST", "/api/v1/auth/password-reset", ratelimit.Auth},
		{"POST", "/api/v1/auth/password-reset/confirm", ratelimit.Auth},
		{"POST", "/api/v1/auth/password", ratelimit.Auth},
		{"POST", "/api/v1/auth/mfa/verify", ratelimit.Auth},
		{"POST", "/api/v1/auth//login", ratelimit.Auth}, // cleaned like the router does
		{"POST", "/api/v1/auth/x/../login", ratelimit.Auth},
		{"GET", "/api/v1/auth/login", ratelimit.Auth},
		{"POST", "/api/v1/claims/abc/documents", ratelimit.Upload},
		{"GET", "/api/v1/claims/abc/documents", ratelimit.Read},
		{"POST", "/api/v1/claims/abc/documents/x", ratelimit.Write},
		{"GET", "/api/v1/claims", ratelimit.Read},
		{"HEAD", "/api/v1/claims", ratelimit.Read},
		{"OPTIONS", "/api/v1/claims", ratelimit.Read},
		{"POST", "/api/v1/claims", ratelimit.Write},
		{"DELETE", "/api/v1/sessions/x", ratelimit.Write},
		{"POST", "/api/v1/auth/refresh", ratelimit.Write},
	} {
		if got := ratelimit.ClassOf(c.method, c.path); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.method, c.path, got, c.want)
		}
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]ratelimit.Limit{"20/1m": {20, time.Minute}, " 5 / 10s ": {5, 10 * time.Second}, "off": {}, "0": {}} {
		got, err := ratelimit.ParseLimit(in)
		if err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "20", "x/1m", "-1/1m", "20/forever", "20/0s", "5000000/1m", "10/1ns"} {
		if _, err := ratelimit.ParseLimit(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	c, err := ratelimit.ParseConfig(map[string]string{"auth_ip": "3/1s", "read_user": "off"})
	if err != nil || c.IP[ratelimit.Auth] != (ratelimit.Limit{3, time.Second}) || !c.User[ratelimit.Read].Off() ||
		c.IP[ratelimit.Read] != (ratelimit.Limit{1200, time.Minute}) {
		t.Errorf("config %+v %v", c, err)
	}
	if _, err := ratelimit.ParseConfig(map[string]string{"write_ip": "lots"}); err == nil || err.Error()[:22] != "CLAIMS_RATE_WRITE_IP: " {
		t.Errorf("bad setting: %v", err)
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *clock               { return &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }
func discard() *slog.Logger          { return slog.New(slog.DiscardHandler) }
func must(t *testing.T, ok bool, f string, a ...any) {
	t.Helper()
	if !ok {
		t.Fatalf(f, a...)
	}
}

// bucketSemantics checks what both limiters promise: N at once, then
// refusals with the time until the next token, one token per Per/N.
func bucketSemantics(t *testing.T, lim ratelimit.Limiter, c *clock) {
	ctx := context.Background()
	l := ratelimit.Limit{N: 3, Per: 3 * time.Second}
	for i := range 3 {
		ok, _, err := lim.Allow(ctx, "k", l)
		must(t, ok && err == nil, "request %d refused: %v", i, err)
	}
	ok, wait, err := lim.Allow(ctx, "k", l)
	must(t, !ok && err == nil && wait > 900*time.Millisecond && wait <= time.Second, "4th: ok=%v wait=%v err=%v", ok, wait, err)
	// Another key has its own bucket.
	ok, _, _ = lim.Allow(ctx, "other", l)
	must(t, ok, "other key refused")
	c.add(500 * time.Millisecond)
	ok, wait, _ = lim.Allow(ctx, "k", l)
	must(t, !ok && wait > 400*time.Millisecond && wait <= 500*time.Millisecond, "after 0.5s: ok=%v wait=%v", ok, wait)
	c.add(500 * time.Millisecond)
	ok, _, _ = lim.Allow(ctx, "k", l)
	must(t, ok, "a token came back after 1s")
	ok, _, _ = lim.Allow(ctx, "k", l)
	must(t, !ok, "only one token came back")
	c.add(time.Hour)
	for i := range 3 {
		ok, _, _ := lim.Allow(ctx, "k", l)
		must(t, ok, "after an hour, request %d refused: the bucket holds N, no more", i)
	}
	ok, _, _ = lim.Allow(ctx, "k", l)
	must(t, !ok, "bucket grew beyond N while idle")
}

func TestMemory(t *testing.T) {
	c := newClock()
	bucketSemantics(t, ratelimit.NewMemory(0, c.now), c)
}

func TestMemoryBounded(t *testing.T) {
	m := ratelimit.NewMemory(64, nil)
	for i := range 10_000 {
		m.Allow(context.Background(), fmt.Sprint("ip:read:10.0.", i), ratelimit.Limit{N: 1, Per: time.Minute})
	}
	if n := m.Len(); n > 64 {
		t.Errorf("%d buckets held, bound 64", n)
	}
}

func TestShared(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		c := newClock()
		db := storetest.Open(t, d)
		bucketSemantics(t, ratelimit.NewShared(db, discard(), c.now), c)

		// Sweep removes only full buckets.
		ctx := context.Background()
		lim := ratelimit.NewShared(db, discard(), c.now)
		lim.Allow(ctx, "fresh", ratelimit.Limit{N: 1, Per: time.Hour})
		n, err := db.SweepRateLimits(ctx, c.now())
		must(t, err == nil && n == 1, "swept %d (%v), want the one idle key", n, err)
		ok, _, _ := lim.Allow(ctx, "fresh", ratelimit.Limit{N: 1, Per: time.Hour})
		must(t, !ok, "sweep dropped a live bucket")
		c.add(2 * time.Hour)
		n, err = db.SweepRateLimits(ctx, c.now())
		must(t, err == nil && n == 2, "swept %d (%v) after two hours, want 2", n, err)
	})
}

// TestSharedAcrossNodes: two nodes (two pools) hammering one key admit
// exactly N between them.
func TestSharedAcrossNodes(t *testing.T) {
	url := storetest.URL(t, store.Postgres)
	keys := storetest.Keys(t)
	a, b := storetest.OpenWith(t, url, keys), storetest.OpenWith(t, url, keys)
	la, lb := ratelimit.NewShared(a, discard(), nil), ratelimit.NewShared(b, discard(), nil)
	// Atomicity is the point here, not the fallback: under a loaded test
	// run, waiting for a pooled connection must not count as an outage.
	la.SetTimeout(time.Minute)
	lb.SetTimeout(time.Minute)
	l := ratelimit.Limit{N: 25, Per: time.Hour}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		lim := la
		if i%2 == 1 {
			lim = lb
		}
		wg.Go(func() {
			for range 5 {
				ok, _, err := lim.Allow(context.Background(), "ip:auth:192.0.2.7", l)
				if err != nil {
					t.Error(err)
				}
				if ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 25 {
		t.Errorf("%d of 200 requests admitted across two nodes, want exactly 25", n)
	}
}

type brokenStore struct{}

func (brokenStore) RateHit(context.Context, string, time.Time, time.Duration, time.Duration) (bool, time.Duration, error) {
	return false, 0, errors.New("connection refused")
}
func (brokenStore) SweepRateLimits(context.Context, time.Time) (int64, error) { return 0, nil }

// TestSharedFallsBack: with the database gone, limiting continues in
// process instead of failing or admitting everything.
func TestSharedFallsBack(t *testing.T) {
	c := newClock()
	bucketSemantics(t, ratelimit.NewShared(brokenStore{}, discard(), c.now), c)
}

// TestGuard: the 429 is a problem with Retry-After, per client address as
// decided by the trusted-proxy rules (a forged X-Forwarded-For from an
// untrusted peer changes nothing), and per user.
func TestGuard(t *testing.T) {
	cfg, _ := ratelimit.ParseConfig(map[string]string{"auth_ip": "2/1m", "read_user": "1/1m"})
	g := ratelimit.NewGuard(ratelimit.NewMemory(0, nil), cfg, discard())
	proxies, _ := web.ParseTrustedProxies("10.0.0.0/8")
	h := web.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.User(r, "u1"); err != nil {
			web.WriteError(discard(), w, r, err)
			return
		}
		w.WriteHeader(204)
	}), proxies.Middleware, g.Middleware)
	send := func(method, path, peer, xff string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		r.RemoteAddr = peer + ":5555"
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for i := range 2 {
		must(t, send("POST", "/api/v1/auth/login", "192.0.2.1", fmt.Sprint("198.51.100.", i)).Code == 204, "login %d refused", i)
	}
	w := send("POST", "/api/v1/auth/login", "192.0.2.1", "198.51.100.99")
	must(t, w.Code == 429, "third login from one address with a new forged X-Forwarded-For: %d", w.Code)
	var p web.Problem
	json.Unmarshal(w.Body.Bytes(), &p)
	must(t, w.Header().Get("Retry-After") == "30" && w.Header().Get("Content-Type") == "application/problem+json" &&
		p.Status == 429 && p.Type == "urn:claims:problem:rate_limited" && len(p.Errors) == 1 && p.Errors[0].Rule == "rate_limited",
		"429: %v %s", w.Header(), w.Body)
	// Behind a trusted proxy, the forwarded address is the client.
	must(t, send("POST", "/api/v1/auth/login", "10.1.1.1", "198.51.100.5").Code == 204, "another client behind the proxy refused")
	// The per-user limit: a second read by u1 from another address.
	must(t, send("GET", "/api/v1/me", "192.0.2.2", "").Code == 204, "first read refused")
	w = send("GET", "/api/v1/me", "192.0.2.3", "")
	must(t, w.Code == 429 && w.Header().Get("Retry-After") == "60", "second read of one user: %d %v", w.Code, w.Header())
}

// BenchmarkRateLimit measures one check: in process, and the shared one on
// PostgreSQL (one UPSERT round trip; needs CLAIMS_TEST_DATABASE_URL).
// Keys spread over 10,000 addresses; parallel like a server's requests.
func BenchmarkRateLimit(b *testing.B) {
	l := ratelimit.Limit{N: 1_000_000, Per: time.Second}
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("ip:read:10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
	}
	run := func(b *testing.B, lim ratelimit.Limiter) {
		var n atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(n.Add(7919))
			for pb.Next() {
				i++
				if _, _, err := lim.Allow(context.Background(), keys[i%len(keys)], l); err != nil {
					b.Error(err)
				}
			}
		})
	}
	b.Run("memory", func(b *testing.B) { run(b, ratelimit.NewMemory(0, nil)) })
	b.Run("postgres", func(b *testing.B) {
		if os.Getenv("CLAIMS_TEST_DATABASE_URL") == "" {
			b.Skip("CLAIMS_TEST_DATABASE_URL not set")
		}
		db := storetest.Open(b, store.Postgres)
		run(b, ratelimit.NewShared(db, discard(), nil))
	})
}
