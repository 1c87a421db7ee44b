package workflow

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/openclaims/claims/internal/access"
	"github.com/openclaims/claims/internal/auth"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
)

// Identity policy defaults (README, Authentication). Every number here is
// configurable through IdentityPolicy.
type IdentityPolicy struct {
	LockAfter        int           // failures on one email before it locks (10)
	LockFor          time.Duration // lock duration (15 min)
	DelayAfter       int           // failures on one email before delays start (3)
	IPDelayAfter     int           // failures from one client address before delays start (20)
	MaxDelay         time.Duration // longest delay between attempts (15 min)
	SessionLimit     map[claims.Role]int
	StepUpWindow     time.Duration // how recent an MFA check a sensitive action needs (5 min)
	MFAChallengeTTL  time.Duration // how long the second sign-in step may take (5 min)
	ResetTokenTTL    time.Duration // password reset link lifetime (30 min)
	PaymentStepUpMin int64         // payments of at least this many minor units need a recent MFA check (0 = never)
}

// DefaultIdentityPolicy is the documented default.
var DefaultIdentityPolicy = IdentityPolicy{
	LockAfter: 10, LockFor: 15 * time.Minute, DelayAfter: 3, IPDelayAfter: 20, MaxDelay: 15 * time.Minute,
	SessionLimit: map[claims.Role]int{
		claims.RoleSuperAdmin: 2, claims.RoleAdmin: 2,
		claims.RoleClaimsProcessor: 3, claims.RoleAIEngineer: 3,
		claims.RoleCustomer: 5,
	},
	StepUpWindow: 5 * time.Minute, MFAChallengeTTL: 5 * time.Minute, ResetTokenTTL: 30 * time.Minute,
	PaymentStepUpMin: 1_000_000, // 10,000.00 in a two-decimal currency
}

// Problem kinds the client can act on are carried as an "errors" entry with
// a rule; these are the rules for identity.
const (
	RuleMFARequired    = "mfa_enrollment_required"
	RuleStepUpRequired = "step_up_required"
	RuleThrottled      = "throttled"
	RuleInvalidMFA     = "invalid_code"
)

// LoginResult is the first step of a sign-in: tokens, or a challenge for
// the second factor.
type LoginResult struct {
	Tokens   *TokenPair
	MFAToken string // set when the account has MFA: call CompleteMFA
	// EndedSessions counts older sessions ended by the concurrent-session
	// limit when this one was opened.
	EndedSessions int
}

// throttled is a RateLimited error whose Extra["retry_after"] holds the
// seconds to wait (the HTTP layer sends it as Retry-After).
func throttled(d time.Duration) error {
	secs := int(math.Ceil(d.Seconds()))
	e := claims.Errorf(claims.RateLimited, "Too many failed attempts; wait %d seconds before trying again.", secs)
	e.Fields = []claims.FieldError{{Field: "", Rule: RuleThrottled, Message: e.Message}}
	e.Extra = map[string]any{"retry_after": secs}
	return e
}

// throttleKeys are the records a sign-in attempt counts against: the email
// (existing or not: the behaviour must not reveal which emails have
// accounts) and the client address.
func (s *Service) throttleKeys(ctx context.Context, email string) (emailKey, ipKey string) {
	emailKey = "email:" + hex.EncodeToString(s.db.UserEmailIndex(email))
	if ip := MetaFrom(ctx).IP; ip != "" {
		ipKey = "ip:" + ip
	}
	return
}

// checkThrottle refuses an attempt made too soon after failures.
func (s *Service) checkThrottle(ctx context.Context, keys ...string) error {
	now := s.now()
	var wait time.Duration
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		for _, k := range keys {
			if k == "" {
				continue
			}
			t, err := tx.ThrottleState(ctx, k)
			if err != nil {
				return err
			}
			if d := t.BlockedUntil.Sub(now); d > wait {
				wait = d
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if wait > 0 {
		return throttled(wait)
	}
	return nil
}

// recordFailure counts a failed attempt and computes the next delay:
// nothing for the first few, then doubling from one second up to MaxDelay;
// an email that reaches LockAfter is locked for LockFor.
func (s *Service) recordFailure(ctx context.Context, user claims.ID, emailKey, ipKey string) {
	pol := s.identity
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		now := tx.Now()
		for _, k := range []string{emailKey, ipKey} {
			if k == "" {
				continue
			}
			t, err := tx.ThrottleState(ctx, k)
			if err != nil {
				return err
			}
			if now.Sub(t.LastFailure) > pol.LockFor && t.BlockedUntil.Before(now) {
				t.Failures = 0 // failures long ago are forgiven
			}
			t.Failures++
			t.LastFailure = now
			after := pol.DelayAfter
			if k == ipKey {
				after = pol.IPDelayAfter
			}
			if k == emailKey && t.Failures >= pol.LockAfter {
				t.BlockedUntil = now.Add(pol.LockFor)
				if t.Failures == pol.LockAfter {
					if err := audit(ctx, tx, user, "auth.locked", "user", string(user), "denied", nil); err != nil {
						return err
					}
				}
			} else if t.Failures > after {
				d := time.Second << min(t.Failures-after-1, 20)
				t.BlockedUntil = now.Add(min(d, pol.MaxDelay))
			}
			if err := tx.SetThrottle(ctx, k, t); err != nil {
				return err
			}
		}
		return audit(ctx, tx, user, "auth.login", "user", string(user), "failed", nil)
	})
	if err != nil {
		s.log.ErrorContext(ctx, "record failed sign-in", "err", err)
	}
}

// Login checks email and password. Unknown email, wrong password, locked or
// disabled account give the same answer after the same work (a dummy hash
// for unknown emails). Throttled attempts are refused before any hashing.
func (s *Service) Login(ctx context.Context, email, password string) (LoginResult, error) {
	emailKey, ipKey := s.throttleKeys(ctx, email)
	if err := s.checkThrottle(ctx, emailKey, ipKey); err != nil {
		return LoginResult{}, err
	}
	if len(password) == 0 || len(password) > auth.MaxPasswordBytes || len(email) > 254 {
		s.hasher.DummyVerify(ctx, "x")
		s.recordFailure(ctx, "", emailKey, ipKey)
		return LoginResult{}, errBadLogin
	}
	var u claims.User
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		var err error
		u, err = tx.UserByEmail(ctx, email)
		return err
	})
	if claims.KindOf(err) == claims.NotFound {
		s.hasher.DummyVerify(ctx, password)
		s.recordFailure(ctx, "", emailKey, ipKey)
		return LoginResult{}, errBadLogin
	}
	if err != nil {
		return LoginResult{}, err
	}
	ok, err := s.hasher.Verify(ctx, u.PasswordHash, password)
	if err != nil {
		return LoginResult{}, err
	}
	if !ok || u.Status != claims.UserActive {
		s.recordFailure(ctx, u.ID, emailKey, ipKey)
		return LoginResult{}, errBadLogin
	}
	var sec store.Security
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.ClearThrottle(ctx, emailKey); err != nil {
			return err
		}
		sec, err = tx.UserSecurity(ctx, u.ID)
		return err
	})
	if err != nil {
		return LoginResult{}, err
	}
	if sec.MFAEnabled {
		token, hash := auth.NewOpaqueToken()
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			return tx.InsertMFAChallenge(ctx, hash, u.ID, tx.Now().Add(s.identity.MFAChallengeTTL))
		})
		if err != nil {
			return LoginResult{}, err
		}
		return LoginResult{MFAToken: token}, nil
	}
	pair, ended, err := s.openSession(ctx, u, time.Time{})
	if err != nil {
		return LoginResult{}, err
	}
	return LoginResult{Tokens: &pair, EndedSessions: ended}, nil
}

var errBadCode = func() error {
	e := claims.Errorf(claims.Unauthenticated, "The code is not valid.")
	e.Fields = []claims.FieldError{{Field: "code", Rule: RuleInvalidMFA, Message: e.Message}}
	return e
}()

// CompleteMFA is the second sign-in step: a TOTP code (or a recovery code)
// for the challenge Login returned. Only then does a session exist.
func (s *Service) CompleteMFA(ctx context.Context, mfaToken, code, recovery string) (LoginResult, error) {
	if mfaToken == "" || len(mfaToken) > 200 {
		return LoginResult{}, claims.Errorf(claims.Unauthenticated, "The sign-in challenge is not valid; sign in again.")
	}
	hash := auth.HashOpaque(mfaToken)
	var u claims.User
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		id, err := tx.MFAChallenge(ctx, hash, 5)
		if err != nil {
			return err
		}
		if u, err = tx.User(ctx, id); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return LoginResult{}, err
	}
	if err := s.checkSecondFactor(ctx, u.ID, code, recovery); err != nil {
		return LoginResult{}, err
	}
	var spent bool
	if err := s.db.InTx(ctx, func(tx *store.Tx) (err error) {
		spent, err = tx.SpendMFAChallenge(ctx, hash)
		return err
	}); err != nil {
		return LoginResult{}, err
	}
	if !spent || u.Status != claims.UserActive {
		return LoginResult{}, claims.Errorf(claims.Unauthenticated, "The sign-in challenge is not valid; sign in again.")
	}
	pair, ended, err := s.openSession(ctx, u, s.now())
	if err != nil {
		return LoginResult{}, err
	}
	return LoginResult{Tokens: &pair, EndedSessions: ended}, nil
}

// checkSecondFactor accepts a TOTP code for a later time step than any used
// before (a compare-and-set in the database, so a replayed or raced code
// loses), or an unused recovery code.
func (s *Service) checkSecondFactor(ctx context.Context, user claims.ID, code, recovery string) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		sec, err := tx.UserSecurity(ctx, user)
		if err != nil {
			return err
		}
		if sec.MFASecret == "" {
			return claims.Errorf(claims.Conflict, "No second factor is enrolled.")
		}
		if recovery != "" {
			ok, err := tx.UseRecoveryCode(ctx, user, auth.HashRecoveryCode(recovery))
			if err != nil {
				return err
			}
			if !ok {
				return errBadCode
			}
			return audit(ctx, tx, user, "auth.mfa_recovery_code_used", "user", string(user), "ok", nil)
		}
		step, err := auth.CheckTOTP(sec.MFASecret, code, tx.Now(), sec.MFALastStep)
		if err != nil {
			_ = audit(ctx, tx, user, "auth.mfa", "user", string(user), "failed", nil)
			return errBadCode
		}
		ok, err := tx.AdvanceMFAStep(ctx, user, step)
		if err != nil {
			return err
		}
		if !ok {
			return errBadCode // another request used this step first
		}
		return nil
	})
}

// openSession creates a session (ending the oldest ones beyond the role's
// limit) and its first tokens. mfaAt is when MFA was proven (zero: not).
func (s *Service) openSession(ctx context.Context, u claims.User, mfaAt time.Time) (TokenPair, int, error) {
	now := s.now().UTC()
	m := MetaFrom(ctx)
	sess := store.Session{ID: claims.NewID(), UserID: u.ID, CreatedAt: now, LastSeen: now,
		IP: m.IP, UserAgent: truncate(m.UserAgent, 200), MFAAt: mfaAt}
	refresh, hash := auth.NewOpaqueToken()
	ended := 0
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		base, err := baseRole(ctx, tx, u.Role)
		if err != nil {
			return err
		}
		sess.ExpiresAt = now.Add(s.sessions[base].Absolute)
		live, err := tx.UserSessions(ctx, u.ID)
		if err != nil {
			return err
		}
		limit := s.identity.SessionLimit[base]
		for i := 0; limit > 0 && len(live)-i >= limit; i++ {
			if err := tx.RevokeSession(ctx, live[i].ID, "session limit: signed in on another device"); err != nil {
				return err
			}
			ended++
			if err := audit(ctx, tx, u.ID, "auth.session_evicted", "session", string(live[i].ID), "ok", nil); err != nil {
				return err
			}
		}
		if err := tx.InsertSession(ctx, sess); err != nil {
			return err
		}
		if err := tx.InsertRefreshToken(ctx, store.RefreshToken{Hash: hash, SessionID: sess.ID, Family: sess.ID,
			Generation: 1, ExpiresAt: sess.ExpiresAt}); err != nil {
			return err
		}
		return audit(ctx, tx, u.ID, "auth.login", "session", string(sess.ID), "ok", map[string]string{"mfa": strconv.FormatBool(!mfaAt.IsZero())})
	})
	if err != nil {
		return TokenPair{}, 0, err
	}
	access, c, err := s.tokens.Issue(string(u.ID), string(sess.ID))
	if err != nil {
		return TokenPair{}, 0, fmt.Errorf("issue access token: %w", err)
	}
	return TokenPair{AccessToken: access, ExpiresAt: c.ExpiresAt, RefreshToken: refresh, SessionID: sess.ID}, ended, nil
}

// StepUp refuses a sensitive action unless the session proved MFA within
// the step-up window.
func (s *Service) StepUp(p claims.Principal) error {
	if !p.MFAEnrolled {
		if claims.RequiresMFA(p.Role) {
			return mfaEnrollmentRequired()
		}
		return nil // accounts without MFA can't step up; the action's permission decides
	}
	if p.MFAAt.IsZero() || s.now().Sub(p.MFAAt) > s.identity.StepUpWindow {
		e := claims.Errorf(claims.Forbidden, "This action needs a recent second-factor check: POST /api/v1/auth/mfa/verify with a current code, then retry.")
		e.Fields = []claims.FieldError{{Rule: RuleStepUpRequired, Message: e.Message}}
		return e
	}
	return nil
}

func mfaEnrollmentRequired() error {
	e := claims.Errorf(claims.Forbidden, "Administrators must enrol a second factor first: POST /api/v1/auth/mfa/enroll.")
	e.Fields = []claims.FieldError{{Rule: RuleMFARequired, Message: e.Message}}
	return e
}

// MFAEnrollment is what a user needs to add a TOTP app.
type MFAEnrollment = auth.Enrollment

// EnrollMFA starts TOTP enrolment: the secret is stored sealed but not
// active until ConfirmMFA proves the app has it. Re-enrolling an active
// factor needs a recent MFA check.
func (s *Service) EnrollMFA(ctx context.Context, p claims.Principal) (MFAEnrollment, error) {
	if p.MFAEnrolled {
		if err := s.StepUp(p); err != nil {
			return MFAEnrollment{}, err
		}
	}
	u, err := s.Me(ctx, p)
	if err != nil {
		return MFAEnrollment{}, err
	}
	en, err := auth.NewEnrollment("claims", u.Email)
	if err != nil {
		return MFAEnrollment{}, err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.SetMFA(ctx, p.UserID, en.Secret, false); err != nil {
			return err
		}
		return audit(ctx, tx, p.UserID, "auth.mfa_enrollment_started", "user", string(p.UserID), "ok", nil)
	})
	return en, err
}

// ConfirmMFA activates the enrolled factor with a first valid code and
// returns ten single-use recovery codes (shown once, stored hashed). The
// current session counts as MFA-verified; every other session ends.
func (s *Service) ConfirmMFA(ctx context.Context, p claims.Principal, code string) ([]string, error) {
	var codes []string
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		sec, err := tx.UserSecurity(ctx, p.UserID)
		if err != nil {
			return err
		}
		if sec.MFASecret == "" {
			return claims.Errorf(claims.Conflict, "Start enrolment first: POST /api/v1/auth/mfa/enroll.")
		}
		if sec.MFAEnabled {
			return claims.Errorf(claims.Conflict, "The second factor is already active.")
		}
		step, err := auth.CheckTOTP(sec.MFASecret, code, tx.Now(), sec.MFALastStep)
		if err != nil {
			return errBadCode
		}
		if err := tx.SetMFA(ctx, p.UserID, sec.MFASecret, true); err != nil {
			return err
		}
		if _, err := tx.AdvanceMFAStep(ctx, p.UserID, step); err != nil {
			return err
		}
		var hashes [][]byte
		codes, hashes = auth.NewRecoveryCodes(10)
		if err := tx.ReplaceRecoveryCodes(ctx, p.UserID, hashes); err != nil {
			return err
		}
		if err := tx.SetSessionMFA(ctx, p.SessionID, tx.Now()); err != nil {
			return err
		}
		if _, err := tx.RevokeUserSessions(ctx, p.UserID, p.SessionID, "second factor changed"); err != nil {
			return err
		}
		return audit(ctx, tx, p.UserID, "auth.mfa_enrolled", "user", string(p.UserID), "ok", nil)
	})
	return codes, err
}

// VerifyMFA is the step-up check: a current code marks the session as
// recently verified.
func (s *Service) VerifyMFA(ctx context.Context, p claims.Principal, code string) error {
	if !p.MFAEnrolled {
		return claims.Errorf(claims.Conflict, "No second factor is enrolled.")
	}
	if err := s.checkSecondFactor(ctx, p.UserID, code, ""); err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.SetSessionMFA(ctx, p.SessionID, tx.Now()); err != nil {
			return err
		}
		return audit(ctx, tx, p.UserID, "auth.mfa_step_up", "session", string(p.SessionID), "ok", nil)
	})
}

// ChangePassword needs the current password, and a current MFA code where
// MFA is on; it ends every other session.
func (s *Service) ChangePassword(ctx context.Context, p claims.Principal, current, next, code string) error {
	u, err := s.Me(ctx, p)
	if err != nil {
		return err
	}
	ok, err := s.hasher.Verify(ctx, u.PasswordHash, current)
	if err != nil {
		return err
	}
	if !ok {
		return claims.InvalidField("currentPassword", "matches", "The current password is not correct.")
	}
	if err := checkNewPassword(next, u.Email); err != nil {
		return err
	}
	if p.MFAEnrolled {
		if err := s.checkSecondFactor(ctx, p.UserID, code, ""); err != nil {
			return err
		}
	}
	hash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.UpdatePassword(ctx, p.UserID, hash); err != nil {
			return err
		}
		if _, err := tx.RevokeUserSessions(ctx, p.UserID, p.SessionID, "password changed"); err != nil {
			return err
		}
		return audit(ctx, tx, p.UserID, "auth.password_changed", "user", string(p.UserID), "ok", nil)
	})
}

func checkNewPassword(pw, email string) error {
	if err := auth.CheckPassword(pw, email); err != nil {
		var pe *auth.PolicyError
		if errors.As(err, &pe) {
			return claims.InvalidField("newPassword", pe.Rule, "%s", pe.Message)
		}
		return err
	}
	return nil
}

// RequestPasswordReset queues a single-use, 30-minute reset link for the
// account with email, if there is one. The caller answers the same either
// way.
func (s *Service) RequestPasswordReset(ctx context.Context, email string) error {
	emailKey, ipKey := s.throttleKeys(ctx, "reset:"+email)
	if err := s.checkThrottle(ctx, emailKey, ipKey); err != nil {
		return err
	}
	s.recordFailure(ctx, "", emailKey, "") // every request counts: resets can't be used to flood a mailbox
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		u, err := tx.UserByEmail(ctx, email)
		if claims.KindOf(err) == claims.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		token, hash := auth.NewOpaqueToken()
		if err := tx.InsertPasswordReset(ctx, hash, u.ID, tx.Now().Add(s.identity.ResetTokenTTL)); err != nil {
			return err
		}
		body := "Someone asked to reset the password of your claims account.\n" +
			"Use this token within 30 minutes (POST /api/v1/auth/password-reset/confirm): " + token + "\n" +
			"If it wasn't you, ignore this message.\n"
		if err := tx.InsertMail(ctx, store.Mail{ID: claims.NewID(), Kind: "password_reset", To: u.Email, Body: body}); err != nil {
			return err
		}
		return audit(ctx, tx, u.ID, "auth.password_reset_requested", "user", string(u.ID), "ok", nil)
	})
}

// ResetPassword sets a new password with a reset token and ends every
// session of the account.
func (s *Service) ResetPassword(ctx context.Context, token, next string) error {
	if token == "" || len(token) > 200 {
		return claims.InvalidField("token", "valid", "The reset link is invalid or has expired; ask for a new one.")
	}
	var u claims.User
	hash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return claims.InvalidField("newPassword", "max_length", "The new password is too long.")
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		id, err := tx.UsePasswordReset(ctx, auth.HashOpaque(token))
		if err != nil {
			return err
		}
		if u, err = tx.User(ctx, id); err != nil {
			return err
		}
		if err := checkNewPassword(next, u.Email); err != nil {
			return err // rolls back: the token stays usable for a better password
		}
		if err := tx.UpdatePassword(ctx, id, hash); err != nil {
			return err
		}
		// The reset token came by mail: the account has proved its email.
		if err := tx.SetEmailVerified(ctx, id); err != nil {
			return err
		}
		if _, err := tx.RevokeUserSessions(ctx, id, "", "password reset"); err != nil {
			return err
		}
		if err := tx.ClearThrottle(ctx, "email:"+hex.EncodeToString(s.db.UserEmailIndex(u.Email))); err != nil {
			return err
		}
		return audit(ctx, tx, id, "auth.password_reset", "user", string(id), "ok", nil)
	})
}

// Sessions lists the principal's live sessions.
func (s *Service) Sessions(ctx context.Context, p claims.Principal) ([]store.Session, error) {
	var out []store.Session
	err := s.db.Read(ctx, func(tx *store.Tx) (err error) {
		out, err = tx.UserSessions(ctx, p.UserID)
		return err
	})
	return out, err
}

// EndSession ends one of the principal's own sessions ("" = all but the
// current one).
func (s *Service) EndSession(ctx context.Context, p claims.Principal, id claims.ID) (int, error) {
	n := 0
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if id == "" {
			var err error
			if n, err = tx.RevokeUserSessions(ctx, p.UserID, p.SessionID, "ended by the user"); err != nil {
				return err
			}
		} else {
			sess, err := tx.Session(ctx, id)
			if err != nil || sess.UserID != p.UserID || sess.Revoked {
				return claims.Errorf(claims.NotFound, "Session not found.")
			}
			if err := tx.RevokeSession(ctx, id, "ended by the user"); err != nil {
				return err
			}
			n = 1
		}
		return audit(ctx, tx, p.UserID, "auth.sessions_ended", "user", string(p.UserID), "ok", map[string]string{"count": strconv.Itoa(n)})
	})
	return n, err
}

// AdminAction is an account operation by an administrator.
type AdminAction string

const (
	ActionDisable  AdminAction = "disable"
	ActionEnable   AdminAction = "enable"
	ActionUnlock   AdminAction = "unlock"
	ActionLogout   AdminAction = "logout"
	ActionResetMFA AdminAction = "reset-mfa"
)

// AdministerUser disables, enables, unlocks, logs out or resets the MFA of
// another account. Disabling, logging out and resetting MFA end every
// session of the account at once.
func (s *Service) AdministerUser(ctx context.Context, p claims.Principal, target claims.ID, action AdminAction) error {
	perm := access.UsersManage
	if action == ActionLogout {
		perm = access.SessionsRevoke
	}
	if err := access.Require(p, perm); err != nil {
		return err
	}
	if action == ActionResetMFA {
		if err := s.StepUp(p); err != nil {
			return err
		}
	}
	if !claims.ValidID(string(target)) {
		return claims.Errorf(claims.NotFound, "User not found.")
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		u, err := tx.User(ctx, target)
		if err != nil {
			return err
		}
		if target == p.UserID && action != ActionLogout {
			return claims.Errorf(claims.Forbidden, "You cannot do this to your own account.")
		}
		targetBase, err := baseRole(ctx, tx, u.Role) // a custom role ranks as the role it rests on
		if err != nil {
			return err
		}
		if !access.Outranks(p.Role, targetBase) {
			return claims.Errorf(claims.Forbidden, "You cannot administer an account whose role is at or above your own.")
		}
		switch action {
		case ActionDisable:
			if err := tx.SetUserStatus(ctx, target, claims.UserDisabled); err != nil {
				return err
			}
			if _, err := tx.RevokeUserSessions(ctx, target, "", "account disabled"); err != nil {
				return err
			}
		case ActionEnable:
			if err := tx.SetUserStatus(ctx, target, claims.UserActive); err != nil {
				return err
			}
		case ActionUnlock:
			if err := tx.ClearThrottle(ctx, "email:"+hex.EncodeToString(s.db.UserEmailIndex(u.Email))); err != nil {
				return err
			}
		case ActionLogout:
			if _, err := tx.RevokeUserSessions(ctx, target, "", "ended by an administrator"); err != nil {
				return err
			}
		case ActionResetMFA:
			if err := tx.SetMFA(ctx, target, "", false); err != nil {
				return err
			}
			if err := tx.ReplaceRecoveryCodes(ctx, target, nil); err != nil {
				return err
			}
			if _, err := tx.RevokeUserSessions(ctx, target, "", "second factor reset"); err != nil {
				return err
			}
		default:
			return claims.InvalidField("action", "enum", "Unknown action.")
		}
		return audit(ctx, tx, p.UserID, "user."+string(action), "user", string(target), "ok", nil)
	})
}

// Outbox returns queued mail (for the command line, in development).
func (s *Service) Outbox(ctx context.Context) ([]store.Mail, error) {
	var out []store.Mail
	err := s.db.Read(ctx, func(tx *store.Tx) (err error) {
		out, err = tx.Outbox(ctx, false)
		return err
	})
	return out, err
}

// SetRole changes another account's role. Only a role strictly above both
// the old and the new role may do it (a super admin may do anything), the
// last super admin can't be demoted, it needs a recent MFA check, and every
// session of the account ends so the new role applies at once.
func (s *Service) SetRole(ctx context.Context, p claims.Principal, target claims.ID, role claims.Role) error {
	if err := access.Require(p, access.RolesAssign); err != nil {
		return err
	}
	if err := s.StepUp(p); err != nil {
		return err
	}
	if !claims.ValidID(string(target)) {
		return claims.Errorf(claims.NotFound, "User not found.")
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		newBase, err := baseRole(ctx, tx, role)
		if err != nil {
			return claims.InvalidField("role", "enum", "role must be a built-in or custom role.")
		}
		u, err := tx.User(ctx, target)
		if err != nil {
			return err
		}
		if target == p.UserID {
			return claims.Errorf(claims.Forbidden, "You cannot change your own role.")
		}
		oldBase, err := baseRole(ctx, tx, u.Role)
		if err != nil {
			return err
		}
		if !access.Outranks(p.Role, oldBase) || !access.Outranks(p.Role, newBase) {
			return claims.Errorf(claims.Forbidden, "You can only grant roles below your own, to accounts below your own.")
		}
		if u.Role == claims.RoleSuperAdmin && role != claims.RoleSuperAdmin {
			n, err := tx.CountUsers(ctx, claims.RoleSuperAdmin)
			if err != nil {
				return err
			}
			if n <= 1 {
				return claims.Errorf(claims.Conflict, "The last super admin cannot be demoted.")
			}
		}
		if oldBase == claims.RoleCustomer && newBase != claims.RoleCustomer && u.HolderID != "" {
			// Staff act on claims; a customer account with policies can't
			// become staff (separation of duties is simpler kept apart).
			return claims.Errorf(claims.Conflict, "A customer account with policies can't become staff; create a separate staff account.")
		}
		if err := tx.SetUserRole(ctx, target, role); err != nil {
			return err
		}
		if _, err := tx.RevokeUserSessions(ctx, target, "", "role changed"); err != nil {
			return err
		}
		return audit(ctx, tx, p.UserID, "user.role_changed", "user", string(target), "ok",
			map[string]string{"from": string(u.Role), "to": string(role)})
	})
}
