package web

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/openclaims/claims/internal/claims"
)

// CORS answers cross-origin requests from an exact allowlist of origins.
// It is off unless origins are configured (the UI is same-origin). Rules:
//
//   - An origin is reflected in Access-Control-Allow-Origin only when it is
//     listed, byte for byte; never "*", never "null".
//   - Credentials (cookies) are never allowed: the API takes bearer tokens
//     in the Authorization header, which CORS permits without them.
//   - Every response says Vary: Origin, so caches keep answers apart.
//   - Preflights are answered only for listed origins, for the listed
//     methods and headers, and are bounded in cost: an
//     Access-Control-Request-Headers longer than MaxPreflightHeaderBytes or
//     naming more than MaxPreflightHeaderNames headers is refused with 400
//     before it is split.
type CORS struct {
	origins map[string]bool
}

// Preflight bounds.
const (
	MaxPreflightHeaderBytes = 1024
	MaxPreflightHeaderNames = 20
)

var (
	corsMethods = []string{"GET", "POST", "PUT", "DELETE"}
	corsHeaders = []string{"Authorization", "Content-Type", "If-Match", "Idempotency-Key"}
	corsExpose  = "ETag, Location, Retry-After, X-Request-Id, Deprecation, Sunset, Link"
)

// NewCORS validates origins ("https://app.example.com", with a port when
// not the default) and returns the middleware's configuration; nil
// origins give a CORS that does nothing.
func NewCORS(origins []string) (*CORS, error) {
	c := &CORS{origins: map[string]bool{}}
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.Contains(o, "*") {
			return nil, fmt.Errorf("CORS origin %q: want scheme://host[:port] exactly, e.g. https://app.example.com (no wildcard, path or null)", o)
		}
		c.origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	return c, nil
}

// Enabled reports whether any origin is allowed.
func (c *CORS) Enabled() bool { return c != nil && len(c.origins) > 0 }

// Origins returns the allowed origins.
func (c *CORS) Origins() []string {
	var out []string
	for o := range c.origins {
		out = append(out, o)
	}
	return out
}

// Middleware applies the rules; with no origins it passes requests through.
func (c *CORS) Middleware(next http.Handler) http.Handler {
	if !c.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		preflight := r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != ""
		if !preflight {
			if origin != "" && c.origins[origin] {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Expose-Headers", corsExpose)
			}
			next.ServeHTTP(w, r)
			return
		}
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		// Bound the cost first: measure, don't split.
		reqHeaders := r.Header.Values("Access-Control-Request-Headers")
		size := 0
		for _, v := range reqHeaders {
			size += len(v)
		}
		if size > MaxPreflightHeaderBytes || len(reqHeaders) > 1 {
			WriteError(slog.Default(), w, r, claims.InvalidField("Access-Control-Request-Headers", "max_length",
				"Access-Control-Request-Headers is longer than %d bytes.", MaxPreflightHeaderBytes))
			return
		}
		joined := strings.Join(reqHeaders, "")
		if strings.Count(joined, ",") >= MaxPreflightHeaderNames {
			WriteError(slog.Default(), w, r, claims.InvalidField("Access-Control-Request-Headers", "max_items",
				"Access-Control-Request-Headers names more than %d headers.", MaxPreflightHeaderNames))
			return
		}
		if !c.origins[origin] {
			WriteError(slog.Default(), w, r, claims.Errorf(claims.Forbidden, "This origin may not call the API."))
			return
		}
		if m := r.Header.Get("Access-Control-Request-Method"); !contains(corsMethods, m, false) {
			WriteError(slog.Default(), w, r, claims.Errorf(claims.Forbidden, "Method %.20q is not allowed cross-origin.", m))
			return
		}
		if joined != "" {
			for name := range strings.SplitSeq(joined, ",") {
				if name = strings.TrimSpace(name); name != "" && !contains(corsHeaders, name, true) {
					WriteError(slog.Default(), w, r, claims.Errorf(claims.Forbidden, "Header %.40q is not allowed cross-origin.", name))
					return
				}
			}
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Methods", strings.Join(corsMethods, ", "))
		h.Set("Access-Control-Allow-Headers", strings.Join(corsHeaders, ", "))
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
	})
}

func contains(list []string, s string, fold bool) bool {
	for _, x := range list {
		if x == s || (fold && strings.EqualFold(x, s)) {
			return true
		}
	}
	return false
}
