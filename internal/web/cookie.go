package web

import (
	"net/http"
	"time"
)

// SessionCookieName is the cookie the web UI's session will travel in. The
// __Host- prefix makes browsers refuse it unless it is Secure, has Path=/
// and no Domain, so no sibling subdomain can set or overwrite it.
const SessionCookieName = "__Host-claims_session"

// SetSessionCookie sets the session cookie: HttpOnly (no script reads it),
// Secure (HTTPS only), SameSite=Strict (never sent on cross-site requests:
// with http.CrossOriginProtection in the chain, the CSRF defence). The
// value must be a fresh opaque session id at every authentication step, so
// a cookie planted before sign-in (session fixation) is never promoted.
func SetSessionCookie(w http.ResponseWriter, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookieName, Value: value, Path: "/", MaxAge: int(maxAge.Seconds()),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// ClearSessionCookie removes the session cookie (sign-out).
func ClearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookieName, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// SessionCookie returns the session cookie's value, or "".
func SessionCookie(r *http.Request) string {
	c, err := r.Cookie(SessionCookieName)
	if err != nil || len(c.Value) > 512 {
		return ""
	}
	return c.Value
}
