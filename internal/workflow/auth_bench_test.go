package workflow_test

import (
	"context"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/auth"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
	"github.com/openclaims/claims/internal/workflow"
)

// BenchmarkAuthenticate measures what every authenticated request pays:
// the access token's signature and claims, plus the session and account
// check in the database.
func BenchmarkAuthenticate(b *testing.B) {
	for _, d := range storetest.Engines {
		b.Run(string(d), func(b *testing.B) {
			ctx := context.Background()
			s := benchService(b, d, 10)
			if _, err := s.CreateUser(ctx, "", "b@example.com", passphrase, claims.RoleCustomer); err != nil {
				b.Fatal(err)
			}
			r, err := s.Login(ctx, "b@example.com", passphrase)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Authenticate(ctx, r.Tokens.AccessToken); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkReadDuringLoginFlood reads a claim while 32 goroutines sign in
// as fast as they can at the production bcrypt cost (12). The hasher lets
// only half the cores hash at once, so reads keep a core; the reported
// p50/p99 read latencies are the figures for docs/performance.md.
func BenchmarkReadDuringLoginFlood(b *testing.B) {
	ctx := context.Background()
	s := benchService(b, store.SQLite, 12)
	if _, err := s.CreateUser(ctx, "", "reader@example.com", passphrase, claims.RoleCustomer); err != nil {
		b.Fatal(err)
	}
	r, err := s.Login(ctx, "reader@example.com", passphrase)
	if err != nil {
		b.Fatal(err)
	}
	p, err := s.Authenticate(ctx, r.Tokens.AccessToken)
	if err != nil {
		b.Fatal(err)
	}
	floodCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var logins atomic.Int64
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for floodCtx.Err() == nil {
				s.Login(floodCtx, "reader@example.com", "not the right password at all")
				logins.Add(1)
			}
		}()
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := s.Policies(ctx, p, "", 10); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, r.Tokens.AccessToken); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	stop()
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(logins.Load()), "logins")
}

func benchService(b *testing.B, d store.Dialect, cost int) *workflow.Service {
	b.Helper()
	db := storetest.Open(b, d)
	tokens, err := auth.NewTokens("claims", "claims-api", 10*time.Minute, nil, auth.GenerateSigningKey("b1"))
	if err != nil {
		b.Fatal(err)
	}
	// Throttling would stop the flood after a few attempts; this measures
	// the hashing, so lift it.
	pol := workflow.DefaultIdentityPolicy
	pol.LockAfter, pol.DelayAfter, pol.IPDelayAfter = 1<<30, 1<<30, 1<<30
	return workflow.New(workflow.Config{DB: db, Hasher: auth.NewHasher([]byte("pepper"), cost, max(1, runtime.GOMAXPROCS(0)/2)),
		Tokens: tokens, Identity: &pol})
}
