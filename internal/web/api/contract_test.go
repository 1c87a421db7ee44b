package api

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/web"
	"github.com/openclaims/claims/internal/web/api/openapicheck"
)

// The contract test proper records a running server's responses
// (internal/cli, TestContract); these tests show the validator it uses
// catches what it must, against this package's document.

func checkDoc(t *testing.T) *openapicheck.Doc {
	t.Helper()
	h := New(nil, slog.New(slog.DiscardHandler), func() ([]byte, error) { return []byte(`{"keys":[]}`), nil }, nil)
	h.Register(http.NewServeMux())
	d, err := openapicheck.New(h.Document())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestContractValidator(t *testing.T) {
	d := checkDoc(t)
	money := `{"amount":"10.00","currency":"USD"}`
	claim := `{"id":"c1","number":"CLM-1","policyId":"p1","type":"collision","incidentDate":"2026-03-01","reportedDate":"2026-03-02",
		"description":"d","location":"","status":"submitted","allowedTransitions":["under_review"],"total":` + money + `,"payable":` + money + `,
		"flags":[],"appealed":false,"source":"api","version":1,"createdAt":"2026-03-02T10:00:00Z","updatedAt":"2026-03-02T10:00:00.123Z"}`
	problem := `{"type":"urn:claims:problem:not_found","title":"Not found","status":404,"detail":"No such claim.","instance":"/api/v1/claims/x","requestId":"ab"}`
	for _, c := range []struct {
		name, method, path string
		status             int
		ct, body           string
		wantErr            string // "" = valid
	}{
		{"claim", "GET", "/api/v1/claims/c1", 200, "application/json", claim, ""},
		{"problem", "GET", "/api/v1/claims/c1", 404, "application/problem+json", problem, ""},
		{"problem as json", "GET", "/api/v1/claims/c1", 404, "application/json", problem, "content type"},
		{"undocumented status", "GET", "/api/v1/claims/c1", 302, "", "", "not documented"},
		{"unknown route", "GET", "/api/v1/nope", 200, "application/json", "{}", "no such route"},
		{"extra property", "GET", "/api/v1/claims/c1", 200, "application/json", strings.Replace(claim, `"id"`, `"secret":"x","id"`, 1), `property "secret"`},
		{"wrong type", "GET", "/api/v1/claims/c1", 200, "application/json", strings.Replace(claim, `"version":1`, `"version":"1"`, 1), "want integer"},
		{"float money", "GET", "/api/v1/claims/c1", 200, "application/json", strings.Replace(claim, `"amount":"10.00"`, `"amount":10`, 1), "want string"},
		{"bad decimal", "GET", "/api/v1/claims/c1", 200, "application/json", strings.Replace(claim, `"amount":"10.00"`, `"amount":"1e3"`, 1), "does not match"},
		{"bad date", "GET", "/api/v1/claims/c1", 200, "application/json", strings.Replace(claim, `"2026-03-01"`, `"01/03/2026"`, 1), "not a date"},
		{"bad stamp", "GET", "/api/v1/claims/c1", 200, "application/json", strings.Replace(claim, `"2026-03-02T10:00:00Z"`, `""`, 1), "date-time"},
		{"missing required", "GET", "/api/v1/claims", 200, "application/json", `{"items":[]}`, `"next_cursor" missing`},
		{"list item checked", "GET", "/api/v1/claims", 200, "application/json", `{"items":[{"id":1}],"next_cursor":""}`, "$.items[0].id"},
		{"no-content route with body", "POST", "/api/v1/auth/logout", 204, "application/json", `{}`, "without a body"},
		{"no content", "POST", "/api/v1/auth/logout", 204, "", "", ""},
		{"enum", "GET", "/api/v1/claims/c1/documents/d1", 200, "application/json",
			`{"id":"d","claimId":"c","filename":"f","contentType":"text/plain","size":1,"sha256":"x","status":"infected","uploadedBy":"u","createdAt":"2026-03-02T10:00:00Z","contentUrl":"/x"}`, "not one of"},
	} {
		err := d.CheckResponse(c.method, c.path, c.status, c.ct, []byte(c.body))
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.wantErr)
		}
	}
}

// TestDeprecationRegistry: a route in the registry answers with
// Deprecation, Sunset and Link headers (errors too), and the document marks
// it deprecated; routes outside it carry nothing.
func TestDeprecationRegistry(t *testing.T) {
	if len(deprecations) != 0 {
		t.Fatalf("routes deprecated today: %v (update docs/edge.md and this test)", deprecations)
	}
	since := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	deprecations["GET /api/v1/.well-known/jwks.json"] = web.Deprecation{Since: since, Sunset: since.AddDate(0, 6, 0), Link: "https://example.com/migrate"}
	t.Cleanup(func() { delete(deprecations, "GET /api/v1/.well-known/jwks.json") })
	h := New(nil, slog.New(slog.DiscardHandler), func() ([]byte, error) { return []byte(`{"keys":[]}`), nil }, nil)
	mux := http.NewServeMux()
	h.Register(mux)
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w
	}
	w := get("/api/v1/.well-known/jwks.json")
	if w.Code != 200 || w.Header().Get("Deprecation") != "@1768435200" || w.Header().Get("Sunset") != "Wed, 15 Jul 2026 00:00:00 GMT" ||
		w.Header().Get("Link") != `<https://example.com/migrate>; rel="deprecation"; type="text/html"` {
		t.Errorf("deprecated route: %d %v", w.Code, w.Header())
	}
	if w := get("/api/v1/openapi.json"); w.Header().Get("Deprecation") != "" || w.Header().Get("Sunset") != "" {
		t.Errorf("route outside the registry: %v", w.Header())
	}
	op := h.Document()["paths"].(map[string]map[string]any)["/api/v1/.well-known/jwks.json"]["get"].(map[string]any)
	if op["deprecated"] != true || !strings.Contains(op["description"].(string), "2026-07-15") {
		t.Errorf("document: %v", op)
	}
	if _, ok := h.Document()["paths"].(map[string]map[string]any)["/api/v1/openapi.json"]["get"].(map[string]any)["deprecated"]; ok {
		t.Error("openapi.json marked deprecated")
	}
}
