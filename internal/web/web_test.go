package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/openclaims/claims/internal/claims"
)

func TestProblemResponses(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		detail     string
		field      string
		rule       string
		noContains string
	}{
		{"invalid field", claims.InvalidField("lines[0].amount", "positive", "lines[0].amount must be greater than zero."),
			400, "lines[0].amount must be greater than zero.", "lines[0].amount", "positive", ""},
		{"not found", claims.Errorf(claims.NotFound, "Claim not found."), 404, "Claim not found.", "", "", ""},
		{"internal hides cause", errors.New("pq: relation secret_table does not exist"), 500, "Internal error.", "", "", "secret_table"},
		{"wrapped internal", claims.Wrap(claims.Internal, errors.New("disk /var/x"), "boom"), 500, "Internal error.", "", "", "/var/x"},
		{"conflict", claims.Errorf(claims.Conflict, "nope"), 409, "nope", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Handle(slog.New(slog.DiscardHandler), func(w http.ResponseWriter, r *http.Request) error { return tt.err }).
				ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/x", nil))
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d", rec.Code, tt.status)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if p.Detail != tt.detail || p.Status != tt.status || !strings.HasPrefix(p.Type, "urn:claims:problem:") {
				t.Errorf("problem = %+v", p)
			}
			if tt.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tt.field || p.Errors[0].Rule != tt.rule) {
				t.Errorf("errors = %+v, want %s/%s", p.Errors, tt.field, tt.rule)
			}
			if tt.noContains != "" && strings.Contains(rec.Body.String(), tt.noContains) {
				t.Errorf("response leaks %q: %s", tt.noContains, rec.Body.String())
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	type req struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	tests := []struct {
		name, ct, body string
		kind           claims.Kind
		field, rule    string
	}{
		{"ok", "application/json", `{"name":"a","count":1}`, 0, "", ""},
		{"ok with charset", "application/json; charset=utf-8", `{"name":"a"}`, 0, "", ""},
		{"unknown field", "application/json", `{"name":"a","role":"admin"}`, claims.Invalid, "role", "unknown_field"},
		{"wrong type", "application/json", `{"count":"x"}`, claims.Invalid, "count", "type"},
		{"syntax", "application/json", `{"name":`, claims.Invalid, "", "syntax"},
		{"two values", "application/json", `{} {}`, claims.Invalid, "", "single_value"},
		{"empty", "application/json", ``, claims.Invalid, "", "required"},
		{"duplicate key", "application/json", `{"name":"a","count":1,"name":"admin"}`, claims.Invalid, "name", "duplicate_key"},
		{"same key in sibling objects is fine", "application/json", `{"name":"a"}`, 0, "", ""},
		{"case variant", "application/json", `{"name":"a","NAME":"b"}`, claims.Invalid, "NAME", "unknown_field"},
		{"values are not keys", "application/json", `{"name":"NAME","count":1}`, 0, "", ""},
		{"case variant in a nested value", "application/json", `{"name":"a","Count":2}`, claims.Invalid, "Count", "unknown_field"},
		{"deep", "application/json", strings.Repeat("[", 100) + strings.Repeat("]", 100), claims.Invalid, "", "max_depth"},
		{"form body", "application/x-www-form-urlencoded", `name=a`, claims.UnsupportedMedia, "", ""},
		{"too large", "application/json", `{"name":"` + strings.Repeat("a", MaxJSONBody) + `"}`, claims.TooLarge, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			r.Header.Set("Content-Type", tt.ct)
			var v req
			err := DecodeJSON(httptest.NewRecorder(), r, &v)
			if tt.kind == 0 {
				if err != nil {
					t.Fatalf("DecodeJSON() = %v", err)
				}
				return
			}
			if claims.KindOf(err) != tt.kind {
				t.Fatalf("DecodeJSON() = %v (kind %v), want %v", err, claims.KindOf(err), tt.kind)
			}
			if tt.rule != "" {
				e := err.(*claims.Error)
				if len(e.Fields) != 1 || e.Fields[0].Rule != tt.rule || e.Fields[0].Field != tt.field {
					t.Errorf("fields = %+v, want %s/%s", e.Fields, tt.field, tt.rule)
				}
			}
		})
	}
}

func TestClientAddr(t *testing.T) {
	proxies, err := ParseTrustedProxies("10.0.0.0/8, 192.168.1.1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, remote, xff, want string
	}{
		{"direct client ignores forged header", "203.0.113.9:5000", "1.2.3.4", "203.0.113.9"},
		{"trusted proxy", "10.1.2.3:443", "198.51.100.7", "198.51.100.7"},
		{"client prepends a forged hop", "10.1.2.3:443", "1.2.3.4, 198.51.100.7", "198.51.100.7"},
		{"chain of trusted proxies", "10.1.2.3:443", "198.51.100.7, 192.168.1.1, 10.9.9.9", "198.51.100.7"},
		{"garbage hop", "10.1.2.3:443", "not-an-ip", "10.1.2.3"},
		{"no header", "10.1.2.3:443", "", "10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if got := proxies.ClientAddr(r); got != tt.want {
				t.Errorf("ClientAddr = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	h := SecurityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	for _, k := range []string{"Strict-Transport-Security", "Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy"} {
		if rec.Header().Get(k) == "" {
			t.Errorf("missing %s", k)
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("TRACE", "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("TRACE answered %d", rec.Code)
	}
}

func TestDuplicateKey(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":{"x":1},"b":{"x":2}}`:             "",
		`{"a":[{"x":1,"x":2}]}`:                 "x",
		`{"a":"b","c":["a","a"]}`:               "",
		`{"a":{"b":1},"a":2}`:                   "a",
		`[{"k":1},{"k":2}]`:                     "",
		`{"a":"x","b":{"c":[1,{"d":1,"d":1}]}}`: "d",
	} {
		if got := duplicateKey([]byte(in)); got != want {
			t.Errorf("duplicateKey(%s) = %q, want %q", in, got, want)
		}
	}
}
