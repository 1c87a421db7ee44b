package access

import (
	"slices"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/claims"
)

// Catalogue lists every permission, for validation and documentation.
var Catalogue = []Permission{ClaimsCreate, ClaimsReadOwn, ClaimsReadAssigned, ClaimsReadAny, ClaimsAssign, ClaimsReview,
	ClaimsDecide, ClaimsPay, ClaimsImport, DocumentsRead, PoliciesReadOwn, PoliciesReadAny, PoliciesManage, ModelsTrain,
	ModelsPromote, TrainingExport, UsersManage, RolesAssign, SessionsRevoke, AuditRead, SecurityEventsRead, KeysManage,
	BackupsManage, SettingsManage}

// ValidPermission reports whether name is in the catalogue.
func ValidPermission(name string) bool { return slices.Contains(Catalogue, Permission(name)) }

// notDelegable are the permissions that administer access or keys: handing
// them on would let a delegate grant further access, so they stay with
// their holder.
var notDelegable = []Permission{RolesAssign, UsersManage, KeysManage, BackupsManage, SettingsManage}

// Delegable reports whether perm may be delegated at all.
func Delegable(perm Permission) bool { return !slices.Contains(notDelegable, perm) }

// defaultAuthority is the monetary authority of each role, in minor units:
// the largest payable amount a holder may decide or pay alone.
var defaultAuthority = map[claims.Role]int64{
	claims.RoleClaimsProcessor: 500_000, // 5,000.00
}

// DefaultAuthority returns role r's authority limit.
func DefaultAuthority(r claims.Role) int64 { return defaultAuthority[r] }

// CustomRole is a role a super admin defines: a built-in base role plus
// permissions, optionally with its own authority limit.
type CustomRole struct {
	Name           string
	Base           claims.Role
	Permissions    []Permission
	AuthorityLimit *int64
	Version        int64
}

// ValidCustomRoleName: lower-case words with underscores, not a built-in.
func ValidCustomRoleName(s string) bool {
	if len(s) < 3 || len(s) > 40 || claims.ValidRole(claims.Role(s)) {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '_' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Delegation hands a subset of one user's permissions to another for a
// bounded time.
type Delegation struct {
	ID          claims.ID
	From        claims.ID
	To          claims.ID
	Permissions []Permission
	MaxAmount   int64 // scope: claims with a total up to this (minor units); 0 = any
	CreatedAt   time.Time
	ExpiresAt   time.Time
	Revoked     bool
}

// MaxDelegation is the longest a delegation may last.
const MaxDelegation = 30 * 24 * time.Hour

// Live reports whether d is in force at now.
func (d Delegation) Live(now time.Time) bool { return !d.Revoked && now.Before(d.ExpiresAt) }

// Resolve computes a principal's effective permissions: the base role's,
// a custom role's additions, and what live delegations hand over. A
// permission held directly wins over a delegated one (no Via recorded).
func Resolve(base claims.Role, custom *CustomRole, delegations []Delegation, now time.Time) map[string]claims.Grant {
	out := map[string]claims.Grant{}
	for _, d := range delegations {
		if !d.Live(now) {
			continue
		}
		for _, p := range d.Permissions {
			if Delegable(p) {
				out[string(p)] = claims.Grant{Via: d.From, MaxAmount: d.MaxAmount}
			}
		}
	}
	for _, p := range Permissions(base) {
		out[string(p)] = claims.Grant{}
	}
	if custom != nil {
		for _, p := range custom.Permissions {
			out[string(p)] = claims.Grant{}
		}
	}
	return out
}

// ParsePermissions splits a comma-separated list, dropping unknown names.
func ParsePermissions(s string) []Permission {
	var out []Permission
	for _, x := range strings.Split(s, ",") {
		if ValidPermission(x) {
			out = append(out, Permission(x))
		}
	}
	return out
}

// JoinPermissions is the stored form of a list.
func JoinPermissions(ps []Permission) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ",")
}
