package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/openclaims/claims/internal/store"
)

// liveEnv is a running server with an admin, a processor, two customers and
// one submitted claim of Alice's.
type liveEnv struct {
	*server
	admin, proc, alice, bob string // access tokens
	procID                  string
	claim                   string
}

func newLiveEnv(t *testing.T, env map[string]string) *liveEnv {
	t.Helper()
	mustRun(t, env, pw+"\n", "user", "create", "--email", "admin@example.com", "--role", "admin", "--password-stdin")
	mustRun(t, env, pw+"\n", "user", "create", "--email", "proc@example.com", "--role", "claims_processor", "--password-stdin")
	s := startServer(t, env)
	return setupLive(t, s, s)
}

// setupLive registers the users and files the claim through a (and b, for
// the second node), returning tokens valid on both.
func setupLive(t *testing.T, a, b *server) *liveEnv {
	t.Helper()
	for _, email := range []string{"alice@example.com", "bob@example.com"} {
		a.expect(a.do("POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": pw, "fullName": "Test " + email}), 202)
		a.verifyEmail(email)
	}
	e := &liveEnv{server: a}
	e.admin = b.adminSession("admin@example.com")
	a.expect(a.do("POST", "/api/v1/policies", e.admin, map[string]any{
		"number": "AUTO-7001", "productLine": "auto", "effectiveDate": "2026-01-01", "expiryDate": "2026-12-31",
		"currency": "USD", "coverageLimit": "1000.00", "deductible": "100.00", "premium": "600.00",
		"holderEmail": "alice@example.com"}), 201)
	e.alice, e.bob, e.proc = a.login("alice@example.com", pw), a.login("bob@example.com", pw), a.login("proc@example.com", pw)
	e.procID = a.expect(a.do("GET", "/api/v1/me", e.proc, nil), 200).str("id")
	e.claim = a.expect(a.do("POST", "/api/v1/claims", e.alice, map[string]any{"policyNumber": "AUTO-7001", "type": "collision",
		"incidentDate": "2026-03-01", "description": "Rear-ended by Jane Roe at a red light", "currency": "USD", "submit": true,
		"lines": []map[string]string{{"category": "vehicle", "description": "Bumper", "amount": "500.00"}}}), 201).str("id")
	return e
}

// wsOpts are how a test dials.
type wsOpts struct {
	token     string // sent as the bearer.<token> subprotocol
	origin    string
	query     string
	protocols []string // overrides the subprotocols
	rcvBuf    int      // SO_RCVBUF of the client socket (slow readers)
}

func (s *server) dialWS(o wsOpts) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	protos := o.protocols
	if protos == nil {
		protos = []string{"claims.v1"}
		if o.token != "" {
			protos = append(protos, "bearer."+o.token)
		}
	}
	hdr := http.Header{}
	if o.origin != "" {
		hdr.Set("Origin", o.origin)
	}
	base := s.client.Transport.(*http.Transport).Clone()
	if o.rcvBuf > 0 {
		d := &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.rcvBuf)
			})
			return errors.Join(err, serr)
		}}
		base.DialContext = d.DialContext
	}
	u := "wss" + strings.TrimPrefix(s.base, "https") + "/api/v1/ws"
	if o.query != "" {
		u += "?" + o.query
	}
	c, res, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: &http.Client{Transport: base},
		HTTPHeader: hdr, Subprotocols: protos})
	if c != nil {
		c.SetReadLimit(1 << 20)
	}
	return c, res, err
}

// openWS dials with token and waits for "ready".
func (s *server) openWS(token string) *websocket.Conn {
	s.t.Helper()
	c, res, err := s.dialWS(wsOpts{token: token})
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		s.t.Fatalf("dial: %v (status %d)", err, status)
	}
	s.t.Cleanup(func() { c.CloseNow() })
	if got := c.Subprotocol(); got != "claims.v1" {
		s.t.Fatalf("server chose subprotocol %q, want claims.v1 (and never the bearer one)", got)
	}
	if m := wsRead(s.t, c, 5*time.Second); m["type"] != "ready" {
		s.t.Fatalf("first message %v, want ready", m)
	}
	return c
}

func wsSend(t testing.TB, c *websocket.Conn, m map[string]string) {
	t.Helper()
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("write %v: %v", m, err)
	}
}

// wsReadRaw returns the next message's bytes, or the error.
func wsReadRaw(c *websocket.Conn, d time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, b, err := c.Read(ctx)
	return b, err
}

func wsRead(t testing.TB, c *websocket.Conn, d time.Duration) map[string]any {
	t.Helper()
	b, err := wsReadRaw(c, d)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("message %s: %v", b, err)
	}
	return m
}

// wsAwait reads until a message with the given type (and, for events, the
// event name and claim) arrives, returning its raw bytes.
func wsAwait(t testing.TB, c *websocket.Conn, typ, event, claim string) (map[string]any, []byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := wsReadRaw(c, time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for %s %s: %v", typ, event, err)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		if m["type"] == typ && (event == "" || m["event"] == event) && (claim == "" || m["claimId"] == claim) {
			return m, b
		}
	}
	t.Fatalf("no %s %s for %s within 10s", typ, event, claim)
	return nil, nil
}

// wsExpectClose reads until the socket closes and checks the status code
// and that it closed within d.
func wsExpectClose(t testing.TB, c *websocket.Conn, code websocket.StatusCode, d time.Duration) string {
	t.Helper()
	start := time.Now()
	for {
		_, err := wsReadRaw(c, d)
		if err == nil {
			continue
		}
		if got := websocket.CloseStatus(err); got != code {
			t.Fatalf("socket ended with %v (status %d), want %d", err, got, code)
		}
		if took := time.Since(start); took > d {
			t.Fatalf("socket closed after %s, want within %s", took, d)
		}
		var ce websocket.CloseError
		errors.As(err, &ce)
		return ce.Reason
	}
}

// TestLiveEvents: a customer and a processor follow a claim and their
// scopes and receive the changes another user makes through the API;
// a foreign claim is refused with the same answer as a missing one; events
// carry ids, status and time only.
func TestLiveEvents(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, newEnv(t, store.SQLite))

	alice := e.openWS(e.alice)
	wsSend(t, alice, map[string]string{"type": "subscribe", "claimId": e.claim})
	if m, _ := wsAwait(t, alice, "subscribed", "", e.claim); m["status"] != "submitted" {
		t.Fatalf("subscribed: %v", m)
	}
	wsSend(t, alice, map[string]string{"type": "subscribe", "scope": "own"})
	wsAwait(t, alice, "subscribed", "", "")

	// The processor authenticates with the first message instead.
	proc, _, err := e.dialWS(wsOpts{})
	if err != nil {
		t.Fatal(err)
	}
	defer proc.CloseNow()
	wsSend(t, proc, map[string]string{"type": "auth", "token": e.proc})
	wsAwait(t, proc, "ready", "", "")
	wsSend(t, proc, map[string]string{"type": "subscribe", "scope": "queue"})
	wsAwait(t, proc, "subscribed", "", "")

	// Bob: Alice's claim is "not found", exactly like a missing one; he
	// may not follow a queue either.
	bob := e.openWS(e.bob)
	wsSend(t, bob, map[string]string{"type": "subscribe", "claimId": e.claim})
	foreign, _ := wsAwait(t, bob, "error", "", e.claim)
	missing := "0123456789abcdef0123456789abcdef"
	wsSend(t, bob, map[string]string{"type": "subscribe", "claimId": missing})
	gone, _ := wsAwait(t, bob, "error", "", missing)
	if foreign["code"] != "not_found" || foreign["code"] != gone["code"] || foreign["detail"] != gone["detail"] {
		t.Fatalf("foreign claim %v, missing claim %v: must answer alike", foreign, gone)
	}
	wsSend(t, bob, map[string]string{"type": "subscribe", "scope": "queue"})
	if m, _ := wsAwait(t, bob, "error", "", ""); m["code"] != "forbidden" {
		t.Fatalf("customer following the queue: %v", m)
	}

	// The processor's API call reaches Alice (claim and own scope: once)
	// and the processor's queue.
	e.expect(e.do("POST", "/api/v1/claims/"+e.claim+"/assign", e.proc, nil), 200)
	m, raw := wsAwait(t, alice, "event", "claim.status_changed", e.claim)
	if m["status"] != "under_review" {
		t.Fatalf("event %s", raw)
	}
	if keys := strings.Join(slices.Sorted(maps.Keys(m)), ","); keys != "at,claimId,event,status,type" {
		t.Fatalf("event carries %s; want ids, status and time only: %s", keys, raw)
	}
	if strings.Contains(string(raw), "Jane") || strings.Contains(string(raw), "alice") {
		t.Fatalf("personal data in event: %s", raw)
	}
	wsAwait(t, proc, "event", "claim.status_changed", e.claim)
	e.expect(e.do("POST", "/api/v1/claims/"+e.claim+"/request-info", e.proc, map[string]string{"message": "Please send the invoice."}), 200)
	if m, _ := wsAwait(t, alice, "event", "claim.info_requested", e.claim); m["status"] != "info_requested" {
		t.Fatalf("info requested: %v", m)
	}
	// Alice followed the claim twice (by id and by scope): one delivery.
	wsSend(t, alice, map[string]string{"type": "ping"})
	if m := wsRead(t, alice, 5*time.Second); m["type"] != "pong" {
		t.Fatalf("after the event, got %v; want the pong (no duplicate)", m)
	}
	// Bob, who follows nothing, received nothing but his answers.
	wsSend(t, bob, map[string]string{"type": "ping"})
	if m := wsRead(t, bob, 5*time.Second); m["type"] != "pong" {
		t.Fatalf("bob got %v", m)
	}
}

// TestLiveCrossSite: a page of another origin (or the same host over
// http) can't open a socket; without credentials nothing is served; a
// token in the URL is refused before any upgrade.
func TestLiveCrossSite(t *testing.T) {
	t.Parallel()
	env := newEnv(t, store.SQLite)
	env["CLAIMS_WS_ORIGINS"] = "https://app.example.com"
	e := newLiveEnv(t, env)
	host := strings.TrimPrefix(e.base, "https://")

	for _, origin := range []string{"https://evil.example", "http://" + host, "null", "https://" + host + ".evil.example"} {
		_, res, err := e.dialWS(wsOpts{token: e.alice, origin: origin})
		if err == nil || res == nil || res.StatusCode != http.StatusForbidden {
			t.Errorf("origin %s: err %v, response %v; want 403", origin, err, res)
		}
	}
	for _, origin := range []string{"https://" + host, "https://app.example.com"} {
		c, _, err := e.dialWS(wsOpts{token: e.alice, origin: origin})
		if err != nil {
			t.Fatalf("origin %s refused: %v", origin, err)
		}
		c.CloseNow()
	}

	// Token in the URL: refused before the upgrade, even a valid one.
	for _, q := range []string{"access_token=" + e.alice, "token=" + e.alice, "x=1"} {
		_, res, err := e.dialWS(wsOpts{query: q})
		if err == nil || res == nil || res.StatusCode != http.StatusBadRequest {
			t.Errorf("query %q: err %v response %v; want 400", q[:5], err, res)
		}
	}
	// A bad token in the subprotocol: 401, no upgrade. A client that
	// offers a token but not claims.v1: 400.
	if _, res, err := e.dialWS(wsOpts{token: "not-a-token"}); err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad token: %v %v", err, res)
	}
	if _, res, err := e.dialWS(wsOpts{protocols: []string{"bearer." + e.alice}}); err == nil || res == nil || res.StatusCode != http.StatusBadRequest {
		t.Errorf("no claims.v1: %v %v", err, res)
	}
	// A plain GET is not an upgrade.
	e.expect(e.do("GET", "/api/v1/ws", e.alice, nil), 400)

	// No credentials: the upgrade happens (browsers can't send headers) but
	// nothing is served, and the socket closes when no token comes.
	c, _, err := e.dialWS(wsOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if reason := wsExpectClose(t, c, websocket.StatusPolicyViolation, 8*time.Second); reason != "authentication required" {
		t.Errorf("close reason %q", reason)
	}
	c, _, err = e.dialWS(wsOpts{})
	if err != nil {
		t.Fatal(err)
	}
	wsSend(t, c, map[string]string{"type": "subscribe", "claimId": e.claim})
	wsExpectClose(t, c, websocket.StatusPolicyViolation, 3*time.Second)
	c, _, err = e.dialWS(wsOpts{})
	if err != nil {
		t.Fatal(err)
	}
	wsSend(t, c, map[string]string{"type": "auth", "token": e.alice + "x"})
	wsExpectClose(t, c, websocket.StatusPolicyViolation, 3*time.Second)
}

// TestLiveSessionEnds: the socket closes within seconds of a logout, of an
// administrator ending the user's sessions, and of a role change.
func TestLiveSessionEnds(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, newEnv(t, store.SQLite))

	alice := e.openWS(e.alice)
	e.expect(e.do("POST", "/api/v1/auth/logout", e.alice, nil), 204)
	if reason := wsExpectClose(t, alice, websocket.StatusPolicyViolation, 8*time.Second); reason != "session ended" {
		t.Errorf("logout close reason %q", reason)
	}

	proc := e.openWS(e.proc)
	wsSend(t, proc, map[string]string{"type": "subscribe", "scope": "queue"})
	wsAwait(t, proc, "subscribed", "", "")
	e.expect(e.do("POST", "/api/v1/users/"+e.procID+"/role", e.admin, map[string]string{"role": "customer"}), 204)
	reason := wsExpectClose(t, proc, websocket.StatusPolicyViolation, 8*time.Second)
	if reason != "permissions changed" && reason != "session ended" {
		t.Errorf("role change close reason %q", reason)
	}

	bob := e.openWS(e.bob)
	bobID := e.expect(e.do("GET", "/api/v1/me", e.bob, nil), 200).str("id")
	e.expect(e.do("POST", "/api/v1/users/"+bobID+"/logout", e.admin, nil), 204)
	wsExpectClose(t, bob, websocket.StatusPolicyViolation, 8*time.Second)
}

// TestLiveSlowConsumer: a client that stops reading is dropped; another
// following the same events gets every one of them, promptly.
func TestLiveSlowConsumer(t *testing.T) {
	t.Parallel()
	env := newEnv(t, store.SQLite)
	env["CLAIMS_RATE_WRITE_USER"], env["CLAIMS_RATE_WRITE_IP"] = "off", "off" // a thousand posts in a few seconds
	e := newLiveEnv(t, env)
	fast := e.openWS(e.alice)
	slow, _, err := e.dialWS(wsOpts{token: e.alice, rcvBuf: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	for _, c := range []*websocket.Conn{fast, slow} {
		wsSend(t, c, map[string]string{"type": "subscribe", "claimId": e.claim})
	}
	wsAwait(t, fast, "subscribed", "", e.claim)

	const n = 1000
	var (
		mu       sync.Mutex
		got      int
		lastSeen time.Time
		worst    time.Duration
	)
	posted := make([]time.Time, 0, n)
	done := make(chan error, 1)
	go func() {
		for {
			b, err := wsReadRaw(fast, 60*time.Second)
			if err != nil {
				done <- err
				return
			}
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			if m["event"] == "message.created" {
				mu.Lock()
				got++
				lastSeen = time.Now()
				at, _ := time.Parse(time.RFC3339Nano, m["at"].(string))
				if lag := time.Since(at); lag > worst {
					worst = lag
				}
				c := got
				mu.Unlock()
				if c == n {
					done <- nil
					return
				}
			}
		}
	}()
	for i := range n {
		e.expect(e.do("POST", "/api/v1/claims/"+e.claim+"/messages", e.alice, map[string]string{"text": fmt.Sprintf("note %d", i)}), 201)
		posted = append(posted, time.Now())
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("fast client: %v after %d events", err, got)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("fast client got %d of %d events", got, n)
	}
	mu.Lock()
	t.Logf("fast client: %d events, last %s after the last post, worst lag %s", got, lastSeen.Sub(posted[n-1]), worst)
	if worst > 2*time.Second {
		t.Errorf("fast client delayed: an event took %s", worst)
	}
	mu.Unlock()

	// The slow client now reads what reached it: fewer than n events, then
	// the end of the socket.
	events := 0
	for {
		b, err := wsReadRaw(slow, 20*time.Second)
		if err != nil {
			t.Logf("slow client: %d events, then %v", events, err)
			if st := websocket.CloseStatus(err); st != -1 && st != websocket.StatusTryAgainLater {
				t.Errorf("slow client closed with %d, want 1013 (or a dropped connection)", st)
			}
			break
		}
		if strings.Contains(string(b), "message.created") {
			events++
		}
	}
	if events >= n {
		t.Errorf("slow client received all %d events; it should have been dropped", events)
	}
}

// TestLiveLimits: sockets per user are limited (5 by default).
func TestLiveLimits(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, newEnv(t, store.SQLite))
	var open []*websocket.Conn
	for range 5 {
		open = append(open, e.openWS(e.alice))
	}
	if _, res, err := e.dialWS(wsOpts{token: e.alice}); err == nil || res == nil || res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("6th socket: %v %v; want 429", err, res)
	}
	// First-message authentication counts too.
	c, _, err := e.dialWS(wsOpts{})
	if err != nil {
		t.Fatal(err)
	}
	wsSend(t, c, map[string]string{"type": "auth", "token": e.alice})
	wsExpectClose(t, c, websocket.StatusPolicyViolation, 5*time.Second)
	// Another user is not affected; closing one frees a place.
	e.openWS(e.bob)
	open[0].Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, _, err := e.dialWS(wsOpts{token: e.alice})
		if err == nil {
			c.CloseNow()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("place not freed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLiveTwoNodes: an event raised on node A reaches a socket on node B
// (PostgreSQL LISTEN/NOTIFY).
func TestLiveTwoNodes(t *testing.T) {
	t.Parallel()
	envA := newEnv(t, store.Postgres) // skips without PostgreSQL, fails under CI=true
	envA["CLAIMS_KEYS_DIR"] = filepath.Join(t.TempDir(), "keys")
	envB := maps.Clone(envA)
	envB["CLAIMS_DATA_DIR"] = t.TempDir()
	mustRun(t, envA, pw+"\n", "user", "create", "--email", "admin@example.com", "--role", "admin", "--password-stdin")
	mustRun(t, envA, pw+"\n", "user", "create", "--email", "proc@example.com", "--role", "claims_processor", "--password-stdin")
	a := startServer(t, envA)
	b := startServer(t, envB)
	e := setupLive(t, a, b)

	onB := b.openWS(e.alice)
	wsSend(t, onB, map[string]string{"type": "subscribe", "scope": "own"})
	wsAwait(t, onB, "subscribed", "", "")
	a.expect(a.do("POST", "/api/v1/claims/"+e.claim+"/assign", e.proc, nil), 200)
	if m, _ := wsAwait(t, onB, "event", "claim.status_changed", e.claim); m["status"] != "under_review" {
		t.Fatalf("event on B: %v", m)
	}
	a.expect(a.do("POST", "/api/v1/claims/"+e.claim+"/messages", e.proc, map[string]string{"text": "We are on it."}), 201)
	wsAwait(t, onB, "event", "message.created", e.claim)
	// Logout on A closes the socket on B.
	a.expect(a.do("POST", "/api/v1/auth/logout", e.alice, nil), 204)
	wsExpectClose(t, onB, websocket.StatusPolicyViolation, 8*time.Second)
}
