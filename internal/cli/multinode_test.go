package cli_test

import (
	"context"
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/live"
	"github.com/openclaims/claims/internal/store"
)

// TestTwoNodes runs two `claims serve` processes (each its own data dir and
// TLS certificate, the same keys and the same PostgreSQL database) and shows
// they behave as one system: sign-in, sessions, revocation, refresh-token
// reuse detection and idempotency keys work across nodes, and an event
// raised by one node is delivered through LISTEN/NOTIFY to a bus attached to
// the database elsewhere.
func TestTwoNodes(t *testing.T) {
	t.Parallel()
	envA := newEnv(t, store.Postgres) // skips without CLAIMS_TEST_DATABASE_URL, fails under CI=true
	envA["CLAIMS_KEYS_DIR"] = filepath.Join(t.TempDir(), "keys")
	envB := maps.Clone(envA)
	envB["CLAIMS_DATA_DIR"] = t.TempDir()
	mustRun(t, envA, pw+"\n", "user", "create", "--email", "admin@example.com", "--role", "admin", "--password-stdin") // creates the keys

	a := startServer(t, envA)
	b := startServer(t, envB) // after A: A's start applied the migrations
	if a.base == b.base {
		t.Fatal("both nodes on one address")
	}

	// A bus of our own on the same database, standing in for node B's
	// WebSocket edge (issue 8): it sees what either node publishes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	watch, err := live.NewPostgres(ctx, envB["CLAIMS_DATABASE_URL"], nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Close() })
	events := watch.Subscribe(live.Filter{All: true}, 64)

	// Register on A, sign in on B, use the token on A.
	a.expect(a.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "alice@example.com", "password": pw, "fullName": "Alice Example"}), 202)
	a.verifyEmail("alice@example.com")
	login := b.expect(b.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "alice@example.com", "password": pw}), 200)
	alice := login.str("access_token")
	me := a.expect(a.do("GET", "/api/v1/me", alice, nil), 200)
	if me.str("email") != "alice@example.com" {
		t.Fatalf("token issued by B, read on A: %s", me.raw)
	}

	// An admin on B gives Alice a policy; she files on A; her retry with
	// the same Idempotency-Key goes to B and gets the same claim.
	admin := b.adminSession("admin@example.com")
	a.expect(a.do("POST", "/api/v1/policies", admin, map[string]any{
		"number": "AUTO-2001", "productLine": "auto", "effectiveDate": "2026-01-01", "expiryDate": "2026-12-31",
		"currency": "USD", "coverageLimit": "1000.00", "deductible": "100.00", "premium": "600.00",
		"holderEmail": "alice@example.com"}), 201)
	claim := map[string]any{"policyNumber": "AUTO-2001", "type": "collision", "incidentDate": "2026-03-01",
		"description": "Rear-ended at a red light", "currency": "USD", "submit": true,
		"lines": []map[string]string{{"category": "vehicle", "description": "Bumper", "amount": "500.00"}}}
	first := a.expect(a.do("POST", "/api/v1/claims", alice, claim, "Idempotency-Key", "two-nodes-1"), 201)
	id := first.str("id")
	retry := b.expect(b.do("POST", "/api/v1/claims", alice, claim, "Idempotency-Key", "two-nodes-1"), 201)
	if retry.str("id") != id || retry.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry on B: claim %s (replayed %q), want %s replayed", retry.str("id"), retry.header.Get("Idempotent-Replayed"), id)
	}
	if n := len(b.expect(b.do("GET", "/api/v1/claims", alice, nil), 200).items()); n != 1 {
		t.Errorf("alice has %d claims after the retry, want 1", n)
	}

	// The claim filed through A is announced across processes, once (the
	// replay on B files nothing). The event carries ids, status and time.
	ev := waitEvent(t, events, "claim.filed", claims.ID(id))
	if ev.Status != claims.Status(first.str("status")) || ev.HolderID == "" || ev.At.IsZero() {
		t.Errorf("claim.filed event: %+v", ev)
	}
	time.Sleep(300 * time.Millisecond)
	for len(events.C) > 0 {
		if ev := <-events.C; ev.Type == "claim.filed" && ev.ClaimID == claims.ID(id) {
			t.Errorf("claim.filed published twice (the idempotent replay on B published again)")
		}
	}

	// Logout on B ends the session on A at once.
	b.expect(b.do("POST", "/api/v1/auth/logout", alice, nil), 204)
	a.expect(a.do("GET", "/api/v1/me", alice, nil), 401)

	// Refresh-token reuse is detected across nodes: refresh on A, replay
	// the old token on B, and the whole family is ended, on both nodes.
	l2 := a.expect(a.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "alice@example.com", "password": pw}), 200)
	oldRefresh := l2.str("refresh_token")
	r1 := a.expect(a.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": oldRefresh}), 200)
	newAccess, newRefresh := r1.str("access_token"), r1.str("refresh_token")
	a.expect(a.do("GET", "/api/v1/me", newAccess, nil), 200)
	b.expect(b.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": oldRefresh}), 401)
	a.expect(a.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": newRefresh}), 401)
	a.expect(a.do("GET", "/api/v1/me", newAccess, nil), 401)
	b.expect(b.do("GET", "/api/v1/me", newAccess, nil), 401)

	// A status change made on B reaches the bus too.
	proc := "proc@example.com"
	mustRun(t, envB, pw+"\n", "user", "create", "--email", proc, "--role", "claims_processor", "--password-stdin")
	ptok := b.login(proc, pw)
	b.expect(b.do("POST", "/api/v1/claims/"+id+"/assign", ptok, nil), 200)
	ch := waitEvent(t, events, "claim.status_changed", claims.ID(id))
	if ch.Status != claims.StatusUnderReview || ch.AssigneeID == "" {
		t.Errorf("claim.status_changed event: %+v", ch)
	}
}

// waitEvent returns the first event of type typ for claim id on s, skipping
// others.
func waitEvent(t *testing.T, s *live.Subscription, typ string, id claims.ID) claims.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.C:
			if !ok {
				t.Fatalf("event subscription closed: %v", s.Err())
			}
			if ev.Type == typ && ev.ClaimID == id {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event for claim %s within 10s", typ, id)
		}
	}
}
