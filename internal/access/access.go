// Package access decides who may do what: the catalogue of permissions, the
// role hierarchy with inheritance, and the object-level rules for claims and
// policies. It is deny by default: a permission not granted is refused.
//
// It holds no state and does no I/O; workflow asks it before every action.
package access

import (
	"slices"

	"github.com/openclaims/claims/internal/claims"
)

// Permission is one thing a principal may do.
type Permission string

// The catalogue. Names say what they allow.
const (
	ClaimsCreate       Permission = "claims.create"
	ClaimsReadOwn      Permission = "claims.read.own"
	ClaimsReadAssigned Permission = "claims.read.assigned" // assigned to me, or waiting in the intake queue
	ClaimsReadAny      Permission = "claims.read.any"
	ClaimsAssign       Permission = "claims.assign"
	ClaimsReview       Permission = "claims.review" // request information, move through review
	ClaimsDecide       Permission = "claims.decide"
	ClaimsPay          Permission = "claims.pay"
	ClaimsImport       Permission = "claims.import"
	DocumentsRead      Permission = "documents.read"
	PoliciesReadOwn    Permission = "policies.read.own"
	PoliciesReadAny    Permission = "policies.read.any"
	PoliciesManage     Permission = "policies.manage"
	ModelsTrain        Permission = "models.train"
	ModelsPromote      Permission = "models.promote"
	TrainingExport     Permission = "training_data.export"
	UsersManage        Permission = "users.manage"
	RolesAssign        Permission = "roles.assign"
	SessionsRevoke     Permission = "sessions.revoke"
	AuditRead          Permission = "audit.read"
	SecurityEventsRead Permission = "security_events.read"
	KeysManage         Permission = "keys.manage"
	BackupsManage      Permission = "backups.manage"
	SettingsManage     Permission = "settings.manage"
)

// role is one node of the hierarchy: its own permissions and the roles it
// inherits from.
type role struct {
	own      []Permission
	inherits []claims.Role
}

// roles is the whole hierarchy, in one place (the README's table is checked
// against it by a test):
//
//	super_admin > admin > (claims_processor, ai_engineer) > customer
//
// Admins manage people and configuration but inherit neither claim
// adjudication nor claim contents: a user administrator has no business
// reading medical records, and separating the two keeps one compromised
// admin account from both granting and using access. So admin inherits only
// customer (self-service), not the staff roles; super_admin inherits admin.
var roles = map[claims.Role]role{
	claims.RoleCustomer: {own: []Permission{ClaimsCreate, ClaimsReadOwn, PoliciesReadOwn}},
	claims.RoleClaimsProcessor: {
		own:      []Permission{ClaimsReadAssigned, ClaimsAssign, ClaimsReview, ClaimsDecide, ClaimsPay, DocumentsRead, PoliciesReadAny},
		inherits: []claims.Role{claims.RoleCustomer},
	},
	claims.RoleAIEngineer: {
		own:      []Permission{ModelsTrain, ModelsPromote, TrainingExport},
		inherits: []claims.Role{claims.RoleCustomer},
	},
	claims.RoleAdmin: {
		own: []Permission{UsersManage, RolesAssign, SessionsRevoke, AuditRead, SecurityEventsRead,
			PoliciesManage, PoliciesReadAny, ClaimsImport},
		inherits: []claims.Role{claims.RoleCustomer},
	},
	claims.RoleSuperAdmin: {
		own:      []Permission{KeysManage, BackupsManage, SettingsManage},
		inherits: []claims.Role{claims.RoleAdmin},
	},
}

// Permissions returns every permission role r holds, its own and inherited,
// sorted.
func Permissions(r claims.Role) []Permission {
	seen := map[Permission]bool{}
	var walk func(claims.Role)
	walk = func(r claims.Role) {
		for _, p := range roles[r].own {
			seen[p] = true
		}
		for _, parent := range roles[r].inherits {
			walk(parent)
		}
	}
	walk(r)
	out := make([]Permission, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Inherits returns the roles r inherits from directly.
func Inherits(r claims.Role) []claims.Role { return slices.Clone(roles[r].inherits) }

// Has reports whether principal p holds permission perm.
func Has(p claims.Principal, perm Permission) bool {
	_, ok := grant(p, perm)
	return ok
}

func grant(p claims.Principal, perm Permission) (claims.Grant, bool) {
	if p.IsZero() {
		return claims.Grant{}, false
	}
	if p.Grants != nil {
		g, ok := p.Grants[string(perm)]
		return g, ok
	}
	return claims.Grant{}, slices.Contains(Permissions(p.Role), perm)
}

// Require returns a Forbidden error unless p holds perm.
func Require(p claims.Principal, perm Permission) error {
	_, err := Check(p, perm)
	return err
}

// Check is Require that also says how p holds perm: directly, or through a
// delegation (Grant.Via is the delegator, whom the audit log records too).
func Check(p claims.Principal, perm Permission) (claims.Grant, error) {
	if p.IsZero() {
		return claims.Grant{}, claims.Errorf(claims.Unauthenticated, "Sign in first.")
	}
	g, ok := grant(p, perm)
	if !ok {
		return g, claims.Errorf(claims.Forbidden, "You do not have permission to do this (%s).", perm)
	}
	return g, nil
}

// CanReadClaim reports whether p may see claim c. A claim p may not see is
// answered exactly as a missing one (404), so ids can't be probed.
func CanReadClaim(p claims.Principal, c claims.Claim) bool {
	if Has(p, ClaimsReadOwn) && p.HolderID != "" && c.HolderID == p.HolderID {
		return true
	}
	// A draft is the policyholder's until they submit it: no staff see it.
	if c.Status == claims.StatusDraft {
		return false
	}
	switch {
	case within(p, ClaimsReadAny, c):
		return true
	case within(p, ClaimsReadAssigned, c) && (c.AssigneeID == p.UserID || c.AssigneeID == ""):
		return true
	}
	return false
}

// within reports whether p holds perm for claim c: held directly, or
// through a delegation whose amount scope covers the claim's total.
func within(p claims.Principal, perm Permission, c claims.Claim) bool {
	g, ok := grant(p, perm)
	return ok && (g.MaxAmount == 0 || c.Total.Minor <= g.MaxAmount)
}

// ReadVia returns the delegator whose delegation lets p read c, for the
// audit log's on-behalf-of: "" when what p holds directly suffices.
func ReadVia(p claims.Principal, c claims.Claim) claims.ID {
	if p.Grants == nil {
		return ""
	}
	direct := claims.Principal{UserID: p.UserID, Role: p.Role, HolderID: p.HolderID, Grants: map[string]claims.Grant{}}
	for name, g := range p.Grants {
		if g.Via == "" {
			direct.Grants[name] = g
		}
	}
	if CanReadClaim(direct, c) {
		return ""
	}
	for _, perm := range []Permission{ClaimsReadAny, ClaimsReadAssigned, ClaimsReadOwn} {
		if g, ok := p.Grants[string(perm)]; ok && g.Via != "" {
			return g.Via
		}
	}
	return ""
}

// CanReadPolicy reports whether p may see policy pol.
func CanReadPolicy(p claims.Principal, pol claims.Policy) bool {
	return Has(p, PoliciesReadAny) || (Has(p, PoliciesReadOwn) && p.HolderID != "" && pol.HolderID == p.HolderID)
}

// IsOwnClaim reports whether c concerns p's own policies: separation of
// duties forbids deciding or paying it.
func IsOwnClaim(p claims.Principal, c claims.Claim) bool {
	return (p.HolderID != "" && c.HolderID == p.HolderID) || c.FiledBy == p.UserID
}

// rank orders the built-in roles for escalation guards.
var rank = map[claims.Role]int{
	claims.RoleCustomer: 0, claims.RoleClaimsProcessor: 1, claims.RoleAIEngineer: 1,
	claims.RoleAdmin: 2, claims.RoleSuperAdmin: 3,
}

// Outranks reports whether a may administer an account of role b: only a
// role strictly above it, except that a super admin may administer anyone.
func Outranks(a, b claims.Role) bool {
	if a == claims.RoleSuperAdmin {
		return true
	}
	return rank[a] > rank[b]
}
