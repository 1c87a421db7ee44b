package workflow

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/access"
	auditpkg "github.com/openclaims/claims/internal/audit"
	"github.com/openclaims/claims/internal/auth"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
)

// DelegationRequest hands some of the principal's permissions to another
// user for a while.
type DelegationRequest struct {
	To          claims.ID
	Permissions []string
	ExpiresAt   time.Time
	MaxAmount   int64 // minor units; 0 = any amount
}

// Delegate creates a delegation. One can delegate only what one holds
// directly (not what was itself delegated), never role administration, for
// at most 30 days, to an active account.
func (s *Service) Delegate(ctx context.Context, p claims.Principal, r DelegationRequest) (access.Delegation, error) {
	if p.IsZero() {
		return access.Delegation{}, claims.Errorf(claims.Unauthenticated, "Sign in first.")
	}
	now := s.now()
	var v claims.Validation
	v.Check(claims.ValidID(string(r.To)) && r.To != p.UserID, "to", "user", "to must be another user's id.")
	v.Check(len(r.Permissions) > 0 && len(r.Permissions) <= len(access.Catalogue), "permissions", "required", "Name the permissions to delegate.")
	var perms []access.Permission
	for i, name := range r.Permissions {
		perm := access.Permission(name)
		f := "permissions[" + strconv.Itoa(i) + "]"
		switch {
		case !access.ValidPermission(name):
			v.Add(f, "enum", "%s is not a permission.", f)
		case !access.Delegable(perm):
			v.Add(f, "not_delegable", "%s (%s) administers access and can't be delegated.", f, name)
		default:
			g, ok := p.Grants[name]
			if p.Grants == nil {
				ok = access.Has(p, perm)
			}
			if !ok {
				v.Add(f, "not_held", "You don't hold %s, so you can't delegate it.", name)
			} else if g.Via != "" {
				v.Add(f, "redelegation", "%s was delegated to you; it can't be delegated again.", name)
			} else if !slices.Contains(perms, perm) {
				perms = append(perms, perm)
			}
		}
	}
	switch {
	case !r.ExpiresAt.After(now):
		v.Add("expiresAt", "future", "expiresAt must be in the future.")
	case r.ExpiresAt.Sub(now) > access.MaxDelegation:
		v.Add("expiresAt", "max_duration", "A delegation lasts at most 30 days.")
	}
	v.Check(r.MaxAmount >= 0, "maxAmount", "non_negative", "maxAmount must not be negative.")
	if err := v.Err(); err != nil {
		return access.Delegation{}, err
	}
	d := access.Delegation{ID: claims.NewID(), From: p.UserID, To: r.To, Permissions: perms, MaxAmount: r.MaxAmount,
		CreatedAt: now, ExpiresAt: r.ExpiresAt}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		u, err := tx.User(ctx, r.To)
		if err != nil || u.Status != claims.UserActive {
			return claims.InvalidField("to", "user", "to must be an active user.")
		}
		if err := tx.InsertDelegation(ctx, d); err != nil {
			return err
		}
		return audit(ctx, tx, p.UserID, "delegation.created", "delegation", string(d.ID), "ok", map[string]string{
			"to": string(r.To), "permissions": access.JoinPermissions(perms), "expires": d.ExpiresAt.UTC().Format(time.RFC3339),
			"max_amount": strconv.FormatInt(d.MaxAmount, 10)})
	})
	return d, err
}

// Delegations lists delegations given by or to the principal.
func (s *Service) Delegations(ctx context.Context, p claims.Principal) ([]access.Delegation, error) {
	var out []access.Delegation
	err := s.db.Read(ctx, func(tx *store.Tx) (err error) {
		out, err = tx.Delegations(ctx, p.UserID, false)
		return err
	})
	return out, err
}

// RevokeDelegation ends a delegation at once (either side may).
func (s *Service) RevokeDelegation(ctx context.Context, p claims.Principal, id claims.ID) error {
	if !claims.ValidID(string(id)) {
		return claims.Errorf(claims.NotFound, "Delegation not found.")
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.RevokeDelegation(ctx, id, p.UserID); err != nil {
			return err
		}
		return audit(ctx, tx, p.UserID, "delegation.revoked", "delegation", string(id), "ok", nil)
	})
}

// RoleInfo describes a role for administrators.
type RoleInfo struct {
	Name           string
	Base           claims.Role
	Inherits       []claims.Role
	Permissions    []access.Permission
	AuthorityLimit int64
	Custom         bool
	Version        int64
}

// Roles lists the built-in and custom roles (roles.assign or users.manage).
func (s *Service) Roles(ctx context.Context, p claims.Principal) ([]RoleInfo, error) {
	if !access.Has(p, access.RolesAssign) && !access.Has(p, access.UsersManage) {
		return nil, claims.Errorf(claims.Forbidden, "You do not have permission to list roles.")
	}
	var out []RoleInfo
	for _, r := range claims.Roles {
		out = append(out, RoleInfo{Name: string(r), Base: r, Inherits: access.Inherits(r), Permissions: access.Permissions(r),
			AuthorityLimit: access.DefaultAuthority(r)})
	}
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		list, err := tx.CustomRoles(ctx)
		for _, c := range list {
			perms := access.Permissions(c.Base)
			for _, x := range c.Permissions {
				if !slices.Contains(perms, x) {
					perms = append(perms, x)
				}
			}
			slices.Sort(perms)
			limit := access.DefaultAuthority(c.Base)
			if c.AuthorityLimit != nil {
				limit = *c.AuthorityLimit
			}
			out = append(out, RoleInfo{Name: c.Name, Base: c.Base, Inherits: []claims.Role{c.Base}, Permissions: perms,
				AuthorityLimit: limit, Custom: true, Version: c.Version})
		}
		return err
	})
	return out, err
}

// PutCustomRole creates or redefines a custom role. Only super admins may,
// with a recent MFA check; the base must be below super admin, and the
// added permissions may not include key, backup or settings management
// (those stay with super admins).
func (s *Service) PutCustomRole(ctx context.Context, p claims.Principal, r access.CustomRole) (int64, error) {
	if p.Role != claims.RoleSuperAdmin {
		return 0, claims.Errorf(claims.Forbidden, "Only super admins define roles.")
	}
	if err := s.StepUp(p); err != nil {
		return 0, err
	}
	var v claims.Validation
	v.Check(access.ValidCustomRoleName(r.Name), "name", "format", "name must be 3-40 lower-case letters, digits or underscores, and not a built-in role.")
	v.Check(claims.ValidRole(r.Base) && r.Base != claims.RoleSuperAdmin, "baseRole", "enum", "baseRole must be a built-in role below super_admin.")
	for i, perm := range r.Permissions {
		if !access.ValidPermission(string(perm)) {
			v.Add("permissions["+strconv.Itoa(i)+"]", "enum", "%s is not a permission.", perm)
		} else if perm == access.KeysManage || perm == access.BackupsManage || perm == access.SettingsManage {
			v.Add("permissions["+strconv.Itoa(i)+"]", "reserved", "%s stays with super admins.", perm)
		}
	}
	if r.AuthorityLimit != nil {
		v.Check(*r.AuthorityLimit >= 0 && *r.AuthorityLimit <= claims.MaxClaimMinor, "authorityLimitMinor", "range",
			"authorityLimitMinor must be between 0 and %d.", claims.MaxClaimMinor)
	}
	if err := v.Err(); err != nil {
		return 0, err
	}
	var version int64
	err := s.db.InTx(ctx, func(tx *store.Tx) (err error) {
		if version, err = tx.PutCustomRole(ctx, r); err != nil {
			return err
		}
		limit := ""
		if r.AuthorityLimit != nil {
			limit = strconv.FormatInt(*r.AuthorityLimit, 10)
		}
		return audit(ctx, tx, p.UserID, "role.defined", "role", r.Name, "ok", map[string]string{"base": string(r.Base),
			"permissions": access.JoinPermissions(r.Permissions), "authority_limit": limit, "version": strconv.FormatInt(version, 10)})
	})
	return version, err
}

// SetAuthorityLimit sets a user's monetary authority (nil: the role's).
func (s *Service) SetAuthorityLimit(ctx context.Context, p claims.Principal, target claims.ID, limit *int64) error {
	if err := access.Require(p, access.RolesAssign); err != nil {
		return err
	}
	if err := s.StepUp(p); err != nil {
		return err
	}
	if limit != nil && (*limit < 0 || *limit > claims.MaxClaimMinor) {
		return claims.InvalidField("limitMinor", "range", "limitMinor must be between 0 and %d.", claims.MaxClaimMinor)
	}
	if !claims.ValidID(string(target)) {
		return claims.Errorf(claims.NotFound, "User not found.")
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		u, err := tx.User(ctx, target)
		if err != nil {
			return err
		}
		base, err := baseRole(ctx, tx, u.Role)
		if err != nil {
			return err
		}
		if target == p.UserID || !access.Outranks(p.Role, base) {
			return claims.Errorf(claims.Forbidden, "You can only set the authority of accounts below your own role.")
		}
		if err := tx.SetUserAuthorityLimit(ctx, target, limit); err != nil {
			return err
		}
		val := "role default"
		if limit != nil {
			val = strconv.FormatInt(*limit, 10)
		}
		return audit(ctx, tx, p.UserID, "user.authority_limit_set", "user", string(target), "ok", map[string]string{"limit": val})
	})
}

// Users lists accounts (users.manage): identity and role, never claim data.
func (s *Service) Users(ctx context.Context, p claims.Principal, limit int) ([]claims.User, error) {
	if err := access.Require(p, access.UsersManage); err != nil {
		return nil, err
	}
	var out []claims.User
	err := s.db.Read(ctx, func(tx *store.Tx) (err error) {
		out, err = tx.Users(ctx, limit)
		return err
	})
	return out, err
}

// InviteUser creates an account for a colleague (users.manage; staff roles
// need roles.assign, a role below one's own and a recent MFA check). The
// account gets an unusable random password and a reset link in the outbox,
// so no administrator ever knows anyone's password.
func (s *Service) InviteUser(ctx context.Context, p claims.Principal, email string, role claims.Role) (claims.User, error) {
	if err := access.Require(p, access.UsersManage); err != nil {
		return claims.User{}, err
	}
	email = store.NormalizeEmail(email)
	if !validEmail(email) {
		return claims.User{}, claims.InvalidField("email", "format", "email must be a valid email address.")
	}
	base := role
	err := s.db.Read(ctx, func(tx *store.Tx) (err error) {
		base, err = baseRole(ctx, tx, role)
		return err
	})
	if err != nil {
		return claims.User{}, claims.InvalidField("role", "enum", "role must be a built-in or custom role.")
	}
	if base != claims.RoleCustomer {
		if err := access.Require(p, access.RolesAssign); err != nil {
			return claims.User{}, err
		}
		if !access.Outranks(p.Role, base) {
			return claims.User{}, claims.Errorf(claims.Forbidden, "You can only grant roles below your own.")
		}
		if err := s.StepUp(p); err != nil {
			return claims.User{}, err
		}
	}
	tmp, _ := auth.NewOpaqueToken() // never told to anyone
	u, err := s.createUser(ctx, p.UserID, email, tmp, role, "", base != claims.RoleCustomer)
	if err != nil {
		return claims.User{}, err
	}
	return u, s.RequestPasswordReset(ctx, email)
}

// AccessEntry is one access to a customer's data, as they may see it.
type AccessEntry struct {
	At        time.Time
	ActorRole string
	Action    string
	ClaimID   claims.ID
	Purpose   string
}

// AccessHistory lists who accessed the principal's claims: reads,
// downloads and decisions by staff, newest first.
func (s *Service) AccessHistory(ctx context.Context, p claims.Principal) ([]AccessEntry, error) {
	if p.HolderID == "" {
		return nil, nil
	}
	var out []AccessEntry
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		list, err := tx.Claims(ctx, store.ClaimFilter{HolderID: p.HolderID, Limit: store.MaxPage})
		if err != nil {
			return err
		}
		roles := map[claims.ID]string{}
		for _, c := range list {
			entries, err := tx.AuditEntries(ctx, store.AuditFilter{ObjectType: "claim", ObjectID: string(c.ID), Limit: 1000})
			if err != nil {
				return err
			}
			for _, e := range entries {
				if e.ActorID == p.UserID || e.ActorID == "" {
					continue
				}
				role, ok := roles[e.ActorID]
				if !ok {
					if u, err := tx.User(ctx, e.ActorID); err == nil {
						role = string(u.Role)
					}
					roles[e.ActorID] = role
				}
				out = append(out, AccessEntry{At: e.At, ActorRole: role, Action: e.Action, ClaimID: c.ID, Purpose: purposeOf(e.Action)})
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b AccessEntry) int { return b.At.Compare(a.At) })
	return out, err
}

func purposeOf(action string) string {
	switch {
	case action == "claim.read" || strings.HasPrefix(action, "document."):
		return "claim review"
	case strings.HasPrefix(action, "claim."):
		return "claim handling"
	}
	return ""
}

// TrainingRow is one pseudonymized claim for model work: no names, no
// free text, no addresses, no exact dates; holder and policy are keyed
// pseudonyms that can't be reversed without the server's index key.
type TrainingRow struct {
	Pseudonym       string
	HolderPseudonym string
	ProductLine     claims.ProductLine
	Type            string
	IncidentMonth   string // YYYY-MM
	ReportDelayDays int
	Total           claims.Money
	Payable         claims.Money
	Lines           int
	Categories      []string
	Status          claims.Status
	Flags           []claims.Flag
	Label           string // historical fraud outcome where known: "Y", "N" or ""
}

// TrainingData returns pseudonymized claims (training_data.export). AI
// engineers never receive personal data: the export is built from plain
// amount, status and category columns, never from sealed ones.
func (s *Service) TrainingData(ctx context.Context, p claims.Principal, cursor string, limit int) (Page[TrainingRow], error) {
	var page Page[TrainingRow]
	if err := access.Require(p, access.TrainingExport); err != nil {
		return page, err
	}
	after, err := store.ParseCursor(cursor)
	if err != nil {
		return page, err
	}
	f := store.ClaimFilter{After: after, Limit: limitOf(limit)}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		list, err := tx.ClaimsPlain(ctx, f)
		if err != nil {
			return err
		}
		for _, c := range list {
			row := TrainingRow{Pseudonym: s.pseudonym("claim", c.ID), HolderPseudonym: s.pseudonym("holder", c.HolderID),
				ProductLine: claims.ProductLine(c.Attributes["product_line"]), Type: c.Type,
				IncidentMonth: c.IncidentDate.String()[:7], Total: c.Total, Payable: c.Payable, Lines: len(c.Lines),
				Status: c.Status, Flags: c.Flags, Label: c.Attributes["fraud_reported"]}
			if row.Label == "" && c.Attributes["fraud_found"] != "" {
				row.Label = map[string]string{"1": "Y", "0": "N"}[c.Attributes["fraud_found"]]
			}
			if !c.ReportedDate.IsZero() {
				row.ReportDelayDays = c.IncidentDate.DaysUntil(c.ReportedDate)
			}
			for _, l := range c.Lines {
				row.Categories = append(row.Categories, l.Category)
			}
			page.Items = append(page.Items, row)
		}
		if len(list) == f.Limit {
			last := list[len(list)-1]
			page.NextCursor = store.CursorOf(last.ID, last.CreatedAt.UnixMicro()).String()
		}
		return audit(ctx, tx, p.UserID, "training_data.exported", "export", "claims", "ok", map[string]string{"rows": strconv.Itoa(len(list))})
	})
	return page, err
}

// pseudonym is a keyed, stable, irreversible identifier for model work.
func (s *Service) pseudonym(kind string, id claims.ID) string {
	m := hmac.New(sha256.New, s.db.PseudonymKey())
	m.Write([]byte(kind + ":" + string(id)))
	return hex.EncodeToString(m.Sum(nil))[:24]
}

// Checkpoint signs the audit chain's current length and head (run on a
// schedule by the server and by `claims audit checkpoint`).
func (s *Service) Checkpoint(ctx context.Context, key ed25519.PrivateKey, keyID string) (store.Checkpoint, error) {
	var c store.Checkpoint
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		seq, head, err := tx.AuditHead(ctx)
		if err != nil || seq == 0 {
			return err
		}
		c = store.Checkpoint{Seq: seq, HeadHash: head, At: tx.Now(), KeyID: keyID}
		c.Signature = auditpkg.SignCheckpoint(key, seq, head, c.At)
		return tx.InsertCheckpoint(ctx, c)
	})
	return c, err
}

// MarkEmailVerified records, on an administrator's or operator's word, that
// an account owns its email (users.manage).
func (s *Service) MarkEmailVerified(ctx context.Context, p claims.Principal, target claims.ID) error {
	if err := access.Require(p, access.UsersManage); err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.User(ctx, target); err != nil {
			return err
		}
		if err := tx.SetEmailVerified(ctx, target); err != nil {
			return err
		}
		return audit(ctx, tx, p.UserID, "user.email_verified", "user", string(target), "ok", map[string]string{"by": "administrator"})
	})
}

// RecordForbidden audits a refused request (ASVS V16.3.2): who, which
// route, from where. The route pattern, not the URL, so no query data.
func (s *Service) RecordForbidden(ctx context.Context, p claims.Principal, route string) {
	if err := s.db.InTx(ctx, func(tx *store.Tx) error {
		return audit(ctx, tx, p.UserID, "access.denied", "route", route, "denied", nil)
	}); err != nil {
		s.log.ErrorContext(ctx, "audit refused request", "err", err)
	}
}
