package cli_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
	"github.com/openclaims/claims/internal/web/api"
)

// The access matrix: every route of the API × every kind of principal →
// the class of answer the running server must give. The table is keyed by
// api.Handler.Routes(): a route without a row fails the test, so a new
// route can't ship without someone deciding who may call it.
//
// Outcome classes:
//
//	A  allowed: 2xx, or a business-rule 4xx other than 401/403/404 (the
//	   caller may use the route; this particular request broke a rule)
//	F  forbidden: 403
//	H  hidden: 404 (the object is answered as missing)
//	U  unauthenticated: 401
//
// Principals, in column order:
//
//	anon     no token
//	owner    customer who owns the target claim and policy
//	other    another customer (with a policy and claim of their own)
//	proc     claims_processor the target claim is assigned to
//	procNA   claims_processor the target claim is not assigned to
//	senior   custom role senior_processor: claims_processor + claims.read.any, authority 10,000,000.00
//	ai       ai_engineer
//	admin    admin, MFA enrolled
//	super    super_admin, MFA enrolled
//	deleg    claims_processor holding claims.read.any delegated by senior
//	expired  claims_processor whose delegation from senior has expired
//	revoked  claims_processor whose delegation from senior was revoked
//	over     claims_processor with an authority of 100.00; the target
//	         claims of this column are assigned to them (900.00 claims)
var principals = []string{"anon", "owner", "other", "proc", "procNA", "senior", "ai", "admin", "super", "deleg", "expired", "revoked", "over"}

// matrixRow is one route's expectations and how to build its request for
// a principal (fixtures in the right state are made per cell where the
// request changes state).
type matrixRow struct {
	route string
	want  string // one class letter per principal, space-separated, in principals order
	final int    // >0: run after every other row, in this order (it ends or weakens the caller's session)
	build func(w *world, who string) mreq
}

type mreq struct {
	path    string
	body    any
	headers []string
	upload  string // claim id: send a multipart upload instead of JSON
}

func at(path string) func(*world, string) mreq {
	return func(*world, string) mreq { return mreq{path: path} }
}

// claimRead is the shared read target: a claim of owner's under review,
// assigned to proc (to over in over's column), with one clean document.
func claimRead(sub string) func(*world, string) mreq {
	return func(w *world, who string) mreq {
		c, d := w.readClaim(who)
		return mreq{path: "/api/v1/claims/" + c + strings.ReplaceAll(sub, "{docId}", d)}
	}
}

// claimIn makes a fresh claim in state for this cell and posts body to
// /claims/{id}/<action>.
func claimIn(state, action string, body any) func(*world, string) mreq {
	return func(w *world, who string) mreq {
		return mreq{path: "/api/v1/claims/" + w.claim(state, who) + "/" + action, body: body}
	}
}

var matrix = []matrixRow{
	//                                                     anon owner other proc procNA senior ai admin super deleg expired revoked over
	{route: "GET /api/v1/openapi.json", want: "A A A A A A A A A A A A A", build: at("/api/v1/openapi.json")},
	{route: "GET /api/v1/.well-known/jwks.json", want: "A A A A A A A A A A A A A", build: at("/api/v1/.well-known/jwks.json")},
	{route: "POST /api/v1/auth/register", want: "A A A A A A A A A A A A A", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/auth/register", body: map[string]string{"email": w.unique("reg") + "@example.com", "password": pw}}
	}},
	{route: "POST /api/v1/auth/login", want: "A A A A A A A A A A A A A", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/auth/login", body: map[string]string{"email": "probe@example.com", "password": pw}}
	}},
	{route: "POST /api/v1/auth/refresh", want: "A A A A A A A A A A A A A", build: func(w *world, who string) mreq {
		r := w.s.expect(w.s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "probe@example.com", "password": pw}), 200)
		return mreq{path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": r.str("refresh_token")}}
	}},
	// A public route that authenticates by its own challenge: a wrong one is
	// 401 whoever sends it.
	{route: "POST /api/v1/auth/mfa", want: "U U U U U U U U U U U U U", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/auth/mfa", body: map[string]string{"mfa_token": "not-a-challenge", "code": "123456"}}
	}},
	{route: "POST /api/v1/auth/password-reset", want: "A A A A A A A A A A A A A", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/auth/password-reset", body: map[string]string{"email": w.unique("nobody") + "@example.com"}}
	}},
	{route: "POST /api/v1/auth/password-reset/confirm", want: "A A A A A A A A A A A A A", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/auth/password-reset/confirm", body: map[string]string{"token": "bogus", "newPassword": "a long new passphrase 77"}}
	}},

	// Self-service: anyone signed in.
	{route: "POST /api/v1/auth/logout", want: "U A A A A A A A A A A A A", final: 2, build: at("/api/v1/auth/logout")},
	{route: "GET /api/v1/me", want: "U A A A A A A A A A A A A", build: at("/api/v1/me")},
	{route: "POST /api/v1/auth/mfa/enroll", want: "U A A A A A A A A A A A A", final: 1, build: at("/api/v1/auth/mfa/enroll")},
	{route: "POST /api/v1/auth/mfa/confirm", want: "U A A A A A A A A A A A A", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/auth/mfa/confirm", body: map[string]string{"code": "000000"}} // 409: nothing to confirm
	}},
	{route: "POST /api/v1/auth/mfa/verify", want: "U A A A A A A A A A A A A", build: func(w *world, who string) mreq {
		code := "000000" // 409 for accounts without a factor
		if w.secret[who] != "" {
			code = w.code(who)
		}
		return mreq{path: "/api/v1/auth/mfa/verify", body: map[string]string{"code": code}}
	}},
	{route: "POST /api/v1/auth/password", want: "U A A A A A A A A A A A A", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/auth/password", body: map[string]string{"currentPassword": "not my password at all", "newPassword": "another long passphrase 8"}}
	}},
	{route: "GET /api/v1/sessions", want: "U A A A A A A A A A A A A", build: at("/api/v1/sessions")},
	{route: "DELETE /api/v1/sessions/{id}", want: "U A A A A A A A A A A A A", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/sessions/" + w.secondSession(who)}
	}},
	{route: "POST /api/v1/sessions/end-others", want: "U A A A A A A A A A A A A", build: at("/api/v1/sessions/end-others")},
	{route: "GET /api/v1/me/access-log", want: "U A A A A A A A A A A A A", build: at("/api/v1/me/access-log")},
	// A verification code needs no sign-in; a wrong one is a 400.
	{route: "POST /api/v1/auth/verify-email", want: "A A A A A A A A A A A A A", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/auth/verify-email", body: map[string]string{"token": "not-a-code"}}
	}},
	// Anyone signed in may present a link code; a wrong one is a 400.
	{route: "POST /api/v1/me/link-policyholder", want: "U A A A A A A A A A A A A", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/me/link-policyholder", body: map[string]string{"token": "not-a-code"}}
	}},
	{route: "GET /api/v1/delegations", want: "U A A A A A A A A A A A A", build: at("/api/v1/delegations")},
	{route: "POST /api/v1/delegations", want: "U A A A A A A A A A A A A", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/delegations", body: w.delegationBody("claims.create", 24*time.Hour)}
	}},
	{route: "DELETE /api/v1/delegations/{id}", want: "U A A A A A A A A A A A A", build: func(w *world, who string) mreq {
		id := w.randomID()
		if who != "anon" {
			id = w.s.expect(w.s.do("POST", "/api/v1/delegations", w.tok[who], w.delegationBody("claims.create", time.Hour)), 201).str("id")
		}
		return mreq{path: "/api/v1/delegations/" + id}
	}},

	// Account administration: users.manage / sessions.revoke / roles.assign.
	{route: "POST /api/v1/users/{id}/disable", want: "U F F F F F F A A F F F F", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/users/" + w.id["victim"] + "/disable"}
	}},
	{route: "POST /api/v1/users/{id}/enable", want: "U F F F F F F A A F F F F", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/users/" + w.id["victim"] + "/enable"}
	}},
	{route: "POST /api/v1/users/{id}/unlock", want: "U F F F F F F A A F F F F", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/users/" + w.id["victim"] + "/unlock"}
	}},
	{route: "POST /api/v1/users/{id}/logout", want: "U F F F F F F A A F F F F", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/users/" + w.id["victim"] + "/logout"}
	}},
	{route: "POST /api/v1/users/{id}/reset-mfa", want: "U F F F F F F A A F F F F", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/users/" + w.id["victim"] + "/reset-mfa"}
	}},
	{route: "POST /api/v1/users/{id}/role", want: "U F F F F F F A A F F F F", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/users/" + w.id["victimStaff"] + "/role", body: map[string]string{"role": "ai_engineer"}}
	}},
	{route: "GET /api/v1/users", want: "U F F F F F F A A F F F F", build: at("/api/v1/users")},
	{route: "POST /api/v1/users", want: "U F F F F F F A A F F F F", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/users", body: map[string]string{"email": w.unique("invite") + "@example.com", "role": "customer"}}
	}},
	{route: "PUT /api/v1/users/{id}/authority-limit", want: "U F F F F F F A A F F F F", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/users/" + w.id["victimStaff"] + "/authority-limit", body: map[string]any{"limitMinor": 1000}}
	}},
	{route: "GET /api/v1/roles", want: "U F F F F F F A A F F F F", build: at("/api/v1/roles")},
	{route: "PUT /api/v1/roles/{name}", want: "U F F F F F F F A F F F F", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/roles/matrix_" + strings.ToLower(who), body: map[string]any{"baseRole": "customer", "permissions": []string{}}}
	}},
	{route: "GET /api/v1/audit", want: "U F F F F F F A A F F F F", build: at("/api/v1/audit?limit=5")},
	{route: "GET /api/v1/training/claims", want: "U F F F F F A F F F F F F", build: at("/api/v1/training/claims?limit=5")},

	// Data subjects: a customer's own export and erasure request (staff
	// accounts hold no personal data record: 404); administrators approve.
	{route: "GET /api/v1/me/export", want: "U A A H H H H H H H H H H", build: at("/api/v1/me/export")},
	{route: "POST /api/v1/me/erasure-request", want: "U A A H H H H H H H H H H", build: at("/api/v1/me/erasure-request")},
	{route: "GET /api/v1/erasure-requests", want: "U F F F F F F A A F F F F", build: at("/api/v1/erasure-requests")},
	{route: "POST /api/v1/erasure-requests/{id}/approve", want: "U F F F F F F A A F F F F", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/erasure-requests/" + w.erasureRequest(who) + "/approve"}
	}},

	// Policies.
	{route: "GET /api/v1/policies", want: "U A A A A A A A A A A A A", build: at("/api/v1/policies")},
	{route: "POST /api/v1/policies", want: "U F F F F F F A A F F F F", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/policies", body: map[string]any{"number": w.unique("POL"), "productLine": "auto",
			"effectiveDate": "2026-01-01", "expiryDate": "2026-12-31", "currency": "USD", "coverageLimit": "1000.00",
			"holderEmail": "owner@example.com"}}
	}},
	{route: "GET /api/v1/policies/{id}", want: "U A H A A A H A A A A A A", build: func(w *world, who string) mreq {
		return mreq{path: "/api/v1/policies/" + w.polAID}
	}},

	// Claims: lists and filing (what a list shows is the IDOR test's job).
	{route: "GET /api/v1/claims", want: "U A A A A A A A A A A A A", build: at("/api/v1/claims")},
	{route: "POST /api/v1/claims", want: "U A A A A A A A A A A A A", build: func(w *world, who string) mreq {
		pol := "POL-A" // staff have no policy: 400 "Policy not found", a business rule
		if who == "other" {
			pol = "POL-B"
		}
		return mreq{path: "/api/v1/claims", body: claimBody(pol, "900.00", w.nextDate(), true)}
	}},

	// Reading one claim and its documents.
	{route: "GET /api/v1/claims/{id}", want: "U A H A H A H H H A H H A", build: claimRead("")},
	{route: "GET /api/v1/claims/{id}/history", want: "U A H A H A H H H A H H A", build: claimRead("/history")},
	// Claim messages (docs/live.md): whoever may read the claim.
	{route: "GET /api/v1/claims/{id}/messages", want: "U A H A H A H H H A H H A", build: claimRead("/messages")},
	{route: "POST /api/v1/claims/{id}/messages", want: "U A H A H A H H H A H H A", build: func(w *world, who string) mreq {
		c, _ := w.readClaim(who)
		return mreq{path: "/api/v1/claims/" + c + "/messages", body: map[string]string{"text": "Any news?"}}
	}},
	// The live socket authenticates itself after the handshake checks; a
	// plain GET (no upgrade) is a 400 for everyone (ws_test.go covers the
	// socket's own authentication).
	{route: "GET /api/v1/ws", want: "A A A A A A A A A A A A A", build: at("/api/v1/ws")},
	{route: "GET /api/v1/claims/{id}/documents", want: "U A H A H A H H H A H H A", build: claimRead("/documents")},
	{route: "GET /api/v1/claims/{id}/documents/{docId}", want: "U A H A H A H H H A H H A", build: claimRead("/documents/{docId}")},
	{route: "GET /api/v1/claims/{id}/documents/{docId}/content", want: "U A H A H A H H H A H H A", build: claimRead("/documents/{docId}/content")},
	{route: "POST /api/v1/claims/{id}/documents", want: "U A H A H A H H H A H H A", build: func(w *world, who string) mreq {
		return mreq{upload: w.claim("review", who)}
	}},

	// The policyholder's own actions. Drafts are the policyholder's until
	// submitted: no staff see them at all. Assigned claims are hidden from
	// processors they aren't assigned to.
	{route: "POST /api/v1/claims/{id}/submit", want: "U A H H H H H H H H H H H", build: claimIn("draft", "submit", nil)},
	{route: "POST /api/v1/claims/{id}/withdraw", want: "U A H F H F H H H F H H F", build: claimIn("review", "withdraw", map[string]string{"reason": "changed my mind"})},
	{route: "POST /api/v1/claims/{id}/respond", want: "U A H F H F H H H F H H F", build: claimIn("info", "respond", map[string]string{"message": "here it is"})},
	{route: "POST /api/v1/claims/{id}/appeal", want: "U A H F H F H H H F H H F", build: claimIn("denied", "appeal", map[string]string{"reason": "please look again"})},

	// Processing. Permission first (403 for roles without it), then the
	// object (404 when the claim is out of reach), then the rule (403 for
	// not the assignee, over one's authority, or one's own proposal).
	{route: "POST /api/v1/claims/{id}/assign", want: "U F F A H A F F F A H H A", build: claimIn("review", "assign", nil)},
	{route: "POST /api/v1/claims/{id}/request-info", want: "U F F A H F F F F F H H A", build: claimIn("review", "request-info", map[string]string{"message": "send the invoice"})},
	// over's decision is accepted and waits in pending_approval (200).
	{route: "POST /api/v1/claims/{id}/decide", want: "U F F A H F F F F F H H A", build: claimIn("review", "decide", map[string]string{"outcome": "approve"})},
	// over may not pay 800.00 (authority 100.00); pay needs no assignment.
	{route: "POST /api/v1/claims/{id}/pay", want: "U F F A H A F F F A H H F", build: claimIn("approved", "pay", nil)},
	{route: "POST /api/v1/claims/{id}/close", want: "U F F A H A F F F A H H A", build: claimIn("paid", "close", nil)},
	// A 5,900.00 decision proposed by the assignee (proc, or over in over's
	// column): the proposer can't approve it, deleg's 5,000.00 authority is
	// too low, senior's is enough.
	{route: "POST /api/v1/claims/{id}/approve-decision", want: "U F F F H A F F F F H H F", build: claimIn("pending", "approve-decision", nil)},
	{route: "POST /api/v1/claims/{id}/return-decision", want: "U F F F H A F F F A H H F", build: claimIn("pending", "return-decision", map[string]string{"reason": "recheck the lines"})},
}

func claimBody(policy, amount, date string, submit bool) map[string]any {
	return map[string]any{"policyNumber": policy, "type": "collision", "incidentDate": date,
		"description": "Rear-ended at a red light", "location": "Springfield", "currency": "USD", "submit": submit,
		"lines": []map[string]string{{"category": "vehicle", "description": "Bumper", "amount": amount, "serviceDate": date}}}
}

// routeList returns every registered route as "METHOD /path".
func routeList() []string {
	h := api.New(nil, slog.Default(), nil, nil)
	h.Register(http.NewServeMux())
	return h.Routes()
}

// TestAccessMatrixCoversRoutes fails when a route has no row, a row names
// no route, or a row is malformed; it runs without a server.
func TestAccessMatrixCoversRoutes(t *testing.T) {
	rows := map[string]bool{}
	for _, r := range matrix {
		if rows[r.route] {
			t.Errorf("two rows for %s", r.route)
		}
		rows[r.route] = true
		if n := len(strings.Fields(r.want)); n != len(principals) {
			t.Errorf("%s: %d expectations, want %d", r.route, n, len(principals))
		}
		for _, c := range strings.Fields(r.want) {
			if !strings.Contains("AFHU", c) || len(c) != 1 {
				t.Errorf("%s: unknown class %q", r.route, c)
			}
		}
	}
	routes := routeList()
	for _, r := range routes {
		if !rows[r] {
			t.Errorf("route %s has no row in the access matrix (internal/cli/matrix_test.go): decide who may call it", r)
		}
	}
	for r := range rows {
		if !slices.Contains(routes, r) {
			t.Errorf("the access matrix has a row for %s, which is not a route", r)
		}
	}
}

// TestAccessMatrix runs every cell against a real server on each database.
func TestAccessMatrix(t *testing.T) {
	TestAccessMatrixCoversRoutes(t)
	if t.Failed() {
		t.FailNow()
	}
	checkMatrixDoc(t)
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		start := time.Now()
		w := newWorld(t, d)
		setup := time.Since(start)
		ordered := slices.Clone(matrix)
		slices.SortStableFunc(ordered, func(a, b matrixRow) int { return a.final - b.final })
		cells := 0
		for _, r := range ordered {
			want := strings.Fields(r.want)
			method, _, _ := strings.Cut(r.route, " ")
			for i, who := range principals {
				q := r.build(w, who)
				var res resp
				if q.upload != "" {
					res = w.s.upload(w.tok[who], q.upload, "invoice.pdf", "application/pdf", docPDF("Invoice", 0), 0)
				} else {
					res = w.s.do(method, q.path, w.tok[who], q.body, q.headers...)
				}
				cells++
				if got := classOf(res.status); got != want[i] {
					t.Errorf("%s as %s: got %s (%d), want %s: %s", r.route, who, got, res.status, want[i], truncateBody(res.raw))
				}
			}
		}
		t.Logf("%d routes × %d principals = %d cells on %s; setup %v, total %v", len(matrix), len(principals), cells, d,
			setup.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	})
}

func classOf(status int) string {
	switch {
	case status == 401:
		return "U"
	case status == 403:
		return "F"
	case status == 404:
		return "H"
	case status >= 200 && status < 300, status >= 400 && status < 500:
		return "A"
	}
	return fmt.Sprintf("E%d", status)
}

func truncateBody(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

const (
	matrixBegin = "<!-- matrix:begin (generated by CLAIMS_UPDATE_DOCS=1 go test ./internal/cli -run TestAccessMatrix) -->"
	matrixEnd   = "<!-- matrix:end -->"
)

// matrixMarkdown renders the table for docs/access-matrix.md.
func matrixMarkdown() string {
	var b strings.Builder
	b.WriteString("A allowed (2xx, or a business-rule 4xx), F forbidden (403), H hidden (404), U unauthenticated (401).\n")
	b.WriteString("Principals: see the comment on `principals` in `internal/cli/matrix_test.go`.\n\n")
	b.WriteString("| route |")
	for _, p := range principals {
		fmt.Fprintf(&b, " %s |", p)
	}
	b.WriteString("\n|---|")
	for range principals {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range matrix {
		fmt.Fprintf(&b, "| `%s` |", r.route)
		for _, c := range strings.Fields(r.want) {
			fmt.Fprintf(&b, " %s |", c)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// checkMatrixDoc fails when docs/access-matrix.md's copy of the table is
// stale (CLAIMS_UPDATE_DOCS=1 rewrites it).
func checkMatrixDoc(t *testing.T) {
	const path = "../../docs/access-matrix.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, matrixBegin), strings.Index(doc, matrixEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the matrix markers", path)
	}
	want := matrixMarkdown()
	if doc[i+len(matrixBegin)+1:j] == want {
		return
	}
	if os.Getenv("CLAIMS_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, []byte(doc[:i+len(matrixBegin)+1]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's route matrix is stale; run CLAIMS_UPDATE_DOCS=1 go test ./internal/cli -run TestAccessMatrix", path)
}

// world is one seeded installation with a signed-in session per principal.
type world struct {
	t        *testing.T
	s        *server
	env      map[string]string
	tok      map[string]string // principal -> access token ("" for anon)
	id       map[string]string // principal (and fixture users) -> user id
	secret   map[string]string // TOTP secrets of the MFA-enrolled principals
	lastStep map[string]int64
	polAID   string
	polBID   string
	reads    map[string][2]string // assignee -> shared read claim and its document
	n        atomic.Int64
	delegs   map[string]string // principal -> id of the delegation senior gave them
	expiry   time.Time         // when expired's delegation ends

	sharedErasure string
	dates         atomic.Int64
}

var userIDLine = regexp.MustCompile(`\(id ([0-9a-f]{32})\)`)

func (w *world) unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e9, w.n.Add(1))
}

// nextDate returns a new incident date for each claim, so that fixtures
// aren't flagged (and denied) as duplicates of each other.
func (w *world) nextDate() string {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(w.dates.Add(1)%330)).Format("2006-01-02")
}

func (w *world) randomID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newWorld seeds an installation on engine d: the principals of the
// matrix, a custom senior_processor role, delegations (live, expiring,
// revoked), policies for two customers and a claim of the other customer.
func newWorld(t *testing.T, d store.Dialect) *world {
	t.Helper()
	env := newEnv(t, d)
	env["CLAIMS_LOGIN_IP_DELAY_AFTER"] = "100000" // every request comes from 127.0.0.1
	w := &world{t: t, env: env, tok: map[string]string{}, id: map[string]string{}, secret: map[string]string{},
		lastStep: map[string]int64{}, reads: map[string][2]string{}, delegs: map[string]string{}}
	for who, role := range map[string]string{"admin": "admin", "super": "super_admin", "proc": "claims_processor",
		"procNA": "claims_processor", "senior": "claims_processor", "deleg": "claims_processor", "expired": "claims_processor",
		"revoked": "claims_processor", "over": "claims_processor", "ai": "ai_engineer", "victimStaff": "claims_processor"} {
		out := mustRun(t, env, pw+"\n", "user", "create", "--email", who+"@example.com", "--role", role, "--password-stdin")
		m := userIDLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("user create: %s", out)
		}
		w.id[who] = m[1]
	}
	s := startServer(t, env)
	w.s = s
	for _, who := range []string{"owner", "other", "probe", "victim"} {
		s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": who + "@example.com", "password": pw,
			"fullName": "Person " + who}), 202)
		s.verifyEmail(who + "@example.com")
	}
	for _, who := range []string{"admin", "super"} {
		w.tok[who] = s.login(who+"@example.com", pw)
		w.enrol(who)
	}
	// The custom role, granted by the super admin.
	s.expect(s.do("PUT", "/api/v1/roles/senior_processor", w.tok["super"], map[string]any{"baseRole": "claims_processor",
		"permissions": []string{"claims.read.any"}, "authorityLimitMinor": 1_000_000_000}), 200)
	s.expect(s.do("POST", "/api/v1/users/"+w.id["senior"]+"/role", w.tok["super"], map[string]string{"role": "senior_processor"}), 204)
	for _, who := range []string{"owner", "other", "proc", "procNA", "senior", "ai", "deleg", "expired", "revoked", "over"} {
		w.tok[who] = s.login(who+"@example.com", pw)
		if w.id[who] == "" {
			w.id[who] = s.expect(s.do("GET", "/api/v1/me", w.tok[who], nil), 200).str("id")
		}
	}
	w.id["victim"] = userID(t, s, "victim@example.com")
	w.polAID = s.expect(s.do("POST", "/api/v1/policies", w.tok["admin"], policyBody("POL-A", "owner@example.com")), 201).str("id")
	w.polBID = s.expect(s.do("POST", "/api/v1/policies", w.tok["admin"], policyBody("POL-B", "other@example.com")), 201).str("id")
	s.expect(s.do("PUT", "/api/v1/users/"+w.id["over"]+"/authority-limit", w.tok["admin"], map[string]any{"limitMinor": 10000}), 204)
	// Delegations of claims.read.any from senior: live, about to expire, revoked.
	w.expiry = time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	for who, exp := range map[string]time.Time{"deleg": time.Now().Add(7 * 24 * time.Hour), "expired": w.expiry, "revoked": time.Now().Add(24 * time.Hour)} {
		w.delegs[who] = s.expect(s.do("POST", "/api/v1/delegations", w.tok["senior"], map[string]any{"to": w.id[who],
			"permissions": []string{"claims.read.any"}, "expiresAt": exp.UTC().Format(time.RFC3339)}), 201).str("id")
	}
	s.expect(s.do("DELETE", "/api/v1/delegations/"+w.delegs["revoked"], w.tok["senior"], nil), 204)
	// The other customer's own claim, so their lists aren't trivially empty.
	s.expect(s.do("POST", "/api/v1/claims", w.tok["other"], claimBody("POL-B", "900.00", w.nextDate(), true)), 201)
	w.readClaim("proc")
	w.readClaim("over")
	if d := time.Until(w.expiry); d > 0 {
		time.Sleep(d + 50*time.Millisecond)
	}
	return w
}

func policyBody(number, holder string) map[string]any {
	return map[string]any{"number": number, "productLine": "auto", "effectiveDate": "2026-01-01", "expiryDate": "2026-12-31",
		"currency": "USD", "coverageLimit": "10000000.00", "deductible": "100.00", "premium": "600.00", "holderEmail": holder}
}

// enrol enrols a TOTP factor for who's session (which then counts as
// MFA-verified) and remembers the secret for later codes.
func (w *world) enrol(who string) {
	s := w.s
	en := s.expect(s.do("POST", "/api/v1/auth/mfa/enroll", w.tok[who], nil), 200)
	w.secret[who] = en.str("secret")
	s.expect(s.do("POST", "/api/v1/auth/mfa/confirm", w.tok[who], map[string]string{"code": w.code(who)}), 200)
}

// code returns a TOTP code of who for a time step not used before and
// within the ±1 step the server accepts, waiting if all are spent.
func (w *world) code(who string) string {
	w.t.Helper()
	now := time.Now().Unix() / 30
	step := max(w.lastStep[who]+1, now-1)
	if step > now+1 {
		time.Sleep(time.Until(time.Unix((step-1)*30, 0)) + 100*time.Millisecond)
	}
	w.lastStep[who] = step
	c, err := totp.GenerateCode(w.secret[who], time.Unix(step*30, 0))
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// secondSession signs who in again and returns the new session's id.
func (w *world) secondSession(who string) string {
	if who == "anon" {
		return w.randomID()
	}
	s := w.s
	r := s.expect(s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": who + "@example.com", "password": pw}), 200)
	if r.body["mfa_required"] == true {
		r = s.expect(s.do("POST", "/api/v1/auth/mfa", "", map[string]string{"mfa_token": r.str("mfa_token"), "code": w.code(who)}), 200)
	}
	for _, x := range s.expect(s.do("GET", "/api/v1/sessions", r.str("access_token"), nil), 200).items() {
		if x["current"] == true {
			return x["id"].(string)
		}
	}
	w.t.Fatalf("no current session for %s", who)
	return ""
}

func (w *world) delegationBody(perm string, d time.Duration) map[string]any {
	return map[string]any{"to": w.id["victimStaff"], "permissions": []string{perm},
		"expiresAt": time.Now().Add(d).UTC().Format(time.RFC3339)}
}

// erasureRequest returns a pending erasure request: a fresh customer's for
// the administrators (who carry it out), a shared one for everyone else.
func (w *world) erasureRequest(who string) string {
	if who != "admin" && who != "super" && w.sharedErasure != "" {
		return w.sharedErasure
	}
	s := w.s
	email := w.unique("erase") + "@example.com"
	s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": pw}), 202)
	s.verifyEmail(email)
	id := s.expect(s.do("POST", "/api/v1/me/erasure-request", s.login(email, pw), nil), 202).str("id")
	if who != "admin" && who != "super" {
		w.sharedErasure = id
	}
	return id
}

// assignee is the processor the target claims of who's column are assigned to.
func assignee(who string) string {
	if who == "over" {
		return "over"
	}
	return "proc"
}

// readClaim returns the shared read target of who's column and its document.
func (w *world) readClaim(who string) (string, string) {
	a := assignee(who)
	if r, ok := w.reads[a]; ok {
		return r[0], r[1]
	}
	s := w.s
	c := w.claim("review", a)
	up := s.expect(s.upload(w.tok["owner"], c, "invoice.pdf", "application/pdf", docPDF("Invoice 42", 0), 0), 201)
	s.waitStatus(w.tok["owner"], c, up.str("id"), "clean")
	w.reads[a] = [2]string{c, up.str("id")}
	return c, up.str("id")
}

// claim files a fresh claim of owner's and takes it to state, assigned to
// the processor of who's column:
//
//	draft, submitted, review (assigned), info (information requested),
//	approved, paid, denied, pending (a 5,900.00 decision awaiting approval)
func (w *world) claim(state, who string) string {
	if who == "anon" {
		return w.randomID() // 401 comes first; no fixture needed
	}
	s := w.s
	a := assignee(who)
	amount := "900.00"
	if state == "pending" {
		amount = "6000.00"
	}
	id := s.expect(s.do("POST", "/api/v1/claims", w.tok["owner"], claimBody("POL-A", amount, w.nextDate(), state != "draft")), 201).str("id")
	if state == "draft" || state == "submitted" {
		return id
	}
	act := func(tok, action string, body any, status string) {
		w.t.Helper()
		r := s.expect(s.do("POST", "/api/v1/claims/"+id+"/"+action, tok, body), 200)
		if got := r.str("status"); got != status && !(status == "approved" && got == "partially_approved") {
			w.t.Fatalf("fixture %s: %s gave status %s: %s", state, action, r.str("status"), r.raw)
		}
	}
	act(w.tok[a], "assign", nil, "under_review")
	switch state {
	case "info":
		act(w.tok[a], "request-info", map[string]string{"message": "Please send the invoice."}, "info_requested")
	case "approved", "paid":
		if a == "over" {
			act(w.tok[a], "decide", map[string]string{"outcome": "approve"}, "pending_approval")
			act(w.tok["senior"], "approve-decision", nil, "approved")
		} else {
			act(w.tok[a], "decide", map[string]string{"outcome": "approve"}, "approved")
		}
		if state == "paid" {
			act(w.tok["senior"], "pay", nil, "paid")
		}
	case "denied":
		act(w.tok[a], "decide", map[string]string{"outcome": "deny", "reason": "Not covered."}, "denied")
	case "pending":
		act(w.tok[a], "decide", map[string]string{"outcome": "approve"}, "pending_approval")
	}
	return id
}
