package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSessionCookie(t *testing.T) {
	rec := httptest.NewRecorder()
	SetSessionCookie(rec, "opaque-id", 30*time.Minute)
	h := rec.Header().Get("Set-Cookie")
	for _, want := range []string{"__Host-claims_session=opaque-id", "Path=/", "Max-Age=1800", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(h, want) {
			t.Errorf("Set-Cookie %q lacks %q", h, want)
		}
	}
	if strings.Contains(strings.ToLower(h), "domain=") {
		t.Errorf("a __Host- cookie must not carry a Domain: %q", h)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: SessionCookieName, Value: "opaque-id"})
	if got := SessionCookie(r); got != "opaque-id" {
		t.Errorf("SessionCookie = %q", got)
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: SessionCookieName, Value: strings.Repeat("x", 600)})
	if got := SessionCookie(r); got != "" {
		t.Errorf("oversized cookie accepted")
	}
	rec = httptest.NewRecorder()
	ClearSessionCookie(rec)
	if h := rec.Header().Get("Set-Cookie"); !strings.Contains(h, "Max-Age=0") {
		t.Errorf("clear: %q", h)
	}
}
