package api

import (
	"net/http"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/web"
)

// deprecations is the registry of deprecated routes ("METHOD /path" as in
// Register): their responses carry Deprecation and Sunset headers and the
// OpenAPI document marks them deprecated. Nothing is deprecated today; see
// the versioning policy in docs/edge.md.
var deprecations = map[string]web.Deprecation{}

// edge wraps the handler of one route with what the route table says about
// it beyond its handler (today: a deprecation notice).
func edge(method, path string, next http.Handler) http.Handler {
	if d, ok := deprecations[method+" "+path]; ok {
		return web.Deprecated(d, next)
	}
	return next
}

// LimitUsers installs the per-user rate limit: f is called for every
// authenticated request once the token and session are verified, with the
// user id the server issued (never a value the client chose); an error it
// returns (a 429) answers the request. Call before serving.
func (h *Handler) LimitUsers(f func(r *http.Request, user claims.ID) error) { h.userLimit = f }
