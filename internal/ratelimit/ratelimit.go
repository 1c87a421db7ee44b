// Package ratelimit bounds how fast one client address and one user may
// call the API, per route class (sign-in and other credential routes,
// uploads, reads, writes). Each key is a token bucket: N requests at once,
// refilled at N per period. Over the limit the answer is 429 with
// Retry-After.
//
// Two Limiters sit behind one interface: Memory (golang.org/x/time/rate
// buckets in a bounded LRU, for one node on SQLite) and Shared (a GCRA row
// per key in the database, one UPSERT per request, so every node on
// PostgreSQL sees the same counts). See docs/edge.md.
package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/web"
)

// Class is a route class: each has its own limits.
type Class int

const (
	Auth   Class = iota // sign-in, MFA, registration, password reset and change
	Upload              // document uploads
	Read                // GET, HEAD, OPTIONS
	Write               // every other method
	numClasses
)

var classNames = [numClasses]string{"auth", "upload", "read", "write"}

func (c Class) String() string { return classNames[c] }

// authPaths are the routes that check a credential or create an account:
// the strictest class, whatever the method.
var authPaths = map[string]bool{
	"/api/v1/auth/login": true, "/api/v1/auth/mfa": true, "/api/v1/auth/register": true,
	"/api/v1/auth/password-reset": true, "/api/v1/auth/password-reset/confirm": true,
	"/api/v1/auth/password": true, "/api/v1/auth/mfa/verify": true, "/api/v1/auth/mfa/confirm": true,
}

// ClassOf classifies a request by method and URL path. The path is cleaned
// first; a path the router would not serve as given (it redirects unclean
// ones) only ever falls into a laxer class for the redirect itself.
func ClassOf(method, p string) Class {
	p = path.Clean(p)
	if authPaths[p] {
		return Auth
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return Read
	}
	if method == http.MethodPost && strings.HasPrefix(p, "/api/v1/claims/") && strings.HasSuffix(p, "/documents") &&
		strings.Count(p, "/") == 5 {
		return Upload
	}
	return Write
}

// Limit is N requests per Per: a bucket of N tokens refilled evenly over
// Per. The zero Limit means no limit.
type Limit struct {
	N   int
	Per time.Duration
}

// Off reports whether l imposes nothing.
func (l Limit) Off() bool { return l.N <= 0 || l.Per <= 0 }

// Interval is the time one token takes to come back.
func (l Limit) Interval() time.Duration { return l.Per / time.Duration(l.N) }

func (l Limit) String() string {
	if l.Off() {
		return "off"
	}
	return fmt.Sprintf("%d/%s", l.N, l.Per)
}

// ParseLimit reads "N/duration" (e.g. "20/1m", "600/1m", "5/10s") or "off".
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return Limit{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Limit{}, fmt.Errorf("rate %q: want N/duration, e.g. 20/1m, or off", s)
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count < 1 || count > 1_000_000 {
		return Limit{}, fmt.Errorf("rate %q: N must be a positive integer", s)
	}
	d, err := time.ParseDuration(strings.TrimSpace(per))
	if err != nil || d < time.Millisecond || d > 24*time.Hour {
		return Limit{}, fmt.Errorf("rate %q: duration must be between 1ms and 24h, e.g. 1m", s)
	}
	if d/time.Duration(count) < time.Microsecond {
		return Limit{}, fmt.Errorf("rate %q: more than one request per microsecond", s)
	}
	return Limit{N: count, Per: d}, nil
}

// Config holds the limits per class, for client addresses and for users.
type Config struct {
	IP   [numClasses]Limit
	User [numClasses]Limit
}

// Defaults are the limits when nothing is configured (docs/edge.md). The
// sign-in class is also guarded by the per-account lockout and the
// per-address failure throttle in workflow; this limit bounds the bcrypt
// work one address can ask for.
var Defaults = map[string]string{
	"auth_ip": "30/1m", "auth_user": "10/1m",
	"upload_ip": "60/1m", "upload_user": "30/1m",
	"read_ip": "1200/1m", "read_user": "600/1m",
	"write_ip": "300/1m", "write_user": "120/1m",
}

// EnvName is the configuration variable of a Defaults key.
func EnvName(key string) string { return "CLAIMS_RATE_" + strings.ToUpper(key) }

// ParseConfig builds a Config from settings keyed like Defaults
// ("auth_ip", ...); missing keys take the default.
func ParseConfig(settings map[string]string) (Config, error) {
	var c Config
	for i, name := range classNames {
		for _, who := range []string{"ip", "user"} {
			key := name + "_" + who
			v, ok := settings[key]
			if !ok || v == "" {
				v = Defaults[key]
			}
			l, err := ParseLimit(v)
			if err != nil {
				return c, fmt.Errorf("%s: %w", EnvName(key), err)
			}
			if who == "ip" {
				c.IP[i] = l
			} else {
				c.User[i] = l
			}
		}
	}
	return c, nil
}

// Limiter decides whether the request counted against key may proceed
// under l, and if not, how long until it could.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) (ok bool, retryAfter time.Duration, err error)
}

// Guard applies a Config with a Limiter: per client address as middleware,
// per user through User once the principal is known.
type Guard struct {
	lim Limiter
	cfg Config
	log *slog.Logger
}

// NewGuard returns a Guard.
func NewGuard(lim Limiter, cfg Config, log *slog.Logger) *Guard {
	return &Guard{lim: lim, cfg: cfg, log: log}
}

// Middleware limits each client address (web.ClientIP: the connection's
// peer unless it is a trusted proxy, so a forged X-Forwarded-For changes
// nothing). It must run after the TrustedProxies middleware.
func (g *Guard) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := ClassOf(r.Method, r.URL.Path)
		if err := g.check(r.Context(), "ip:"+c.String()+":"+web.ClientIP(r.Context()), g.cfg.IP[c], c); err != nil {
			web.WriteError(g.log, w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// User counts r against the signed-in user's limit for its class. The API
// calls it after verifying the access token and the session, so the key is
// a user id the server issued, never a value the client chose.
func (g *Guard) User(r *http.Request, user claims.ID) error {
	c := ClassOf(r.Method, r.URL.Path)
	return g.check(r.Context(), "user:"+c.String()+":"+string(user), g.cfg.User[c], c)
}

func (g *Guard) check(ctx context.Context, key string, l Limit, c Class) error {
	if l.Off() {
		return nil
	}
	ok, wait, err := g.lim.Allow(ctx, key, l)
	if err != nil {
		// Limiters fall back on their own; an error here is a bug, and
		// refusing every request over it would be an outage.
		g.log.ErrorContext(ctx, "rate limiter failed", "err", err)
		return nil
	}
	if ok {
		return nil
	}
	return Refusal(c, wait)
}

// RuleRateLimited names the rule in the problem's errors.
const RuleRateLimited = "rate_limited"

// Refusal is the 429 error for class c with Retry-After wait (rounded up
// to whole seconds, at least 1).
func Refusal(c Class, wait time.Duration) error {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	e := claims.Errorf(claims.RateLimited, "Too many %s requests; wait %d seconds before trying again.", c, secs)
	e.Fields = []claims.FieldError{{Rule: RuleRateLimited, Message: e.Message}}
	e.Extra = map[string]any{"retry_after": secs}
	return e
}
