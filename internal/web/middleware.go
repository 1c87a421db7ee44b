package web

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/claims"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	principalKey
	clientIPKey
)

// RequestID returns the request's id ("" outside a request).
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

// ClientIP returns the client address decided by the ClientIP middleware.
func ClientIP(ctx context.Context) string {
	s, _ := ctx.Value(clientIPKey).(string)
	return s
}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p claims.Principal) context.Context {
	return context.WithValue(ctx, principalKey, p)
}

// PrincipalFrom returns the signed-in principal, or the zero (anonymous) one.
func PrincipalFrom(ctx context.Context) claims.Principal {
	p, _ := ctx.Value(principalKey).(claims.Principal)
	return p
}

// Middleware wraps a handler.
type Middleware func(http.Handler) http.Handler

// Chain applies mw so that the first runs outermost.
func Chain(h http.Handler, mw ...Middleware) http.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// RequestIDs gives every request a fresh random id (a client-sent one is
// not trusted: it would let a client forge log correlation).
func RequestIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [8]byte
		rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// TrustedProxies decides the client address: the connection's peer, unless
// the peer is a configured proxy, in which case X-Forwarded-For is walked
// from the right, skipping trusted proxies. A client can't forge its
// address by sending the header itself.
type TrustedProxies []netip.Prefix

// ParseTrustedProxies parses a comma-separated CIDR list.
func ParseTrustedProxies(s string) (TrustedProxies, error) {
	var out TrustedProxies
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, err2 := netip.ParseAddr(f)
			if err2 != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (t TrustedProxies) trusted(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// ClientAddr returns the client address for r.
func (t TrustedProxies) ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !t.trusted(peer) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: stop at the last address we could trust
		}
		a = a.Unmap()
		if !t.trusted(a) {
			return a.String()
		}
		peer = a
	}
	return peer.String()
}

// Middleware records the client address in the request context.
func (t TrustedProxies) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientIPKey, t.ClientAddr(r))))
	})
}

// SecurityHeaders sets the headers every response carries. The API serves
// JSON only, so the content security policy forbids everything.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if r.Method == http.MethodTrace || r.Method == "TRACK" {
			// Refused before any handler: a TRACE echo would hand request
			// headers (tokens) to a script (cross-site tracing).
			h.Set("Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS")
			h.Set("Content-Type", "application/problem+json")
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_ = json.NewEncoder(w).Encode(Problem{Type: "urn:claims:problem:method_not_allowed", Title: "Method not allowed",
				Status: http.StatusMethodNotAllowed, Detail: "TRACE is not supported.", Instance: r.URL.Path, RequestID: RequestID(r.Context())})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Recover turns a panic into a 500 and a log entry with the stack.
func Recover(log *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.ErrorContext(r.Context(), "panic", "request_id", RequestID(r.Context()), "panic", fmt.Sprint(v),
						"stack", string(debug.Stack()))
					WriteError(log, w, r, errors.New("panic"))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// statusWriter records the status for the access log. It keeps upgrades
// and flushing working (Unwrap, Hijack).
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// AccessLog logs one line per request: method, route pattern (never the raw
// query, which might carry personal data), status, duration, ids.
func AccessLog(log *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			slot := &logSlot{}
			r = r.WithContext(context.WithValue(r.Context(), logUserKey{}, slot))
			next.ServeHTTP(sw, r)
			route := slot.route
			if route == "" {
				route = "unmatched"
			}
			log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method), slog.String("route", route), slog.Int("status", sw.status),
				slog.Duration("duration", time.Since(start)), slog.Int64("bytes", sw.bytes),
				slog.String("request_id", RequestID(r.Context())), slog.String("client_ip", ClientIP(r.Context())),
				slog.String("user_id", string(slot.user)))
		})
	}
}

type logUserKey struct{}

// logSlot is filled by inner handlers for the access log: the auth check and
// the mux's route match happen inside the logging middleware, on request
// copies it never sees.
type logSlot struct {
	user  claims.ID
	route string
}

// SetLogUser tells the access log which user a request was for.
func SetLogUser(ctx context.Context, id claims.ID) {
	if slot, ok := ctx.Value(logUserKey{}).(*logSlot); ok {
		slot.user = id
	}
}

func setLogRoute(ctx context.Context, pattern string) {
	if slot, ok := ctx.Value(logUserKey{}).(*logSlot); ok {
		slot.route = pattern
	}
}
