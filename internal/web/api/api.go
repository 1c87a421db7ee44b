// Package api is the JSON API under /api/v1: routes, request decoding and
// validation into domain values, response shaping, and the OpenAPI
// document. Each handler decodes, calls one workflow method and writes the
// result; rules live in workflow and claims.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/openclaims/claims/internal/access"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/web"
	"github.com/openclaims/claims/internal/workflow"
)

// Handler serves /api/v1.
type Handler struct {
	flow   *workflow.Service
	log    *slog.Logger
	jwks   func() ([]byte, error)
	ready  func(ctx context.Context) error
	routes []route
	live   *liveHub // GET /api/v1/ws (ws.go); nil until SetLive
	// userLimit is the per-user rate limit (LimitUsers in edge.go).
	userLimit func(r *http.Request, user claims.ID) error
}

type route struct {
	method, path string
	auth         bool // requires a signed-in principal
}

// New returns the API handler.
func New(flow *workflow.Service, log *slog.Logger, jwks func() ([]byte, error), ready func(ctx context.Context) error) *Handler {
	return &Handler{flow: flow, log: log, jwks: jwks, ready: ready}
}

// Routes lists every registered route (method and pattern), for the
// OpenAPI completeness test.
func (h *Handler) Routes() []string {
	out := make([]string, len(h.routes))
	for i, r := range h.routes {
		out[i] = r.method + " " + r.path
	}
	return out
}

// Register adds every route to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	public := func(method, path string, f web.HandlerFunc) {
		h.routes = append(h.routes, route{method, path, false})
		mux.Handle(method+" "+path, edge(method, path, web.Handle(h.log, f)))
	}
	private := func(method, path string, f web.HandlerFunc) {
		h.routes = append(h.routes, route{method, path, true})
		mux.Handle(method+" "+path, edge(method, path, web.Handle(h.log, h.authenticated(f))))
	}
	public("GET", "/api/v1/openapi.json", h.openAPI)
	public("GET", "/api/v1/.well-known/jwks.json", h.getJWKS)
	public("POST", "/api/v1/auth/register", h.register)
	public("POST", "/api/v1/auth/login", h.login)
	public("POST", "/api/v1/auth/refresh", h.refresh)
	private("POST", "/api/v1/auth/logout", h.logout)
	private("GET", "/api/v1/me", h.me)
	public("POST", "/api/v1/auth/mfa", h.loginMFA)
	private("POST", "/api/v1/auth/mfa/enroll", h.mfaEnroll)
	private("POST", "/api/v1/auth/mfa/confirm", h.mfaConfirm)
	private("POST", "/api/v1/auth/mfa/verify", h.mfaVerify)
	private("POST", "/api/v1/auth/password", h.changePassword)
	public("POST", "/api/v1/auth/password-reset", h.passwordReset)
	public("POST", "/api/v1/auth/password-reset/confirm", h.passwordResetConfirm)
	public("POST", "/api/v1/auth/verify-email", h.verifyEmail)
	private("GET", "/api/v1/sessions", h.listSessions)
	private("DELETE", "/api/v1/sessions/{id}", h.endSession)
	private("POST", "/api/v1/sessions/end-others", h.endOtherSessions)
	private("POST", "/api/v1/users/{id}/disable", h.adminUser(workflow.ActionDisable))
	private("POST", "/api/v1/users/{id}/enable", h.adminUser(workflow.ActionEnable))
	private("POST", "/api/v1/users/{id}/unlock", h.adminUser(workflow.ActionUnlock))
	private("POST", "/api/v1/users/{id}/logout", h.adminUser(workflow.ActionLogout))
	private("POST", "/api/v1/users/{id}/reset-mfa", h.adminUser(workflow.ActionResetMFA))
	private("POST", "/api/v1/users/{id}/role", h.setRole)

	private("GET", "/api/v1/policies", h.listPolicies)
	private("POST", "/api/v1/policies", h.createPolicy)
	private("GET", "/api/v1/policies/{id}", h.getPolicy)

	private("GET", "/api/v1/claims", h.listClaims)
	private("POST", "/api/v1/claims", h.fileClaim)
	private("GET", "/api/v1/claims/{id}", h.getClaim)
	private("GET", "/api/v1/claims/{id}/history", h.claimHistory)
	private("POST", "/api/v1/claims/{id}/submit", h.submit)
	private("POST", "/api/v1/claims/{id}/withdraw", h.withdraw)
	private("POST", "/api/v1/claims/{id}/assign", h.assign)
	private("POST", "/api/v1/claims/{id}/request-info", h.requestInfo)
	private("POST", "/api/v1/claims/{id}/respond", h.respond)
	private("POST", "/api/v1/claims/{id}/decide", h.decide)
	private("POST", "/api/v1/claims/{id}/pay", h.pay)
	private("POST", "/api/v1/claims/{id}/close", h.closeClaim)
	private("POST", "/api/v1/claims/{id}/appeal", h.appeal)
	private("POST", "/api/v1/claims/{id}/documents", h.uploadDocument)
	private("GET", "/api/v1/claims/{id}/documents", h.listDocuments)
	private("GET", "/api/v1/claims/{id}/documents/{docId}", h.getDocument)
	private("GET", "/api/v1/claims/{id}/documents/{docId}/content", h.documentContent)

	private("GET", "/api/v1/audit", h.auditTrail)

	// Data subject rights (privacy.go).
	private("GET", "/api/v1/me/export", h.exportMe)
	private("POST", "/api/v1/me/erasure-request", h.requestErasure)
	private("GET", "/api/v1/erasure-requests", h.listErasureRequests)
	private("POST", "/api/v1/erasure-requests/{id}/approve", h.approveErasure)

	private("POST", "/api/v1/claims/{id}/approve-decision", h.approveDecision)
	private("POST", "/api/v1/claims/{id}/return-decision", h.returnDecision)
	private("GET", "/api/v1/delegations", h.listDelegations)
	private("POST", "/api/v1/delegations", h.createDelegation)
	private("DELETE", "/api/v1/delegations/{id}", h.revokeDelegation)
	private("GET", "/api/v1/roles", h.listRoles)
	private("PUT", "/api/v1/roles/{name}", h.putRole)
	private("GET", "/api/v1/users", h.listUsers)
	private("POST", "/api/v1/users", h.inviteUser)
	private("PUT", "/api/v1/users/{id}/authority-limit", h.setAuthority)
	private("GET", "/api/v1/me/access-log", h.accessLog)
	private("POST", "/api/v1/me/link-policyholder", h.linkPolicyholder)
	private("GET", "/api/v1/training/claims", h.trainingClaims)

	// Live updates (docs/live.md): the socket authenticates itself (its
	// token comes in a subprotocol or the first message: a browser can't
	// set headers on a WebSocket), so it is registered without the bearer
	// wrapper.
	public("GET", "/api/v1/ws", h.websocket)
	private("GET", "/api/v1/claims/{id}/messages", h.listMessages)
	private("POST", "/api/v1/claims/{id}/messages", h.postMessage)

	// Anything else under /api answers with a problem, not the mux's text;
	// an unknown version points at the supported one.
	mux.Handle("/api/", web.Handle(h.log, func(w http.ResponseWriter, r *http.Request) error {
		if !strings.HasPrefix(r.URL.Path, "/api/v1/") {
			return claims.Errorf(claims.NotFound, "Unknown API version; the supported version is /api/v1.")
		}
		return claims.Errorf(claims.NotFound, "No such endpoint.")
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_ = web.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /readyz", web.Handle(h.log, func(w http.ResponseWriter, r *http.Request) error {
		if err := h.ready(r.Context()); err != nil {
			h.log.WarnContext(r.Context(), "not ready", "err", err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"unavailable"}` + "\n"))
			return nil
		}
		return web.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}))
}

// authenticated requires a valid bearer token and a live session.
func (h *Handler) authenticated(next web.HandlerFunc) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		authz := r.Header.Get("Authorization")
		// Refuse oversized or malformed headers before any parsing.
		// The scheme name is case-insensitive (RFC 9110 §11.1).
		if len(authz) > 4096 || len(authz) < 7 || !strings.EqualFold(authz[:7], "Bearer ") {
			return claims.Errorf(claims.Unauthenticated, "Send an access token as 'Authorization: Bearer <token>'.")
		}
		p, err := h.flow.Authenticate(r.Context(), authz[7:])
		if err != nil {
			return err
		}
		if p.MustEnrollMFA() && !mfaEnrollmentRoutes[r.Pattern] {
			return h.flow.StepUp(p) // explains that enrolment comes first
		}
		web.SetLogUser(r.Context(), p.UserID)
		if h.userLimit != nil {
			if err := h.userLimit(r, p.UserID); err != nil {
				return err
			}
		}
		err = next(w, r.WithContext(web.WithPrincipal(r.Context(), p)))
		// Refusals are security events. Claim actions audit their own
		// (with the claim as object); every other refused route is
		// recorded here.
		if claims.KindOf(err) == claims.Forbidden && !strings.HasPrefix(r.Pattern, "POST /api/v1/claims/") {
			h.flow.RecordForbidden(r.Context(), p, r.Pattern)
		}
		return err
	}
}

func principal(r *http.Request) claims.Principal { return web.PrincipalFrom(r.Context()) }

func pathID(r *http.Request) claims.ID { return claims.ID(r.PathValue("id")) }

// ifMatch reads the claim version from If-Match ("3" or "\"3\""); 0 = absent.
func ifMatch(r *http.Request) (int64, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" {
		return 0, nil
	}
	v = strings.TrimPrefix(v, "W/")
	n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 64)
	if err != nil || n <= 0 {
		return 0, claims.InvalidField("If-Match", "format", "If-Match must be the claim's ETag, e.g. \"3\".")
	}
	return n, nil
}

func writeClaim(w http.ResponseWriter, status int, c claims.Claim) error {
	w.Header().Set("ETag", `"`+strconv.FormatInt(c.Version, 10)+`"`)
	return web.WriteJSON(w, status, toClaim(c))
}

func (h *Handler) getJWKS(w http.ResponseWriter, r *http.Request) error {
	b, err := h.jwks()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "max-age=300")
	_, err = w.Write(b)
	return err
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request) error {
	var req registerRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	u, err := h.flow.Register(r.Context(), workflow.Registration{Email: req.Email, Password: req.Password, FullName: req.FullName})
	if claims.KindOf(err) == claims.Conflict {
		// Don't reveal that the email has an account: answer as a success
		// would, without a body that differs. (The owner can sign in or
		// reset their password.)
		return web.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "registration received"})
	}
	if err != nil {
		return err
	}
	_ = u
	return web.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "registration received"})
}

func tokens(p workflow.TokenPair) tokenDTO {
	return tokenDTO{AccessToken: p.AccessToken, TokenType: "Bearer", ExpiresIn: int(timeUntil(p)), RefreshToken: p.RefreshToken}
}

func (h *Handler) refresh(w http.ResponseWriter, r *http.Request) error {
	var req refreshRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	pair, err := h.flow.Refresh(r.Context(), req.RefreshToken)
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, tokens(pair))
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) error {
	if err := h.flow.Logout(r.Context(), principal(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	u, err := h.flow.Me(r.Context(), p)
	if err != nil {
		return err
	}
	d := userDTO{ID: string(u.ID), Email: u.Email, Role: string(u.Role)}
	// The effective permissions: role, custom role and live delegations.
	if p.Grants != nil {
		for name := range p.Grants {
			d.Permissions = append(d.Permissions, name)
		}
		slices.Sort(d.Permissions)
	} else {
		for _, perm := range access.Permissions(u.Role) {
			d.Permissions = append(d.Permissions, string(perm))
		}
	}
	return web.WriteJSON(w, http.StatusOK, d)
}

// Meta copies the request's origin (client address, user agent, request
// id) into the context where workflow finds it for audit entries.
func Meta(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := workflow.Meta{IP: web.ClientIP(r.Context()), UserAgent: r.UserAgent(), RequestID: web.RequestID(r.Context())}
		next.ServeHTTP(w, r.WithContext(workflow.WithMeta(r.Context(), m)))
	})
}
