package workflow

import (
	"context"

	"errors"
	"fmt"
	"github.com/openclaims/claims/internal/access"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/auth"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
)

// Session tokens returned on sign-in and refresh.
type TokenPair struct {
	AccessToken  string
	ExpiresAt    time.Time
	RefreshToken string
	SessionID    claims.ID
}

var errBadLogin = claims.Errorf(claims.Unauthenticated, "Email or password is incorrect.")

// Registration is a customer's self-registration.
type Registration struct {
	Email    string
	Password string
	FullName string
}

// Register creates a customer account. If a policyholder with this email
// exists (imported or created by an admin) and has no account yet, the
// account is linked to it. Whether the email was taken is not revealed to
// the caller beyond a Conflict on the account itself.
func (s *Service) Register(ctx context.Context, r Registration) (claims.User, error) {
	var v claims.Validation
	email := store.NormalizeEmail(r.Email)
	v.Check(validEmail(email), "email", "format", "email must be a valid email address.")
	if err := auth.CheckPassword(r.Password, email); err != nil {
		var pe *auth.PolicyError
		if errors.As(err, &pe) {
			v.Add("password", pe.Rule, "%s", pe.Message)
		} else {
			return claims.User{}, err
		}
	}
	claims.ValidateText(&v, "fullName", r.FullName, claims.MaxShortTextRunes, false)
	if err := v.Err(); err != nil {
		return claims.User{}, err
	}
	return s.createUser(ctx, "", email, r.Password, claims.RoleCustomer, r.FullName, false)
}

// CreateUser creates an account of any role. It is for the command line
// (bootstrapping the first super admin) and for admins.
func (s *Service) CreateUser(ctx context.Context, actor claims.ID, email, password string, role claims.Role) (claims.User, error) {
	var v claims.Validation
	email = store.NormalizeEmail(email)
	v.Check(validEmail(email), "email", "format", "email must be a valid email address.")
	v.Check(claims.ValidRole(role), "role", "enum", "role must be one of the built-in roles.")
	if err := auth.CheckPassword(password, email); err != nil {
		var pe *auth.PolicyError
		if errors.As(err, &pe) {
			v.Add("password", pe.Rule, "%s", pe.Message)
		} else {
			return claims.User{}, err
		}
	}
	if err := v.Err(); err != nil {
		return claims.User{}, err
	}
	return s.createUser(ctx, actor, email, password, role, "", true)
}

// createUser creates an account. verified says someone vouches for the
// email (an operator or administrator); a self-registered customer gets a
// code mailed instead and proves it with VerifyEmail.
func (s *Service) createUser(ctx context.Context, actor claims.ID, email, password string, role claims.Role, name string, verified bool) (claims.User, error) {
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return claims.User{}, fmt.Errorf("hash password: %w", err)
	}
	u := claims.User{ID: claims.NewID(), Email: email, Role: role, Status: claims.UserActive, PasswordHash: hash, EmailVerified: verified}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.InsertUser(ctx, u); err != nil {
			return err
		}
		if role == claims.RoleCustomer {
			// Every customer is a data subject with a holder record of their
			// own from the start, so their personal data has its own key.
			h := claims.Policyholder{ID: claims.NewID(), UserID: u.ID, FullName: claims.Secret(name)}
			if err := tx.InsertHolder(ctx, h, "", ""); err != nil {
				return err
			}
			u.HolderID = h.ID
			if err := tx.LinkHolderUser(ctx, h.ID, u.ID); err != nil {
				return err
			}
			if !verified {
				token, hash := auth.NewOpaqueToken()
				if err := tx.InsertEmailVerification(ctx, hash, u.ID, tx.Now().Add(7*24*time.Hour)); err != nil {
					return err
				}
				body := "Confirm the email address of your claims account: POST /api/v1/auth/verify-email with this code\n" +
					"within 7 days: " + token + "\nUntil then no policy can be attached to the account by email.\n"
				if err := tx.InsertMail(ctx, store.Mail{ID: claims.NewID(), Kind: "verify_email", To: email, Body: body}); err != nil {
					return err
				}
			}
			// Policies an admin or an import recorded under this email are
			// NOT linked on say-so: whoever registers first would get them.
			// A single-use code goes to the address instead; only its owner
			// can link them (ConfirmEmailLink).
			ids, err := tx.UnlinkedHoldersByEmail(ctx, email)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if err := s.mailLinkCode(ctx, tx, u.ID, id, email); err != nil {
					return err
				}
			}
		}
		if actor == "" {
			actor = u.ID
		}
		return audit(ctx, tx, actor, "user.created", "user", string(u.ID), "ok", map[string]string{"role": string(role)})
	})
	if err != nil {
		return claims.User{}, err
	}
	return u, nil
}

func validEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && strings.Contains(domain, ".") && len(s) <= 254 &&
		!strings.ContainsAny(s, " \t\r\n<>\"'") && !strings.Contains(domain, "@")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Refresh exchanges a refresh token for a new pair. Each refresh token works
// once; presenting a used one again means it was stolen (or the client is
// broken), so the whole family is revoked.
func (s *Service) Refresh(ctx context.Context, token string) (TokenPair, error) {
	if token == "" || len(token) > 200 {
		return TokenPair{}, claims.Errorf(claims.Unauthenticated, "The refresh token is not valid.")
	}
	var (
		u     claims.User
		reuse bool
		pair  TokenPair
		next  string
	)
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		t, err := tx.UseRefreshToken(ctx, auth.HashOpaque(token))
		if err != nil {
			return err
		}
		sess, err := tx.Session(ctx, t.SessionID)
		if err != nil {
			return err
		}
		if t.Used {
			reuse = true
			if err := tx.RevokeFamily(ctx, t.Family, "refresh token reuse"); err != nil {
				return err
			}
			return audit(ctx, tx, sess.UserID, "auth.refresh_reuse", "session", string(sess.ID), "denied", nil)
		}
		now := tx.Now()
		if sess.Revoked || now.After(sess.ExpiresAt) || now.After(t.ExpiresAt) {
			return claims.Errorf(claims.Unauthenticated, "The session has ended; sign in again.")
		}
		if u, err = tx.User(ctx, sess.UserID); err != nil {
			return err
		}
		if u.Status != claims.UserActive {
			return claims.Errorf(claims.Unauthenticated, "The session has ended; sign in again.")
		}
		base, err := baseRole(ctx, tx, u.Role)
		if err != nil {
			return err
		}
		if now.Sub(sess.LastSeen) > s.sessions[base].Idle {
			return claims.Errorf(claims.Unauthenticated, "The session timed out; sign in again.")
		}
		var hash []byte
		next, hash = auth.NewOpaqueToken()
		if err := tx.InsertRefreshToken(ctx, store.RefreshToken{Hash: hash, SessionID: sess.ID, Family: t.Family,
			Generation: t.Generation + 1, ExpiresAt: sess.ExpiresAt}); err != nil {
			return err
		}
		pair.SessionID = sess.ID
		return tx.TouchSession(ctx, sess.ID, now)
	})
	if err != nil {
		return TokenPair{}, err
	}
	if reuse {
		return TokenPair{}, claims.Errorf(claims.Unauthenticated, "The refresh token was already used; every session of this sign-in has been ended.")
	}
	access, c, err := s.tokens.Issue(string(u.ID), string(pair.SessionID))
	if err != nil {
		return TokenPair{}, err
	}
	pair.AccessToken, pair.ExpiresAt, pair.RefreshToken = access, c.ExpiresAt, next
	return pair, nil
}

// Logout ends the principal's session.
func (s *Service) Logout(ctx context.Context, p claims.Principal) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.RevokeSession(ctx, p.SessionID, "logout"); err != nil {
			return err
		}
		return audit(ctx, tx, p.UserID, "auth.logout", "session", string(p.SessionID), "ok", nil)
	})
}

// Authenticate turns an access token into a principal. Beyond the token's
// signature and expiry it checks the server-side session on every request,
// so a revoked session or disabled account stops working at once.
func (s *Service) Authenticate(ctx context.Context, token string) (claims.Principal, error) {
	c, err := s.tokens.Verify(token)
	if err != nil {
		return claims.Principal{}, claims.Wrap(claims.Unauthenticated, err, "The access token is not valid.")
	}
	var (
		p     claims.Principal
		touch bool
	)
	err = s.db.Read(ctx, func(tx *store.Tx) error {
		sess, err := tx.Session(ctx, claims.ID(c.SessionID))
		if err != nil {
			return err
		}
		now := tx.Now()
		if sess.Revoked && sess.RevokeReason != "" {
			return claims.Errorf(claims.Unauthenticated, "The session has ended (%s); sign in again.", sess.RevokeReason)
		}
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
		// The idle clock runs from the last recorded activity; activity is
		// recorded at most every 30 s so reads don't all become writes.
		p = claims.Principal{UserID: u.ID, Role: u.Role, RoleName: string(u.Role), HolderID: u.HolderID,
			SessionID: sess.ID, MFAEnrolled: u.MFAEnabled, MFAAt: sess.MFAAt}
		if err := resolveGrants(ctx, tx, &p, now); err != nil {
			return err
		}
		if now.Sub(sess.LastSeen) > s.sessions[p.Role].Idle {
			return claims.Errorf(claims.Unauthenticated, "The session timed out; sign in again.")
		}
		touch = now.Sub(sess.LastSeen) > 30*time.Second
		return nil
	})
	if err != nil || !touch {
		return p, err
	}
	return p, s.db.InTx(ctx, func(tx *store.Tx) error { return tx.TouchSession(ctx, p.SessionID, tx.Now()) })
}

// resolveGrants fills in the principal's effective permissions and
// authority: a custom role rests on a built-in one (which decides rank and
// MFA) and adds permissions; live delegations add what they hand over. It
// runs on every request, so role, permission and delegation changes take
// effect on the next one.
func resolveGrants(ctx context.Context, tx *store.Tx, p *claims.Principal, now time.Time) error {
	var custom *access.CustomRole
	if !claims.ValidRole(p.Role) {
		r, err := tx.CustomRole(ctx, string(p.Role))
		if err != nil {
			return fmt.Errorf("resolve role %q: %w", p.Role, err)
		}
		custom, p.Role = &r, r.Base
	}
	delegations, err := tx.Delegations(ctx, p.UserID, true)
	if err != nil {
		return err
	}
	var received []access.Delegation
	for _, d := range delegations {
		if d.To == p.UserID {
			received = append(received, d)
		}
	}
	p.Grants = access.Resolve(p.Role, custom, received, now)
	p.AuthorityLimit = access.DefaultAuthority(p.Role)
	if custom != nil && custom.AuthorityLimit != nil {
		p.AuthorityLimit = *custom.AuthorityLimit
	}
	limit, err := tx.UserAuthorityLimit(ctx, p.UserID)
	if err != nil {
		return err
	}
	if limit != nil {
		p.AuthorityLimit = *limit
	}
	// Authority received by delegation: the delegator's limit, if higher,
	// applies within the delegation's scope (checked where it is used).
	return nil
}

// baseRole returns the built-in role r rests on (r itself, or a custom
// role's base).
func baseRole(ctx context.Context, tx *store.Tx, r claims.Role) (claims.Role, error) {
	if claims.ValidRole(r) {
		return r, nil
	}
	c, err := tx.CustomRole(ctx, string(r))
	if err != nil {
		return "", fmt.Errorf("resolve role %q: %w", r, err)
	}
	return c.Base, nil
}

// ConfirmEmailLink links the principal's account to the policyholder record
// a mailed code names: proof that they own the email it was recorded under.
func (s *Service) ConfirmEmailLink(ctx context.Context, p claims.Principal, token string) error {
	if p.IsZero() {
		return claims.Errorf(claims.Unauthenticated, "Sign in first.")
	}
	if token == "" || len(token) > 200 {
		return claims.InvalidField("token", "valid", "The link code is invalid or has expired.")
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		holder, err := tx.UseEmailLink(ctx, auth.HashOpaque(token), p.UserID)
		if err != nil {
			return err
		}
		if err := tx.MoveUserToHolder(ctx, p.UserID, holder); err != nil {
			return err
		}
		return audit(ctx, tx, p.UserID, "user.policyholder_linked", "policyholder", string(holder), "ok", nil)
	})
}

// VerifyEmail marks the account whose mailed code this is as owning its
// email.
func (s *Service) VerifyEmail(ctx context.Context, token string) error {
	if token == "" || len(token) > 200 {
		return claims.InvalidField("token", "valid", "The verification code is invalid or has expired.")
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		id, err := tx.UseEmailVerification(ctx, auth.HashOpaque(token))
		if err != nil {
			return err
		}
		if err := tx.SetEmailVerified(ctx, id); err != nil {
			return err
		}
		return audit(ctx, tx, id, "user.email_verified", "user", string(id), "ok", nil)
	})
}

// mailLinkCode sends the account at email a single-use code that links
// policyholder holder to it (ConfirmEmailLink).
func (s *Service) mailLinkCode(ctx context.Context, tx *store.Tx, user, holder claims.ID, email string) error {
	token, hash := auth.NewOpaqueToken()
	if err := tx.InsertEmailLink(ctx, hash, user, holder, tx.Now().Add(7*24*time.Hour)); err != nil {
		return err
	}
	body := "Policies are recorded under this email address. To see them in your claims account, sign in and\n" +
		"POST /api/v1/me/link-policyholder with this code within 7 days: " + token + "\n" +
		"If you did not create an account, ignore this message: nothing is linked without the code.\n"
	return tx.InsertMail(ctx, store.Mail{ID: claims.NewID(), Kind: "link_policyholder", To: email, Body: body})
}
