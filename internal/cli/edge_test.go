package cli_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openclaims/claims/client"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/web/api"
	"github.com/openclaims/claims/internal/web/api/openapicheck"
)

// The API edge through the real server (docs/edge.md): rate limits, slow
// clients, CORS, headers, versioning, TLS, the plain-HTTP redirect, the
// pinned client and the OpenAPI contract.

func certPath(env map[string]string) string {
	if c := env["CLAIMS_TLS_CERT"]; c != "" {
		return c
	}
	return filepath.Join(env["CLAIMS_DATA_DIR"], "tls-cert.pem")
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func certOf(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func anonPost(s *server, path string, body any, headers ...string) resp {
	return s.do("POST", path, "", body, headers...)
}

// TestEdgeRateLimit: per address by class (a client rotating forged
// X-Forwarded-For values is limited all the same), 429 problem with
// Retry-After, per user independent of the address, classes apart.
func TestEdgeRateLimit(t *testing.T) {
	env := newEnv(t, store.SQLite)
	env["CLAIMS_RATE_AUTH_IP"] = "3/1m"
	env["CLAIMS_RATE_READ_USER"] = "4/1m"
	env["CLAIMS_LOGIN_IP_DELAY_AFTER"] = "1000" // the failure throttle has its own test
	mustRun(t, env, pw+"\n", "user", "create", "--email", "proc@example.com", "--role", "claims_processor", "--password-stdin")
	s := startServer(t, env)
	var got []int
	var last resp
	for i := range 5 {
		last = anonPost(s, "/api/v1/auth/login", map[string]string{"email": fmt.Sprintf("u%d@example.com", i), "password": "guess guess guess"},
			"X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1))
		got = append(got, last.status)
	}
	if fmt.Sprint(got) != "[401 401 401 429 429]" {
		t.Fatalf("statuses %v: want three 401s, then 429s despite rotating X-Forwarded-For", got)
	}
	ra := last.header.Get("Retry-After")
	if ra == "" || ra == "0" || last.header.Get("Content-Type") != "application/problem+json" || last.str("type") != "urn:claims:problem:rate_limited" ||
		!strings.Contains(string(last.raw), `"rule":"rate_limited"`) {
		t.Errorf("429: Retry-After %q, %v %s", ra, last.header, last.raw)
	}
	// Other classes from the same address are not affected.
	s.expect(s.do("GET", "/healthz", "", nil), 200)

	// Per user: a token, four reads, the fifth refused; the limit follows
	// the user, not the address (the processor signs in via the CLI-made
	// account on a fresh server: the auth budget above is spent).
	s2 := startServer(t, env)
	tok := s2.login("proc@example.com", pw)
	for range 4 {
		s2.expect(s2.do("GET", "/api/v1/me", tok, nil), 200)
	}
	r := s2.expect(s2.do("GET", "/api/v1/me", tok, nil), 429)
	if r.header.Get("Retry-After") == "" || r.str("detail") == "" {
		t.Errorf("per-user 429: %v %s", r.header, r.raw)
	}
	// Writes are another class.
	s2.expect(s2.do("POST", "/api/v1/auth/logout", tok, nil), 204)
}

// TestEdgeRateLimitShared: on PostgreSQL the buckets live in the database,
// so two nodes share one budget per address.
func TestEdgeRateLimitShared(t *testing.T) {
	envA := newEnv(t, store.Postgres)
	envA["CLAIMS_KEYS_DIR"] = filepath.Join(t.TempDir(), "keys")
	envA["CLAIMS_RATE_AUTH_IP"] = "4/1m"
	envA["CLAIMS_LOGIN_IP_DELAY_AFTER"] = "1000"
	envB := maps.Clone(envA)
	envB["CLAIMS_DATA_DIR"] = t.TempDir()
	mustRun(t, envA, pw+"\n", "user", "create", "--email", "admin@example.com", "--role", "admin", "--password-stdin")
	a, outA := startServerOut(t, envA)
	b := startServer(t, envB)
	if !strings.Contains(outA.String(), "rate limits: shared (database)") {
		t.Errorf("banner: %s", outA.String())
	}
	var got []int
	for i, s := range []*server{a, b, a, b, a, b} {
		got = append(got, anonPost(s, "/api/v1/auth/login", map[string]string{"email": fmt.Sprintf("n%d@example.com", i), "password": "guess guess guess"}).status)
	}
	if fmt.Sprint(got) != "[401 401 401 401 429 429]" {
		t.Errorf("statuses alternating nodes %v: want four 401s in all, then 429s on both", got)
	}
}

// TestEdgeDefaultsAndOff: the defaults are configured, and a class can be
// switched off.
func TestEdgeDefaultsAndOff(t *testing.T) {
	env := newEnv(t, store.SQLite)
	delete(env, "CLAIMS_RATE_LIMITS") // the production defaults
	env["CLAIMS_RATE_READ_IP"] = "off"
	env["CLAIMS_RATE_BACKEND"] = "memory"
	s, out := startServerOut(t, env)
	if !strings.Contains(out.String(), "rate limits: in process; CORS: off") {
		t.Errorf("banner: %s", out.String())
	}
	for range 50 {
		s.expect(s.do("GET", "/healthz", "", nil), 200) // reads per address: off
	}
	// Sign-ins per address: the default 30 a minute.
	var got []int
	for i := range 32 {
		got = append(got, anonPost(s, "/api/v1/auth/password-reset", map[string]string{"email": fmt.Sprintf("x%d@example.com", i)}).status)
	}
	if got[29] != 202 || got[30] != 429 || got[31] != 429 {
		t.Errorf("default sign-in class limit: %v", got)
	}
	bad := newEnv(t, store.SQLite)
	bad["CLAIMS_RATE_WRITE_USER"] = "lots"
	if _, err := run(t, bad, "", "serve"); err == nil || !strings.Contains(err.Error(), "CLAIMS_RATE_WRITE_USER") {
		t.Errorf("bad rate accepted: %v", err)
	}
}

var securityHeaders = map[string]string{
	"Strict-Transport-Security":  "max-age=63072000; includeSubDomains",
	"Content-Security-Policy":    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
	"X-Content-Type-Options":     "nosniff",
	"Referrer-Policy":            "no-referrer",
	"Cross-Origin-Opener-Policy": "same-origin",
	"X-Frame-Options":            "DENY",
}

// TestEdgeBrowserSafety: every kind of answer carries the security
// headers; TRACE is refused; errors reveal no stack, version or server
// software; an unknown version points at /api/v1; a cross-site
// state-changing request is refused.
func TestEdgeBrowserSafety(t *testing.T) {
	env := newEnv(t, store.SQLite)
	s := startServer(t, env)
	raw := func(method, path, ct, body string, headers ...string) resp {
		req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		res, err := s.client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return resp{status: res.StatusCode, header: res.Header, raw: b}
	}
	cases := []struct {
		name string
		r    resp
		want int
	}{
		{"health", raw("GET", "/healthz", "", ""), 200},
		{"document", raw("GET", "/api/v1/openapi.json", "", ""), 200},
		{"unknown route", raw("GET", "/api/v1/no/such/thing", "", ""), 404},
		{"unknown version", raw("GET", "/api/v2/claims", "", ""), 404},
		{"outside the api", raw("GET", "/etc/passwd", "", ""), 404},
		{"malformed json", raw("POST", "/api/v1/auth/login", "application/json", `{"email": "a@b.c", "password": `), 400},
		{"wrong media type", raw("POST", "/api/v1/auth/login", "text/plain", `x`), 415},
		{"deep json", raw("POST", "/api/v1/auth/login", "application/json", strings.Repeat("[", 100)), 400},
		{"unauthenticated", raw("GET", "/api/v1/me", "", ""), 401},
		{"garbage token", raw("GET", "/api/v1/claims", "", "", "Authorization", "Bearer a.b.c"), 401},
		{"trace", raw("TRACE", "/api/v1/me", "", "", "Authorization", "Bearer secret-token"), 405},
		{"cross-site post", raw("POST", "/api/v1/auth/login", "application/json", `{"email":"a@b.c","password":"x"}`, "Sec-Fetch-Site", "cross-site"), 403},
		{"cross-origin post", raw("POST", "/api/v1/auth/register", "application/json", `{}`, "Origin", "https://evil.example"), 403},
	}
	leaks := regexp.MustCompile(`goroutine|runtime\.|\.go:\d|go1\.\d|panic|stack|sqlite|postgres|pgx|SQLSTATE`)
	for _, c := range cases {
		if c.r.status != c.want {
			t.Errorf("%s: status %d, want %d: %s", c.name, c.r.status, c.want, c.r.raw)
		}
		for k, v := range securityHeaders {
			if got := c.r.header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", c.name, k, got, v)
			}
		}
		if v := c.r.header.Get("Server") + c.r.header.Get("X-Powered-By"); v != "" {
			t.Errorf("%s: server software disclosed: %q", c.name, v)
		}
		if c.name != "document" && leaks.Match(c.r.raw) {
			t.Errorf("%s: body leaks internals: %s", c.name, c.r.raw)
		}
		// (Outside /api the router's plain 404 answers: no content either way.)
		if c.want >= 400 && c.name != "outside the api" && c.r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d answered as %q: %s", c.name, c.want, c.r.header.Get("Content-Type"), c.r.raw)
		}
	}
	v2 := cases[3].r
	if !strings.Contains(string(v2.raw), "/api/v1") {
		t.Errorf("unknown version does not point at /api/v1: %s", v2.raw)
	}
	if tr := cases[10].r; strings.Contains(string(tr.raw), "secret-token") || tr.header.Get("Allow") == "" {
		t.Errorf("TRACE echoed or without Allow: %v %s", tr.header, tr.raw)
	}
	// The same-origin request (no Sec-Fetch-Site, as from curl or the Go
	// client; or same-origin from a browser) goes through.
	s.expect(raw("POST", "/api/v1/auth/login", "application/json", `{"email":"a@b.c","password":"x"}`, "Sec-Fetch-Site", "same-origin"), 401)
}

// TestEdgeCORS: off by default; with an allowlist, exact matches only, no
// credentials, Vary: Origin, preflights bounded in cost.
func TestEdgeCORS(t *testing.T) {
	off := startServer(t, newEnv(t, store.SQLite))
	r := off.do("GET", "/healthz", "", nil, "Origin", "https://app.example.com")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS answered while off: %v", r.header)
	}

	env := newEnv(t, store.SQLite)
	env["CLAIMS_CORS_ORIGINS"] = "https://app.example.com, https://admin.example.com:8443"
	s, out := startServerOut(t, env)
	if !strings.Contains(out.String(), "CORS: ") || strings.Contains(out.String(), "CORS: off") {
		t.Errorf("banner: %s", out.String())
	}
	const app = "https://app.example.com"
	noAllow := func(name string, r resp) {
		t.Helper()
		for k := range r.header {
			if strings.HasPrefix(k, "Access-Control-Allow") {
				t.Errorf("%s: %s = %q", name, k, r.header.Get(k))
			}
		}
	}
	// Foreign origins, with or without credentials, get nothing; lookalikes too.
	for _, o := range []string{"https://evil.example", "https://app.example.com.evil.example", "http://app.example.com", "null",
		"https://APP.example.com", "https://app.example.com:443"} {
		r := s.do("GET", "/healthz", "", nil, "Origin", o, "Cookie", "session=x")
		noAllow("simple request from "+o, r)
		if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
			t.Errorf("%s: no Vary: Origin: %v", o, r.header)
		}
		p := s.do("OPTIONS", "/api/v1/claims", "", nil, "Origin", o, "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "authorization, content-type")
		if p.status != 403 {
			t.Errorf("preflight from %s: %d", o, p.status)
		}
		noAllow("preflight from "+o, p)
	}
	// The listed origin: reflected exactly, never with credentials or "*".
	r = s.do("GET", "/healthz", "", nil, "Origin", app)
	if r.header.Get("Access-Control-Allow-Origin") != app || r.header.Get("Access-Control-Allow-Credentials") != "" ||
		!strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Errorf("listed origin: %v", r.header)
	}
	p := s.do("OPTIONS", "/api/v1/claims", "", nil, "Origin", app, "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "Authorization, Content-Type, Idempotency-Key")
	if p.status != 204 || p.header.Get("Access-Control-Allow-Origin") != app || p.header.Get("Access-Control-Allow-Methods") != "GET, POST, PUT, DELETE" ||
		p.header.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type, If-Match, Idempotency-Key" ||
		p.header.Get("Access-Control-Allow-Credentials") != "" || p.header.Get("Access-Control-Max-Age") == "" {
		t.Errorf("preflight from the listed origin: %d %v", p.status, p.header)
	}
	for name, hdrs := range map[string][2]string{
		"unlisted method": {"PATCH", "content-type"},
		"unlisted header": {"POST", "content-type, x-secret"},
	} {
		p := s.do("OPTIONS", "/api/v1/claims", "", nil, "Origin", app, "Access-Control-Request-Method", hdrs[0], "Access-Control-Request-Headers", hdrs[1])
		if p.status != 403 {
			t.Errorf("%s: %d", name, p.status)
		}
		noAllow(name, p)
	}
	// A listed origin may make state-changing requests (cross-origin
	// protection trusts it): the login is judged on its merits.
	s.expect(s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "a@b.c", "password": "x"}, "Origin", app, "Sec-Fetch-Site", "cross-site"), 401)

	// Bounded preflights: too long, too many names, and a megabyte of
	// commas (refused by the header size limit before any handler).
	for name, c := range map[string]struct {
		value string
		want  int
	}{
		"2 KiB of names": {strings.Repeat("content-type,", 160), 400},
		"21 names":       {strings.Repeat("a,", 20) + "a", 400},
		"60 KB commas":   {strings.Repeat(",", 60_000), 400},
		"1 MB commas":    {strings.Repeat(",", 1<<20), 431},
	} {
		start := time.Now()
		p := s.do("OPTIONS", "/api/v1/claims", "", nil, "Origin", app, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", c.value)
		if p.status != c.want || time.Since(start) > 2*time.Second {
			t.Errorf("%s: %d in %v, want %d fast", name, p.status, time.Since(start), c.want)
		}
		noAllow(name, p)
	}
	if _, err := run(t, map[string]string{"CLAIMS_DATA_DIR": t.TempDir(), "CLAIMS_CORS_ORIGINS": "*"}, "", "serve"); err == nil {
		t.Error("CLAIMS_CORS_ORIGINS=* accepted")
	}
}

// TestEdgeSlowClients: a slowloris client (TLS, then headers a byte a
// second) is cut off by the header timeout; so is one that never finishes
// the TLS handshake; a normal client is unaffected.
func TestEdgeSlowClients(t *testing.T) {
	env := newEnv(t, store.SQLite)
	env["CLAIMS_READ_HEADER_TIMEOUT"] = "1s"
	s := startServer(t, env)
	addr := strings.TrimPrefix(s.base, "https://")
	tr := s.client.Transport.(*http.Transport)

	conn, err := tls.Dial("tcp", addr, tr.TLSClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		io.Copy(io.Discard, conn) // returns when the server closes
		closed <- time.Since(start)
	}()
	req := "GET /api/v1/me HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow\r\n\r\n"
	sent := 0
	for i := 0; i < len(req); i++ {
		select {
		case d := <-closed:
			if d > 3*time.Second || sent >= len(req) {
				t.Errorf("cut off after %v and %d bytes", d, sent)
			}
			goto handshake
		default:
		}
		if _, err := conn.Write([]byte{req[i]}); err != nil {
			break
		}
		sent++
		time.Sleep(time.Second)
	}
	select {
	case d := <-closed:
		if d > 3*time.Second {
			t.Errorf("slowloris connection lived %v", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("slowloris client still connected after sending %d bytes", sent)
	}
handshake:
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	t0 := time.Now()
	_, err = raw.Read(make([]byte, 1)) // no ClientHello sent
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) || time.Since(t0) > 3*time.Second {
		t.Errorf("silent TCP client: %v after %v, want closed within the header timeout", err, time.Since(t0))
	}
	s.expect(s.do("GET", "/healthz", "", nil), 200)
}

// TestEdgeTLS: TLS 1.3 only by default; --tls-min 1.2 admits TLS 1.2 with
// AEAD suites only and warns.
func TestEdgeTLS(t *testing.T) {
	s, out := startServerOut(t, newEnv(t, store.SQLite))
	addr := strings.TrimPrefix(s.base, "https://")
	dial := func(addr string, max uint16, suites ...uint16) error {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: max, CipherSuites: suites})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(addr, tls.VersionTLS12); err == nil {
		t.Error("TLS 1.2 accepted by default")
	}
	if err := dial(addr, tls.VersionTLS13); err != nil {
		t.Errorf("TLS 1.3: %v", err)
	}
	if strings.Contains(out.String(), "WARNING") || !strings.Contains(out.String(), "(TLS 1.3)") {
		t.Errorf("banner: %s", out.String())
	}

	env := newEnv(t, store.SQLite)
	env["CLAIMS_TLS_MIN"] = "1.2"
	s12, out12 := startServerOut(t, env)
	addr12 := strings.TrimPrefix(s12.base, "https://")
	if err := dial(addr12, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); err != nil {
		t.Errorf("TLS 1.2 with AES-GCM: %v", err)
	}
	if err := dial(addr12, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256); err != nil {
		t.Errorf("TLS 1.2 with ChaCha20-Poly1305: %v", err)
	}
	if err := dial(addr12, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA); err == nil {
		t.Error("TLS 1.2 with a CBC suite accepted")
	}
	if err := dial(addr12, tls.VersionTLS11); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	if !strings.Contains(out12.String(), "WARNING: TLS 1.2 is allowed") {
		t.Errorf("no warning for TLS 1.2: %s", out12.String())
	}
	bad := newEnv(t, store.SQLite)
	if _, err := run(t, bad, "", "serve", "--tls-min", "1.0"); err == nil || !strings.Contains(err.Error(), "TLS minimum") {
		t.Errorf("--tls-min 1.0: %v", err)
	}
}

// TestEdgeHTTPRedirect: the plain-HTTP listener answers every request with
// a 308 to HTTPS and serves nothing else.
func TestEdgeHTTPRedirect(t *testing.T) {
	env := newEnv(t, store.SQLite)
	env["CLAIMS_HTTP_REDIRECT_ADDR"] = "127.0.0.1:0"
	s, out := startServerOut(t, env)
	m := regexp.MustCompile(`plain HTTP on (\S+) redirects`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no redirect listener in the banner: %s", out.String())
	}
	_, httpsPort, _ := net.SplitHostPort(strings.TrimPrefix(s.base, "https://"))
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	for _, c := range []struct{ method, path, host, want string }{
		// API requests are refused, never redirected: a token sent over
		// plain HTTP must fail loudly (ASVS V4.1.2).
		{"GET", "/api/v1/claims?status=paid", "claims.example.com", "403"},
		{"POST", "/api/v1/auth/login", "localhost:8080", "403"},
		{"GET", "/healthz", "[::1]:80", "https://[::1]:" + httpsPort + "/healthz"},
		{"GET", "/", "claims.example.com", "https://claims.example.com:" + httpsPort + "/"},
		{"GET", "/healthz", `evil.example/"><script>`, ""},
	} {
		req, _ := http.NewRequest(c.method, "http://"+m[1]+c.path, strings.NewReader(`{"email":"a@b.c","password":"x"}`))
		req.Host = c.host
		res, err := plain.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		switch {
		case c.want == "403":
			if res.StatusCode != 403 || res.Header.Get("Location") != "" {
				t.Errorf("%s %s over plain HTTP: %d Location %q, want 403 and no redirect", c.method, c.path, res.StatusCode, res.Header.Get("Location"))
			}
		case c.want == "" && res.StatusCode != 400:
			t.Errorf("bad Host %q: %d %v", c.host, res.StatusCode, res.Header)
		case c.want != "" && (res.StatusCode != 308 || res.Header.Get("Location") != c.want):
			t.Errorf("%s %s: %d Location %q, want 308 %q", c.method, c.path, res.StatusCode, res.Header.Get("Location"), c.want)
		}
		if bytes.Contains(body, []byte("openapi")) || bytes.Contains(body, []byte("{")) {
			t.Errorf("plain HTTP served content: %s", body)
		}
	}
}

// newCA returns a CA certificate and a leaf for 127.0.0.1 signed by it,
// written to dir (leaf cert and key as PEM files).
func newCA(t *testing.T, dir string) (caPool *x509.CertPool, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "impostor"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	caPool = x509.NewCertPool()
	caPool.AddCert(ca)
	return caPool, certFile, keyFile
}

// TestPinnedClient drives the API with package client, pinned to the key
// serve prints, and shows that a server with another key is refused even
// though a CA the client trusts signed its certificate.
func TestPinnedClient(t *testing.T) {
	env := newEnv(t, store.SQLite)
	mustRun(t, env, pw+"\n", "user", "create", "--email", "admin@example.com", "--role", "admin", "--password-stdin")
	mustRun(t, env, pw+"\n", "user", "create", "--email", "proc@example.com", "--role", "claims_processor", "--password-stdin")
	s, out := startServerOut(t, env)
	certPEM := readFile(t, certPath(env))
	pin := client.Pin(certOf(t, certPEM))
	if !strings.Contains(out.String(), "SPKI pin (sha256/base64): "+strings.TrimPrefix(pin, "sha256/")) {
		t.Fatalf("serve printed another pin than %s:\n%s", pin, out.String())
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	ctx := context.Background()
	otherPin := "sha256/" + strings.Repeat("A", 43) + "="

	// Set up: a customer with a policy (the admin through the test helper).
	s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "alice@example.com", "password": pw, "fullName": "Alice"}), 202)
	s.verifyEmail("alice@example.com")
	admin := s.adminSession("admin@example.com")
	s.expect(s.do("POST", "/api/v1/policies", admin, map[string]any{"number": "AUTO-7001", "productLine": "auto", "effectiveDate": "2026-01-01",
		"expiryDate": "2026-12-31", "currency": "USD", "coverageLimit": "1000.00", "deductible": "100.00", "premium": "600.00",
		"holderEmail": "alice@example.com"}), 201)

	// Two pins (rotation): the current key and a future one.
	alice, err := client.New(s.base, []string{otherPin, pin}, client.WithRootCAs(roots))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if tok, err := alice.Login(ctx, "alice@example.com", pw); err != nil || tok.AccessToken == "" || tok.MFARequired {
		t.Fatalf("login: %+v %v", tok, err)
	}
	c, err := alice.FileClaim(ctx, client.NewClaim{PolicyNumber: "AUTO-7001", Type: "collision", IncidentDate: "2026-03-01",
		Description: "Rear-ended", Currency: "USD", Submit: true, Lines: []client.NewLine{{Category: "vehicle", Description: "Bumper", Amount: "500.00"}}}, "key-1")
	if err != nil || c.Status != "submitted" || c.Total.Amount != "500.00" {
		t.Fatalf("file claim: %+v %v", c, err)
	}
	if again, err := alice.FileClaim(ctx, client.NewClaim{PolicyNumber: "AUTO-7001", Type: "collision", IncidentDate: "2026-03-01",
		Description: "Rear-ended", Currency: "USD", Submit: true, Lines: []client.NewLine{{Category: "vehicle", Description: "Bumper", Amount: "500.00"}}}, "key-1"); err != nil || again.ID != c.ID {
		t.Errorf("idempotent retry: %+v %v", again, err)
	}
	if err := alice.Refresh(ctx); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	page, err := alice.ListClaims(ctx, client.ListOptions{Limit: 10})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != c.ID {
		t.Fatalf("list: %+v %v", page, err)
	}
	// Errors are typed problems.
	_, err = alice.GetClaim(ctx, "0123456789abcdef0123456789abcdef")
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != 404 || p.Kind() != "not_found" || p.RequestID == "" {
		t.Errorf("missing claim: %v", err)
	}
	_, err = alice.FileClaim(ctx, client.NewClaim{PolicyNumber: "AUTO-7001", Type: "collision", IncidentDate: "2026-13-01", Currency: "USD"}, "")
	if !errors.As(err, &p) || p.Status != 400 || len(p.Errors) == 0 {
		t.Errorf("invalid claim: %v", err)
	}

	// The processor decides; the admin signs in with the MFA step (pins
	// only: the self-signed certificate needs no CA).
	proc, _ := client.New(s.base, []string{pin}, client.WithPinsOnly())
	if _, err := proc.Login(ctx, "proc@example.com", pw); err != nil {
		t.Fatal(err)
	}
	var assigned client.Claim
	if _, err := proc.Do(ctx, "POST", "/api/v1/claims/"+c.ID+"/assign", nil, &assigned); err != nil {
		t.Fatal(err)
	}
	if _, err := proc.Decide(ctx, c.ID, 1, "approve", ""); !errors.As(err, &p) || p.Status != 412 {
		t.Errorf("stale version: %v", err)
	}
	dec, err := proc.Decide(ctx, c.ID, assigned.Version, "approve", "Covered.")
	if err != nil || (dec.Status != "approved" && dec.Status != "partially_approved") || dec.Decision == nil || dec.Decision.Payable.Amount != "400.00" {
		t.Fatalf("decide: %+v %v", dec, err)
	}
	got, err := alice.GetClaim(ctx, c.ID)
	if err != nil || got.Status != dec.Status {
		t.Errorf("alice sees %+v %v", got, err)
	}
	adm, _ := client.New(s.base, []string{pin}, client.WithPinsOnly())
	tok, err := adm.Login(ctx, "admin@example.com", pw)
	if err != nil || !tok.MFARequired || tok.MFAToken == "" || tok.AccessToken != "" {
		t.Fatalf("admin login: %+v %v", tok, err)
	}
	_ = tok
	// (The admin's TOTP secret lives in the helper's session; a wrong code
	// is a typed 401.)
	if _, err := adm.CompleteMFA(ctx, tok.MFAToken, "000000", false); !errors.As(err, &p) || p.Status != 401 {
		t.Errorf("wrong MFA code: %v", err)
	}

	// An impostor: its certificate is signed by a CA the client trusts,
	// for the right address, but its key is not pinned.
	dir := t.TempDir()
	ca, certFile, keyFile := newCA(t, dir)
	env2 := newEnv(t, store.SQLite)
	env2["CLAIMS_TLS_CERT"], env2["CLAIMS_TLS_KEY"] = certFile, keyFile
	impostor, _ := startServerOut(t, env2)
	trusting, _ := client.New(impostor.base, []string{pin, otherPin}, client.WithRootCAs(ca))
	if _, err := trusting.Login(ctx, "alice@example.com", pw); !errors.Is(err, client.ErrPinMismatch) {
		t.Fatalf("impostor with a trusted CA: %v, want ErrPinMismatch", err)
	}
	if _, err := trusting.ListClaims(ctx, client.ListOptions{}); !errors.Is(err, client.ErrPinMismatch) {
		t.Errorf("second request to the impostor: %v", err)
	}
	pinsOnly, _ := client.New(impostor.base, []string{pin}, client.WithPinsOnly())
	if _, err := pinsOnly.Login(ctx, "alice@example.com", pw); !errors.Is(err, client.ErrPinMismatch) {
		t.Errorf("impostor, pins only: %v", err)
	}
	// The same CA path works once the impostor's key is pinned: the CA
	// check and the pin both pass.
	pinned, _ := client.New(impostor.base, []string{client.Pin(certOf(t, readFile(t, certFile)))}, client.WithRootCAs(ca))
	if _, err := pinned.Login(ctx, "nobody@example.com", pw); !errors.As(err, &p) || p.Status != 401 {
		t.Errorf("pinned second server: %v", err)
	}
	// And the right pin but a CA that did not sign the certificate fails
	// the chain check: pins add to the CA check, they don't replace it.
	noCA, _ := client.New(s.base, []string{pin}, client.WithRootCAs(ca))
	if _, err := noCA.Login(ctx, "alice@example.com", pw); err == nil {
		t.Error("chain check skipped")
	}
	for _, bad := range [][]string{nil, {"sha1/abc"}, {"sha256/short"}} {
		if _, err := client.New(s.base, bad); err == nil {
			t.Errorf("pins %v accepted", bad)
		}
	}
	if _, err := client.New(strings.Replace(s.base, "https", "http", 1), []string{pin}); err == nil {
		t.Error("http base URL accepted")
	}
}

// recorder keeps every response that passes through it.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	got  []recorded
}

type recorded struct {
	method, path string
	status       int
	ct           string
	body         []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := r.next.RoundTrip(req)
	if err != nil {
		return res, err
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(b))
	r.mu.Lock()
	r.got = append(r.got, recorded{req.Method, req.URL.Path, res.StatusCode, res.Header.Get("Content-Type"), b})
	r.mu.Unlock()
	return res, nil
}

// TestContract records a real server's answers to a representative
// scenario and validates each against the OpenAPI document's schema for
// its route and status (problem bodies against Problem).
func TestContract(t *testing.T) {
	env := newEnv(t, store.SQLite)
	mustRun(t, env, pw+"\n", "user", "create", "--email", "admin@example.com", "--role", "admin", "--password-stdin")
	mustRun(t, env, pw+"\n", "user", "create", "--email", "proc@example.com", "--role", "claims_processor", "--password-stdin")
	s := startServer(t, env)
	rec := &recorder{next: s.client.Transport}
	s.client.Transport = rec

	docResp := s.expect(s.do("GET", "/api/v1/openapi.json", "", nil), 200)
	var served map[string]any
	if err := json.Unmarshal(docResp.raw, &served); err != nil {
		t.Fatal(err)
	}
	doc, err := openapicheck.New(served)
	if err != nil {
		t.Fatal(err)
	}
	// The served document is the one the package builds.
	h := api.New(nil, slog.New(slog.DiscardHandler), nil, nil)
	h.Register(http.NewServeMux())
	if len(served["paths"].(map[string]any)) != len(h.Document()["paths"].(map[string]map[string]any)) {
		t.Errorf("served document differs from api.Document")
	}

	s.expect(s.do("GET", "/api/v1/.well-known/jwks.json", "", nil), 200)
	s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "alice@example.com", "password": pw, "fullName": "Alice"}), 202)
	s.verifyEmail("alice@example.com")
	s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "bad", "password": "x"}), 400)
	admin := s.adminSession("admin@example.com")
	adminLogin := s.expect(s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "admin@example.com", "password": pw}), 200)
	if adminLogin.body["mfa_required"] != true {
		t.Errorf("admin login without the MFA step: %s", adminLogin.raw)
	}
	s.expect(s.do("POST", "/api/v1/auth/mfa", "", map[string]string{"mfa_token": adminLogin.str("mfa_token"), "code": "000000"}), 401)
	s.expect(s.do("GET", "/api/v1/me", admin, nil), 200)
	s.expect(s.do("GET", "/api/v1/sessions", admin, nil), 200)
	s.expect(s.do("POST", "/api/v1/policies", admin, map[string]any{"number": "AUTO-9001", "productLine": "auto", "effectiveDate": "2026-01-01",
		"expiryDate": "2026-12-31", "currency": "USD", "coverageLimit": "1000.00", "deductible": "100.00", "premium": "600.00",
		"holderEmail": "alice@example.com"}), 201)
	s.expect(s.do("POST", "/api/v1/policies", admin, map[string]any{"number": "AUTO-9002", "productLine": "boat"}), 400)
	pols := s.expect(s.do("GET", "/api/v1/policies", admin, nil), 200)
	s.expect(s.do("GET", "/api/v1/policies/"+pols.items()[0]["id"].(string), admin, nil), 200)
	s.expect(s.do("GET", "/api/v1/users", admin, nil), 200)
	s.expect(s.do("GET", "/api/v1/roles", admin, nil), 200)
	s.expect(s.do("GET", "/api/v1/audit?limit=20", admin, nil), 200)

	alice := s.login("alice@example.com", pw)
	claim := map[string]any{"policyNumber": "AUTO-9001", "type": "collision", "incidentDate": "2026-03-01", "description": "Rear-ended",
		"location": "Springfield", "currency": "USD", "submit": true, "lines": []map[string]string{
			{"category": "vehicle", "description": "Bumper", "amount": "500.00", "serviceDate": "2026-03-02"},
			{"category": "towing", "description": "Tow", "amount": "150.00"}}}
	filed := s.expect(s.do("POST", "/api/v1/claims", alice, claim, "Idempotency-Key", "contract-1"), 201)
	id := filed.str("id")
	s.expect(s.do("POST", "/api/v1/claims", alice, map[string]any{"policyNumber": "AUTO-9001", "unknown": 1}), 400)
	s.expect(s.do("GET", "/api/v1/claims", alice, nil), 200)
	s.expect(s.do("GET", "/api/v1/claims/"+id, alice, nil), 200)
	s.expect(s.do("GET", "/api/v1/claims/"+id+"/history", alice, nil), 200)
	s.expect(s.do("GET", "/api/v1/claims/0123456789abcdef0123456789abcdef", alice, nil), 404)
	s.expect(s.do("GET", "/api/v1/claims?status=bogus", alice, nil), 400)
	s.expect(s.do("GET", "/api/v1/me/access-log", alice, nil), 200)
	s.expect(s.do("GET", "/api/v1/claims/"+id+"/documents", alice, nil), 200)

	proc := s.login("proc@example.com", pw)
	s.expect(s.do("POST", "/api/v1/claims/"+id+"/decide", proc, map[string]string{"outcome": "approve"}), 403)
	a := s.expect(s.do("POST", "/api/v1/claims/"+id+"/assign", proc, nil), 200)
	s.expect(s.do("POST", "/api/v1/claims/"+id+"/pay", proc, nil), 409)
	s.expect(s.do("POST", "/api/v1/claims/"+id+"/decide", proc, map[string]string{"outcome": "approve"}, "If-Match", `"1"`), 412)
	s.expect(s.do("POST", "/api/v1/claims/"+id+"/decide", proc, map[string]string{"outcome": "maybe"}), 400)
	s.expect(s.do("POST", "/api/v1/claims/"+id+"/decide", proc, map[string]any{"outcome": "approve", "reason": "Covered."},
		"If-Match", a.header.Get("ETag")), 200)
	s.expect(s.do("POST", "/api/v1/claims/"+id+"/pay", proc, map[string]string{"reference": "PAY-1"}), 200)
	s.expect(s.do("GET", "/api/v1/claims/"+id, proc, nil), 200)
	s.expect(s.do("GET", "/api/v1/claims?status=paid&limit=5", proc, nil), 200)
	s.expect(s.do("POST", "/api/v1/auth/logout", alice, nil), 204)
	s.expect(s.do("GET", "/api/v1/me", alice, nil), 401)
	s.expect(s.do("GET", "/api/v1/claims", "", nil), 401)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	routes := map[string]bool{}
	for _, r := range rec.got {
		if err := doc.CheckResponse(r.method, r.path, r.status, r.ct, r.body); err != nil {
			t.Errorf("contract: %v\n  body: %.400s", err, r.body)
		}
		routes[r.method+" "+doc.Route(r.method, r.path)] = true
	}
	if len(rec.got) < 40 || len(routes) < 25 {
		t.Errorf("recorded %d responses over %d routes; the scenario shrank", len(rec.got), len(routes))
	}
	t.Logf("validated %d responses over %d routes", len(rec.got), len(routes))
}
