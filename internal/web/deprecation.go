package web

import (
	"net/http"
	"strconv"
	"time"
)

// Deprecation announces that a route will go away: the Deprecation header
// (RFC 9745: "@" and the Unix time it was deprecated), the Sunset header
// (RFC 8594: the HTTP date after which it may stop answering) and Link
// headers to the documentation of the replacement. Policy (docs/edge.md):
// a deprecated route keeps working for at least six months after its
// Deprecation date and is described as deprecated in the OpenAPI document.
type Deprecation struct {
	Since  time.Time // when it was deprecated (required)
	Sunset time.Time // when it may stop answering; zero = not yet decided
	Link   string    // URL of the migration notes or the successor; optional
}

// Deprecated wraps next so every response, errors included, carries the
// announcement of d.
func Deprecated(d Deprecation, next http.Handler) http.Handler {
	dep := "@" + strconv.FormatInt(d.Since.Unix(), 10)
	var sunset string
	if !d.Sunset.IsZero() {
		sunset = d.Sunset.UTC().Format(http.TimeFormat)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Deprecation", dep)
		if sunset != "" {
			h.Set("Sunset", sunset)
		}
		if d.Link != "" {
			h.Add("Link", "<"+d.Link+`>; rel="deprecation"; type="text/html"`)
		}
		next.ServeHTTP(w, r)
	})
}
