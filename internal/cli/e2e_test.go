package cli_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/openclaims/claims/internal/cli"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
)

// server is a running `claims serve` for a test.
type server struct {
	t       testing.TB
	base    string
	client  *http.Client
	env     map[string]string
	dataDir string
}

// newEnv returns the environment of one installation on engine d.
func newEnv(t testing.TB, d store.Dialect) map[string]string {
	dir := t.TempDir()
	env := map[string]string{"CLAIMS_DATA_DIR": dir, "CLAIMS_BCRYPT_COST": "10", "CLAIMS_LOG_LEVEL": "warn",
		"CLAIMS_RATE_LIMITS": "off"} // every request comes from 127.0.0.1; edge_test.go sets the limits it tests
	if d == store.Postgres {
		env["CLAIMS_DATABASE_URL"] = storetest.URL(t, d)
	}
	return env
}

// run runs one claims command with env, returning its standard output.
func run(t testing.TB, env map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := cli.Run(context.Background(), cli.Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] }}, args)
	if err != nil {
		return out.String(), fmt.Errorf("%w (stderr: %s)", err, errb.String())
	}
	return out.String(), nil
}

func mustRun(t testing.TB, env map[string]string, stdin string, args ...string) string {
	t.Helper()
	out, err := run(t, env, stdin, args...)
	if err != nil {
		t.Fatalf("claims %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// startServer runs `claims serve` on a random port until the test ends, and
// returns a client that trusts exactly the server's certificate.
func startServer(t testing.TB, env map[string]string) *server {
	t.Helper()
	s, _ := startServerOut(t, env)
	return s
}

// startServerOut is startServer that also returns what serve printed (its
// banner and log).
func startServerOut(t testing.TB, env map[string]string) (*server, *syncBuffer) {
	t.Helper()
	env["CLAIMS_ADDR"] = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	out := &syncBuffer{}
	go func() {
		done <- cli.Run(ctx, cli.Env{Stdin: strings.NewReader(""), Stdout: out, Stderr: out,
			Getenv: func(k string) string { return env[k] }, Ready: func(a string) { ready <- a }}, []string{"serve"})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve exited: %v\n%s", err, out.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	certFile := env["CLAIMS_TLS_CERT"]
	if certFile == "" {
		certFile = filepath.Join(env["CLAIMS_DATA_DIR"], "tls-cert.pem")
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
	return &server{t: t, base: "https://" + addr, client: client, env: env, dataDir: env["CLAIMS_DATA_DIR"]}, out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// resp is a decoded response.
type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r resp) str(path ...string) string {
	var v any = r.body
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

func (r resp) items() []map[string]any {
	var out []map[string]any
	list, _ := r.body["items"].([]any)
	for _, x := range list {
		out = append(out, x.(map[string]any))
	}
	return out
}

// do sends a JSON request as token (empty: anonymous).
func (s *server) do(method, path, token string, body any, headers ...string) resp {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (s *server) expect(r resp, status int) resp {
	s.t.Helper()
	if r.status != status {
		s.t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

func (s *server) login(email, password string) string {
	s.t.Helper()
	r := s.expect(s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": password}), 200)
	return r.str("access_token")
}

const pw = "correct horse battery staple 42"

// totpCode returns the TOTP code of secret for the time step offset steps
// from now. Each code may be used once (a later step each time), so tests
// that need several codes within 30 seconds step forward within the ±1
// step the server tolerates.
func totpCode(t testing.TB, secret string, offset int) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, time.Now().Add(time.Duration(offset)*30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// enrollMFA enrols a TOTP factor for the signed-in user and returns its
// secret; the session that enrolled counts as MFA-verified.
func (s *server) enrollMFA(token string) string {
	s.t.Helper()
	en := s.expect(s.do("POST", "/api/v1/auth/mfa/enroll", token, nil), 200)
	secret := en.str("secret")
	codes := s.expect(s.do("POST", "/api/v1/auth/mfa/confirm", token, map[string]string{"code": totpCode(s.t, secret, -1)}), 200)
	if n := len(codes.body["recovery_codes"].([]any)); n != 10 {
		s.t.Fatalf("%d recovery codes", n)
	}
	return secret
}

// adminSession signs in a fresh admin: password, then TOTP enrolment.
func (s *server) adminSession(email string) string {
	s.t.Helper()
	tok := s.login(email, pw)
	s.enrollMFA(tok)
	return tok
}

// TestEndToEnd walks the product as its users do, on each database: an
// admin imports historical claims and sets up a policy; a customer files a
// claim with line items; a processor takes it through review to approval
// and payment; amounts are checked; a second customer sees none of it.
func TestEndToEnd(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		env := newEnv(t, d)
		mustRun(t, env, pw+"\n", "user", "create", "--email", "admin@example.com", "--role", "admin", "--password-stdin")
		mustRun(t, env, pw+"\n", "user", "create", "--email", "proc1@example.com", "--role", "claims_processor", "--password-stdin")
		mustRun(t, env, pw+"\n", "user", "create", "--email", "proc2@example.com", "--role", "claims_processor", "--password-stdin")
		out := mustRun(t, env, "", "import", "auto-claims", "--quiet", "../importer/testdata/auto_lf_c39.csv")
		if !strings.Contains(out, "imported") {
			t.Fatalf("import summary: %s", out)
		}
		again := mustRun(t, env, "", "import", "auto-claims", "--quiet", "../importer/testdata/auto_lf_c39.csv")
		if !strings.Contains(again, " 0 imported") {
			t.Fatalf("second import should import nothing: %s", again)
		}

		s := startServer(t, env)
		for _, email := range []string{"alice@example.com", "bob@example.com"} {
			s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": pw, "fullName": "Test " + email}), 202)
			s.verifyEmail(email)
		}
		admin := s.adminSession("admin@example.com")
		s.expect(s.do("POST", "/api/v1/policies", admin, map[string]any{
			"number": "AUTO-1001", "productLine": "auto", "effectiveDate": "2026-01-01", "expiryDate": "2026-12-31",
			"currency": "USD", "coverageLimit": "1000.00", "deductible": "100.00", "premium": "600.00",
			"holderEmail": "alice@example.com"}), 201)

		alice, bob := s.login("alice@example.com", pw), s.login("bob@example.com", pw)
		pols := s.expect(s.do("GET", "/api/v1/policies", alice, nil), 200)
		if n := len(pols.items()); n != 1 {
			t.Fatalf("alice sees %d policies, want 1", n)
		}

		claim := map[string]any{"policyNumber": "AUTO-1001", "type": "collision", "incidentDate": "2026-03-01",
			"description": "Rear-ended at a red light", "location": "Springfield", "currency": "USD", "submit": true,
			"lines": []map[string]string{
				{"category": "vehicle", "description": "Bumper", "amount": "500.00", "serviceDate": "2026-03-02"},
				{"category": "towing", "description": "Tow", "amount": "150.00"},
				{"category": "medication", "description": "Painkillers", "amount": "30.00"},
			}}
		first := s.expect(s.do("POST", "/api/v1/claims", alice, claim, "Idempotency-Key", "k-1"), 201)
		id := first.str("id")
		retry := s.expect(s.do("POST", "/api/v1/claims", alice, claim, "Idempotency-Key", "k-1"), 201)
		if retry.str("id") != id || retry.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry created a new claim: %s vs %s", retry.str("id"), id)
		}
		if first.str("status") != "submitted" || first.str("total", "amount") != "680.00" {
			t.Fatalf("filed claim: %s", first.raw)
		}

		// Bob sees none of it: not in lists, not by id, not its history.
		if n := len(s.expect(s.do("GET", "/api/v1/claims", bob, nil), 200).items()); n != 0 {
			t.Errorf("bob lists %d claims, want 0", n)
		}
		notFound := s.expect(s.do("GET", "/api/v1/claims/"+id, bob, nil), 404)
		missing := s.expect(s.do("GET", "/api/v1/claims/0123456789abcdef0123456789abcdef", bob, nil), 404)
		if notFound.str("detail") != missing.str("detail") {
			t.Errorf("foreign and missing claims answer differently: %q vs %q", notFound.str("detail"), missing.str("detail"))
		}
		s.expect(s.do("GET", "/api/v1/claims/"+id+"/history", bob, nil), 404)
		s.expect(s.do("POST", "/api/v1/claims/"+id+"/withdraw", bob, nil), 404)
		if n := len(s.expect(s.do("GET", "/api/v1/policies", bob, nil), 200).items()); n != 0 {
			t.Errorf("bob lists %d policies, want 0", n)
		}
		// Bob can't file on Alice's policy: same answer as a missing policy.
		claim["policyNumber"] = "AUTO-1001"
		bad := s.expect(s.do("POST", "/api/v1/claims", bob, claim), 400)
		if bad.str("detail") != "Policy not found." {
			t.Errorf("bob filing on alice's policy: %s", bad.raw)
		}

		// The processor sees the imported claims and Alice's in the intake queue.
		proc := s.login("proc1@example.com", pw)
		queue := s.expect(s.do("GET", "/api/v1/claims?limit=200", proc, nil), 200).items()
		if len(queue) < 2 {
			t.Fatalf("processor sees %d claims, want the imported ones and alice's", len(queue))
		}
		s.expect(s.do("POST", "/api/v1/claims/"+id+"/decide", proc, map[string]string{"outcome": "approve"}), 403) // not assigned
		a := s.expect(s.do("POST", "/api/v1/claims/"+id+"/assign", proc, nil), 200)
		if a.str("status") != "under_review" {
			t.Fatalf("assigned claim: %s", a.raw)
		}
		s.expect(s.do("POST", "/api/v1/claims/"+id+"/request-info", proc, map[string]string{"message": "Please send the repair invoice."}), 200)
		s.expect(s.do("POST", "/api/v1/claims/"+id+"/respond", alice, map[string]string{"message": "Invoice attached."}), 200)

		// A stale version loses; an illegal transition names the allowed ones.
		cur := s.expect(s.do("GET", "/api/v1/claims/"+id, proc, nil), 200)
		etag := cur.header.Get("ETag")
		stale := s.do("POST", "/api/v1/claims/"+id+"/decide", proc, map[string]string{"outcome": "approve"}, "If-Match", `"1"`)
		s.expect(stale, 412)
		ill := s.expect(s.do("POST", "/api/v1/claims/"+id+"/pay", proc, nil), 409)
		if !strings.Contains(string(ill.raw), `"allowed"`) {
			t.Errorf("409 without allowed transitions: %s", ill.raw)
		}

		dec := s.expect(s.do("POST", "/api/v1/claims/"+id+"/decide", proc, map[string]any{"outcome": "approve",
			"reason": "Covered collision; medication is not an auto benefit."}, "If-Match", etag), 200)
		// 500 + 150 eligible (medication not covered); deductible 100 from the
		// first line: 400 + 150 = 550 payable, within the 1000 limit.
		if got := dec.str("payable", "amount"); got != "550.00" || dec.str("status") != "partially_approved" {
			t.Fatalf("decision payable %s status %s: %s", got, dec.str("status"), dec.raw)
		}
		lines := dec.body["decision"].(map[string]any)["lines"].([]any)
		want := []string{"400.00", "150.00", "0.00"}
		for i, l := range lines {
			if got := l.(map[string]any)["benefit"].(map[string]any)["amount"]; got != want[i] {
				t.Errorf("line %d benefit %v, want %s", i+1, got, want[i])
			}
		}
		paid := s.expect(s.do("POST", "/api/v1/claims/"+id+"/pay", proc, map[string]string{"reference": "WIRE-1"}), 200)
		if paid.str("status") != "paid" {
			t.Fatalf("paid: %s", paid.raw)
		}
		hist := s.expect(s.do("GET", "/api/v1/claims/"+id+"/history", alice, nil), 200).items()
		var path []string
		for _, h := range hist {
			path = append(path, h["to"].(string))
		}
		if got := strings.Join(path, ">"); got != "submitted>under_review>info_requested>under_review>partially_approved>paid" {
			t.Errorf("history %s", got)
		}

		// A second claim hits the limit (1000 - 550 = 450 left), is appealed,
		// and the appeal must go to another processor.
		claim["lines"] = []map[string]string{{"category": "vehicle", "description": "Door", "amount": "700.00"}}
		claim["incidentDate"] = "2026-04-01"
		second := s.expect(s.do("POST", "/api/v1/claims", alice, claim), 201).str("id")
		s.expect(s.do("POST", "/api/v1/claims/"+second+"/assign", proc, nil), 200)
		d2 := s.expect(s.do("POST", "/api/v1/claims/"+second+"/decide", proc, map[string]string{"outcome": "approve"}), 200)
		if d2.str("payable", "amount") != "450.00" {
			t.Fatalf("second claim payable %s, want 450.00 (limit)", d2.str("payable", "amount"))
		}
		s.expect(s.do("POST", "/api/v1/claims/"+second+"/appeal", alice, map[string]string{"reason": "The limit was miscounted."}), 200)
		s.expect(s.do("POST", "/api/v1/claims/"+second+"/assign", proc, nil), 403)
		s.expect(s.do("POST", "/api/v1/claims/"+second+"/decide", proc, map[string]string{"outcome": "approve"}), 403)
		proc2 := s.login("proc2@example.com", pw)
		s.expect(s.do("POST", "/api/v1/claims/"+second+"/assign", proc2, map[string]string{}), 200)
		// Now held by proc2, the claim has left proc1's queue entirely.
		s.expect(s.do("GET", "/api/v1/claims/"+second, proc, nil), 404)
		d3 := s.expect(s.do("POST", "/api/v1/claims/"+second+"/decide", proc2, map[string]any{"outcome": "deny", "reason": "Limit correctly applied."}), 200)
		if d3.str("status") != "denied" || d3.str("payable", "amount") != "0.00" {
			t.Errorf("appeal decision: %s", d3.raw)
		}
		// One appeal per claim: its decision is final here.
		s.expect(s.do("POST", "/api/v1/claims/"+second+"/appeal", alice, map[string]string{"reason": "Again, please."}), 409)
		// The scheme name in Authorization is case-insensitive.
		s.expect(s.do("GET", "/api/v1/me", "", nil, "Authorization", "bearer "+alice), 200)
		// Bob still sees nothing, and the audit log holds together.
		if n := len(s.expect(s.do("GET", "/api/v1/claims", bob, nil), 200).items()); n != 0 {
			t.Errorf("bob lists %d claims at the end, want 0", n)
		}
		trail := s.expect(s.do("GET", "/api/v1/audit?object="+id, admin, nil), 200).items()
		if len(trail) < 5 {
			t.Errorf("audit trail of the claim has %d entries", len(trail))
		}
		s.expect(s.do("GET", "/api/v1/audit", alice, nil), 403)
		if out := mustRun(t, env, "", "audit", "verify"); !strings.Contains(out, "intact") {
			t.Errorf("audit verify: %s", out)
		}
	})
}

// verifyEmail confirms a registered customer's email the way they would:
// the code from the mail (the outbox) posted to /auth/verify-email.
func (s *server) verifyEmail(email string) {
	s.t.Helper()
	out := mustRun(s.t, s.env, "", "outbox")
	var code string
	for _, msg := range strings.Split(out, "--- ")[1:] {
		if strings.Contains(msg, "verify_email to "+email+"\n") {
			if m := regexp.MustCompile(`within 7 days: (\S+)`).FindStringSubmatch(msg); m != nil {
				code = m[1]
			}
		}
	}
	if code == "" {
		s.t.Fatalf("no verification code for %s in the outbox", email)
	}
	s.expect(s.do("POST", "/api/v1/auth/verify-email", "", map[string]string{"token": code}), 204)
}

// registerVerified registers a customer and confirms their email.
func (s *server) registerVerified(email, password string) {
	s.t.Helper()
	s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": password}), 202)
	s.verifyEmail(email)
}
