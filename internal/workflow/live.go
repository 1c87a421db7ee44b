package workflow

import (
	"context"
	"maps"

	"github.com/openclaims/claims/internal/access"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
)

// What the live channel (web/api/ws.go, docs/live.md) asks of the
// workflow: whether a socket's session still holds, whether its principal
// may follow a claim, and whether an event may reach it. None of it reads
// personal data.

// CheckSession is Authenticate without recording activity: it verifies the
// token and the server-side session (revoked, expired, idle, account
// disabled) and resolves the principal's current permissions. An open
// socket re-checks its session with it every few seconds; since a socket
// is not the user doing anything, it must not keep the session from
// timing out.
func (s *Service) CheckSession(ctx context.Context, token string) (claims.Principal, error) {
	c, err := s.tokens.Verify(token)
	if err != nil {
		return claims.Principal{}, claims.Wrap(claims.Unauthenticated, err, "The access token is not valid.")
	}
	var p claims.Principal
	err = s.db.Read(ctx, func(tx *store.Tx) error {
		sess, err := tx.Session(ctx, claims.ID(c.SessionID))
		if err != nil {
			return claims.Wrap(claims.Unauthenticated, err, "The session has ended; sign in again.")
		}
		now := tx.Now()
		if sess.Revoked || now.After(sess.ExpiresAt) || string(sess.UserID) != c.Subject {
			return claims.Errorf(claims.Unauthenticated, "The session has ended; sign in again.")
		}
		u, err := tx.User(ctx, sess.UserID)
		if err != nil {
			return claims.Wrap(claims.Unauthenticated, err, "The session has ended; sign in again.")
		}
		if u.Status != claims.UserActive {
			return claims.Errorf(claims.Unauthenticated, "The account is disabled.")
		}
		p = claims.Principal{UserID: u.ID, Role: u.Role, RoleName: string(u.Role), HolderID: u.HolderID,
			SessionID: sess.ID, MFAEnrolled: u.MFAEnabled, MFAAt: sess.MFAAt}
		if err := resolveGrants(ctx, tx, &p, now); err != nil {
			return err
		}
		if now.Sub(sess.LastSeen) > s.sessions[p.Role].Idle {
			return claims.Errorf(claims.Unauthenticated, "The session timed out; sign in again.")
		}
		return nil
	})
	return p, err
}

// SamePermissions reports whether b may do exactly what a may: same user,
// role, policyholder and effective grants. A socket whose principal no
// longer matches the one it was opened with is closed.
func SamePermissions(a, b claims.Principal) bool {
	return a.UserID == b.UserID && a.Role == b.Role && a.RoleName == b.RoleName && a.HolderID == b.HolderID &&
		a.AuthorityLimit == b.AuthorityLimit && maps.Equal(a.Grants, b.Grants)
}

// readableRef loads claim id's reference fields for p, answering a claim p
// may not read exactly as a missing one.
func readableRef(ctx context.Context, tx *store.Tx, p claims.Principal, id claims.ID) (store.ClaimRef, error) {
	if !claims.ValidID(string(id)) {
		return store.ClaimRef{}, errClaimNotFound
	}
	ref, err := tx.ClaimRef(ctx, id)
	if claims.KindOf(err) == claims.NotFound {
		return ref, errClaimNotFound
	}
	if err != nil {
		return ref, err
	}
	if !access.CanReadClaim(p, ref.Claim()) {
		return ref, errClaimNotFound
	}
	return ref, nil
}

// FollowClaim checks that p may follow claim id live: the same rule as
// reading it, and the same "Claim not found." for a foreign claim as for a
// missing one. Nothing personal is read, so nothing is audited; the events
// that follow carry ids, status and time only.
func (s *Service) FollowClaim(ctx context.Context, p claims.Principal, id claims.ID) (claims.Status, error) {
	if p.IsZero() {
		return "", claims.Errorf(claims.Unauthenticated, "Sign in first.")
	}
	var ref store.ClaimRef
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		var err error
		ref, err = readableRef(ctx, tx, p, id)
		return err
	})
	return ref.Status, err
}

// Live scopes a socket may subscribe to besides single claims.
const (
	ScopeOwn   = "own"   // the customer's own claims
	ScopeQueue = "queue" // a processor's intake queue and assigned claims
)

// CanFollowScope says whether p may subscribe to scope, and if not, why.
func CanFollowScope(p claims.Principal, scope string) error {
	switch scope {
	case ScopeOwn:
		if !access.Has(p, access.ClaimsReadOwn) || p.HolderID == "" {
			return claims.Errorf(claims.Forbidden, "This account has no claims of its own to follow.")
		}
	case ScopeQueue:
		if !access.Has(p, access.ClaimsReadAssigned) && !access.Has(p, access.ClaimsReadAny) {
			return claims.Errorf(claims.Forbidden, "You do not have permission to follow the claims queue (%s).", access.ClaimsReadAssigned)
		}
	default:
		return claims.InvalidField("scope", "enum", "scope must be own or queue.")
	}
	return nil
}

// EventVisible reports whether event ev may be delivered to p, decided by
// the claim access rule on the event's holder and assignee alone (no
// database read, no personal data).
func EventVisible(p claims.Principal, ev claims.Event) bool {
	return access.CanReadClaim(p, claims.Claim{ID: ev.ClaimID, HolderID: ev.HolderID, AssigneeID: ev.AssigneeID, Status: ev.Status})
}

// InScope reports whether ev belongs to scope for p (who may follow it).
func InScope(p claims.Principal, scope string, ev claims.Event) bool {
	switch scope {
	case ScopeOwn:
		return p.HolderID != "" && ev.HolderID == p.HolderID
	case ScopeQueue:
		if access.Has(p, access.ClaimsReadAny) {
			return true
		}
		return access.Has(p, access.ClaimsReadAssigned) && (ev.AssigneeID == p.UserID || ev.AssigneeID == "")
	}
	return false
}

// eventType names the event a change() publishes: a request for
// information and an assignment without a status change have their own
// types, every other change is a status change.
func eventType(action string, moved bool) string {
	switch {
	case action == "claim.info_requested":
		return "claim.info_requested"
	case action == "claim.assigned" && !moved:
		return "claim.assigned"
	}
	return "claim.status_changed"
}
