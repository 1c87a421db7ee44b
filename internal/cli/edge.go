package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/config"
	"github.com/openclaims/claims/internal/ratelimit"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/web"
	"github.com/openclaims/claims/internal/web/api"
)

// edge is the request-facing layer around the API (docs/edge.md).
type edge struct {
	cors  *web.CORS
	cop   *http.CrossOriginProtection
	guard *ratelimit.Guard
	// sweep removes full buckets of the shared limiter (nil in memory).
	sweep func(ctx context.Context)
	name  string // limiter, for the banner
}

// newEdge builds CORS, cross-origin protection and the rate limiter from
// cfg, and installs the per-user limit in h.
func newEdge(cfg config.Config, a *app, h *api.Handler) (*edge, error) {
	e := &edge{cop: http.NewCrossOriginProtection()}
	e.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.WriteError(a.log, w, r, claims.Errorf(claims.Forbidden, "Cross-origin request refused."))
	}))
	var err error
	if e.cors, err = web.NewCORS(cfg.CORSOrigins); err != nil {
		return nil, err
	}
	for _, o := range e.cors.Origins() {
		// A listed origin may also make state-changing requests.
		if err := e.cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("CLAIMS_CORS_ORIGINS: %w", err)
		}
	}
	limits, err := ratelimit.ParseConfig(cfg.RateLimits)
	if err != nil {
		return nil, err
	}
	var lim ratelimit.Limiter
	shared := cfg.RateBackend == "database" || (cfg.RateBackend == "auto" && a.db.Dialect() == store.Postgres)
	if shared {
		s := ratelimit.NewShared(a.db, a.log, nil)
		lim, e.sweep, e.name = s, func(ctx context.Context) { s.Sweep(ctx, time.Minute) }, "shared (database)"
	} else {
		lim, e.name = ratelimit.NewMemory(0, nil), "in process"
	}
	e.guard = ratelimit.NewGuard(lim, limits, a.log)
	h.LimitUsers(e.guard.User)
	return e, nil
}

// tlsConfig is TLS 1.3 only, or with min "1.2" also TLS 1.2 restricted to
// ECDHE with AEAD suites (no CBC, no RSA key exchange).
func tlsConfig(min string, pair tls.Certificate) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}}
	if min == "1.2" {
		c.MinVersion = tls.VersionTLS12
		c.CipherSuites = []uint16{ // TLS 1.3 suites are not configurable (all AEAD)
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		}
	}
	return c
}

var redirectHost = regexp.MustCompile(`^[A-Za-z0-9.-]{1,253}$|^\[[0-9A-Fa-f:.]{2,45}\]$`)

// redirectHandler answers every plain-HTTP request with a 308 to the same
// host and path over HTTPS on httpsPort, and nothing else: no body is read,
// no route is served. A Host that is not a plain name or address is
// refused rather than echoed into a Location.
func redirectHandler(httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
			if strings.Contains(h, ":") {
				host = "[" + h + "]"
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Connection", "close")
		// API clients are not redirected: a client that sent a token over
		// plain HTTP must fail loudly, not be silently carried to HTTPS
		// (ASVS V4.1.2). Only what a person types into a browser redirects.
		if strings.HasPrefix(r.URL.Path, "/api/") {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "the API is served over https only\n")
			return
		}
		if !redirectHost.MatchString(host) || r.URL.Path == "" || r.URL.Path[0] != '/' {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, "use https\n")
			return
		}
		if httpsPort != "443" {
			host += ":" + httpsPort
		}
		w.Header().Set("Location", "https://"+host+r.URL.RequestURI())
		w.WriteHeader(http.StatusPermanentRedirect)
	})
}

// redirectServer is the plain-HTTP listener's server: tight limits, since
// it does nothing but redirect.
func redirectServer(httpsPort string) *http.Server {
	return &http.Server{Handler: redirectHandler(httpsPort), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 8 << 10}
}

func tlsLabel(min string) string {
	if min == "1.2" {
		return "TLS 1.2 and 1.3"
	}
	return "TLS 1.3"
}

func (e *edge) corsBanner() string {
	if !e.cors.Enabled() {
		return "off"
	}
	return strings.Join(e.cors.Origins(), " ")
}
