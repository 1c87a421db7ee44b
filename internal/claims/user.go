package claims

import "time"

// Role is a built-in role. Access rules (what each role may do) live in
// package access; the domain only names them.
type Role string

// The five built-in roles, from most to least powerful.
const (
	RoleSuperAdmin      Role = "super_admin"
	RoleAdmin           Role = "admin"
	RoleAIEngineer      Role = "ai_engineer"
	RoleClaimsProcessor Role = "claims_processor"
	RoleCustomer        Role = "customer"
)

// Roles lists the built-in roles.
var Roles = []Role{RoleSuperAdmin, RoleAdmin, RoleAIEngineer, RoleClaimsProcessor, RoleCustomer}

// ValidRole reports whether r is a built-in role.
func ValidRole(r Role) bool {
	for _, x := range Roles {
		if x == r {
			return true
		}
	}
	return false
}

// UserStatus says whether an account may sign in.
type UserStatus string

const (
	UserActive   UserStatus = "active"
	UserDisabled UserStatus = "disabled"
)

// User is an account that can sign in. A customer's personal details live on
// their Policyholder record; a User holds only what sign-in needs.
type User struct {
	ID           ID
	Email        string // stored sealed, found through a blind index
	Role         Role
	Status       UserStatus
	PasswordHash string
	// HolderID links a customer account to the policyholder it is; empty
	// for staff and for customers who hold no policy yet.
	HolderID   ID
	MFAEnabled bool
	// EmailVerified: the account proved it receives mail at Email (a
	// mailed code, or an operator/administrator created it).
	EmailVerified bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Principal is who is acting: the signed-in user as the access layer sees
// them on one request.
type Principal struct {
	UserID    ID
	Role      Role
	HolderID  ID // customers only
	SessionID ID
	// MFAEnrolled says the account has a second factor; MFAAt is when this
	// session last proved it (zero: never), for step-up checks.
	MFAEnrolled bool
	MFAAt       time.Time
	// RoleName is the assigned role as named (a custom role's name); Role is
	// always the built-in role it rests on, which decides rank and MFA.
	RoleName string
	// Grants are the effective permissions by name, resolved at sign-in
	// check from the role, a custom role and live delegations. Nil means
	// "the built-in role's permissions" (principals built in tests).
	Grants map[string]Grant
	// AuthorityLimit is the largest payable amount, in minor units, the
	// principal may decide or pay alone; 0 means none.
	AuthorityLimit int64
}

// Grant is how a principal holds one permission: directly (Via empty) or
// through another user's delegation, optionally limited to claims up to
// MaxAmount minor units.
type Grant struct {
	Via       ID
	MaxAmount int64 // 0 = no limit
}

// RequiresMFA reports whether role r must use a second factor.
func RequiresMFA(r Role) bool { return r == RoleSuperAdmin || r == RoleAdmin }

// MustEnrollMFA reports whether p may do nothing but enrol a second factor.
func (p Principal) MustEnrollMFA() bool { return RequiresMFA(p.Role) && !p.MFAEnrolled }

// IsZero reports whether p is the anonymous principal.
func (p Principal) IsZero() bool { return p.UserID == "" }
