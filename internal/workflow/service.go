// Package workflow holds the product's use cases: each method authorizes
// the principal (package access), applies the domain rule (package claims),
// writes the change and its audit entry in one transaction (package store)
// and publishes an event after commit.
//
// It knows nothing of HTTP: handlers in web/api translate requests into
// calls here, and errors back into problem responses.
package workflow

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"time"

	"github.com/openclaims/claims/internal/auth"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/files"
	"github.com/openclaims/claims/internal/scan"
	"github.com/openclaims/claims/internal/store"
)

// Publisher announces committed changes; package live implements it.
type Publisher interface {
	Publish(ev claims.Event)
}

// SessionPolicy is how long sessions of one role live.
type SessionPolicy struct {
	Idle     time.Duration
	Absolute time.Duration
}

// DefaultSessionPolicies are the documented defaults (README, Sessions).
var DefaultSessionPolicies = map[claims.Role]SessionPolicy{
	claims.RoleSuperAdmin:      {15 * time.Minute, 8 * time.Hour},
	claims.RoleAdmin:           {15 * time.Minute, 8 * time.Hour},
	claims.RoleClaimsProcessor: {15 * time.Minute, 12 * time.Hour},
	claims.RoleAIEngineer:      {15 * time.Minute, 12 * time.Hour},
	claims.RoleCustomer:        {30 * time.Minute, 30 * 24 * time.Hour},
}

// Service runs the use cases.
type Service struct {
	db       *store.DB
	hasher   *auth.Hasher
	tokens   *auth.Tokens
	events   Publisher
	log      *slog.Logger
	now      func() time.Time
	sessions map[claims.Role]SessionPolicy
	identity IdentityPolicy
	docs     documents // claim documents (documents.go)
}

// Config gathers the Service's collaborators.
type Config struct {
	DB       *store.DB
	Hasher   *auth.Hasher
	Tokens   *auth.Tokens
	Events   Publisher // nil = events are dropped
	Log      *slog.Logger
	Now      func() time.Time
	Sessions map[claims.Role]SessionPolicy // nil = DefaultSessionPolicies
	Identity *IdentityPolicy               // nil = DefaultIdentityPolicy
	// Documents stores claim documents; nil = the document routes answer 404.
	Documents *files.Pipeline
	// Scanner scans uploaded documents (clamd, or the development scanner).
	Scanner        scan.Scanner
	DocumentLimits DocumentLimits
}

// New returns a Service.
func New(c Config) *Service {
	s := &Service{db: c.DB, hasher: c.Hasher, tokens: c.Tokens, events: c.Events, log: c.Log, now: c.Now, sessions: c.Sessions}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.sessions == nil {
		s.sessions = DefaultSessionPolicies
	}
	s.identity = DefaultIdentityPolicy
	if c.Identity != nil {
		s.identity = *c.Identity
	}
	s.docs = newDocuments(c)
	return s
}

// DB exposes the store for tools that run outside a request (import,
// migrate, audit verify).
func (s *Service) DB() *store.DB { return s.db }

func (s *Service) publish(ev claims.Event) {
	if s.events != nil {
		s.events.Publish(ev)
	}
}

// Meta is what a request knows about its origin, for the audit log.
type Meta struct {
	IP        string
	UserAgent string
	RequestID string
}

type metaKey struct{}

// WithMeta returns ctx carrying m.
func WithMeta(ctx context.Context, m Meta) context.Context {
	return context.WithValue(ctx, metaKey{}, m)
}

// MetaFrom returns the Meta in ctx (zero if none).
func MetaFrom(ctx context.Context) Meta {
	m, _ := ctx.Value(metaKey{}).(Meta)
	return m
}

// audit appends an audit entry in tx, filling in request metadata and, when
// the actor acts under a delegation, the delegator.
func audit(ctx context.Context, tx *store.Tx, actor claims.ID, action, objType, objID, outcome string, details map[string]string) error {
	m := MetaFrom(ctx)
	via, _ := ctx.Value(viaKey{}).(claims.ID)
	return tx.AppendAudit(ctx, claims.AuditEntry{
		ActorID: actor, OnBehalfOf: via, Action: action, ObjectType: objType, ObjectID: objID, Outcome: outcome,
		IP: m.IP, RequestID: m.RequestID, Details: details,
	})
}

type viaKey struct{}

// withVia marks ctx as acting under a delegation from via ("" = directly).
func withVia(ctx context.Context, via claims.ID) context.Context {
	if via == "" {
		return ctx
	}
	return context.WithValue(ctx, viaKey{}, via)
}

// RequestHash fingerprints a request body for idempotency checks.
func RequestHash(method, path string, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(method + " " + path + "\n"))
	h.Write(body)
	return h.Sum(nil)
}
