package workflow_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/auth"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
	"github.com/openclaims/claims/internal/workflow"
)

// clock is an injectable time source for time-based rules.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newIdentityService(t *testing.T, d store.Dialect) (*workflow.Service, *clock) {
	t.Helper()
	clk := &clock{t: time.Now().UTC()}
	keys := storetest.Keys(t)
	url := storetest.URL(t, d)
	db, err := store.Open(context.Background(), url, store.Options{Keys: keys.Ring, Index: keys.Index, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens("claims", "claims-api", 10*time.Minute, clk.Now, auth.GenerateSigningKey("t1"))
	if err != nil {
		t.Fatal(err)
	}
	s := workflow.New(workflow.Config{DB: db, Hasher: auth.NewHasher([]byte("pepper"), 10, 0), Tokens: tokens, Now: clk.Now})
	return s, clk
}

const passphrase = "a perfectly long passphrase"

// TestSessionTimeouts checks idle and absolute session lifetimes per role
// with an injected clock, on both databases.
func TestSessionTimeouts(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		ctx := context.Background()
		s, clk := newIdentityService(t, d)
		if _, err := s.CreateUser(ctx, "", "cust@example.com", passphrase, claims.RoleCustomer); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateUser(ctx, "", "proc@example.com", passphrase, claims.RoleClaimsProcessor); err != nil {
			t.Fatal(err)
		}
		login := func(email string) workflow.TokenPair {
			r, err := s.Login(ctx, email, passphrase)
			if err != nil || r.Tokens == nil {
				t.Fatalf("Login(%s) = %v", email, err)
			}
			return *r.Tokens
		}
		// Processor: 15 minutes idle. Activity within the window keeps it
		// alive; silence beyond it ends it even though the refresh token
		// would otherwise be valid.
		p := login("proc@example.com")
		clk.Add(14 * time.Minute)
		p2, err := s.Refresh(ctx, p.RefreshToken)
		if err != nil {
			t.Fatalf("refresh within idle window: %v", err)
		}
		clk.Add(16 * time.Minute)
		if _, err := s.Refresh(ctx, p2.RefreshToken); claims.KindOf(err) != claims.Unauthenticated {
			t.Fatalf("refresh after 16 idle minutes = %v, want Unauthenticated", err)
		}

		// Customer: 30 minutes idle is fine at 29, absolute 30 days.
		c := login("cust@example.com")
		for i := 0; i < 12; i++ { // keep it active past 12 h: only the absolute limit ends it
			clk.Add(29 * time.Minute)
			if c, err = s.Refresh(ctx, c.RefreshToken); err != nil {
				t.Fatalf("customer refresh %d: %v", i, err)
			}
		}
		clk.Add(30 * 24 * time.Hour)
		if _, err := s.Refresh(ctx, c.RefreshToken); claims.KindOf(err) != claims.Unauthenticated {
			t.Fatalf("refresh after 30 days = %v, want Unauthenticated", err)
		}

		// An access token is refused once its session idled out, even
		// before the token's own expiry.
		a := login("cust@example.com")
		if _, err := s.Authenticate(ctx, a.AccessToken); err != nil {
			t.Fatal(err)
		}
		clk.Add(31 * time.Minute)
		if _, err := s.Authenticate(ctx, a.AccessToken); claims.KindOf(err) != claims.Unauthenticated {
			t.Fatalf("Authenticate after idle = %v", err)
		}
	})
}

// TestLockoutExpires shows the lock lifts by itself after its duration and
// that the right password is refused while it holds.
func TestLockoutExpires(t *testing.T) {
	ctx := context.Background()
	s, clk := newIdentityService(t, store.SQLite)
	if _, err := s.CreateUser(ctx, "", "x@example.com", passphrase, claims.RoleCustomer); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		clk.Add(time.Minute) // outwait the growing delays (at most 32 s before the lock)
		s.Login(ctx, "x@example.com", "wrong password attempt")
	}
	clk.Add(time.Minute)
	if _, err := s.Login(ctx, "x@example.com", passphrase); claims.KindOf(err) != claims.RateLimited {
		t.Fatalf("right password while locked = %v, want RateLimited", err)
	}
	clk.Add(15 * time.Minute)
	if _, err := s.Login(ctx, "x@example.com", passphrase); err != nil {
		t.Fatalf("after the lock expired: %v", err)
	}
}

// TestTOTPStaleStep: a code from a step before the last used one is refused.
func TestTOTPStaleStep(t *testing.T) {
	ctx := context.Background()
	s, _ := newIdentityService(t, store.SQLite)
	u, err := s.CreateUser(ctx, "", "adm@example.com", passphrase, claims.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Login(ctx, "adm@example.com", passphrase)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(ctx, r.Tokens.AccessToken)
	if err != nil || p.UserID != u.ID || !p.MustEnrollMFA() {
		t.Fatalf("principal %+v, %v", p, err)
	}
	en, err := s.EnrollMFA(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := s.ConfirmMFA(ctx, p, codeAt(t, en.Secret, now.Add(30*time.Second))); err != nil {
		t.Fatal(err)
	}
	p, _ = s.Authenticate(ctx, r.Tokens.AccessToken)
	if err := s.VerifyMFA(ctx, p, codeAt(t, en.Secret, now)); err == nil {
		t.Fatal("a code older than the last used step was accepted")
	}
}

func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totpGenerate(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
