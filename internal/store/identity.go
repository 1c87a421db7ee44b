package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/seal"
)

// Security is the sign-in state of an account beyond its password.
type Security struct {
	MFASecret   string // opened TOTP secret; "" when none
	MFAEnabled  bool
	MFALastStep int64
}

func mfaAAD(id claims.ID) []byte { return seal.AAD("users", "mfa_secret", string(id)) }

// UserSecurity returns the MFA state of user id.
func (tx *Tx) UserSecurity(ctx context.Context, id claims.ID) (Security, error) {
	var (
		s       Security
		sealed  []byte
		enabled int
	)
	err := tx.queryRow(ctx, `SELECT mfa_secret, mfa_enabled, mfa_last_step FROM users WHERE id = ?`, id).
		Scan(&sealed, &enabled, &s.MFALastStep)
	if errors.Is(err, sql.ErrNoRows) {
		return s, claims.Errorf(claims.NotFound, "User not found.")
	}
	if err != nil {
		return s, fmt.Errorf("select user security: %w", err)
	}
	s.MFAEnabled = enabled != 0
	if sealed != nil {
		b, err := tx.db.keys.Open(sealed, mfaAAD(id))
		if err != nil {
			return s, fmt.Errorf("open mfa secret of %s: %w", id, err)
		}
		s.MFASecret = string(b)
	}
	return s, nil
}

// SetMFA stores a (sealed) TOTP secret and whether it is active; an empty
// secret removes MFA.
func (tx *Tx) SetMFA(ctx context.Context, id claims.ID, secret string, enabled bool) error {
	var sealed []byte
	if secret != "" {
		var err error
		if sealed, err = tx.db.keys.Seal([]byte(secret), mfaAAD(id)); err != nil {
			return err
		}
	}
	_, err := tx.exec(ctx, `UPDATE users SET mfa_secret = ?, mfa_enabled = ?, mfa_last_step = 0, updated_at = ? WHERE id = ?`,
		sealed, b2i(enabled), micros(tx.now), id)
	return err
}

// AdvanceMFAStep records that TOTP time step was used, only if it is later
// than the last one used: a compare-and-set, so of two requests with one
// code exactly one wins.
func (tx *Tx) AdvanceMFAStep(ctx context.Context, id claims.ID, step int64) (bool, error) {
	res, err := tx.exec(ctx, `UPDATE users SET mfa_last_step = ? WHERE id = ? AND mfa_last_step < ?`, step, id, step)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ReplaceRecoveryCodes stores a fresh set of recovery code hashes.
func (tx *Tx) ReplaceRecoveryCodes(ctx context.Context, id claims.ID, hashes [][]byte) error {
	if _, err := tx.exec(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, id); err != nil {
		return err
	}
	for _, h := range hashes {
		if _, err := tx.exec(ctx, `INSERT INTO recovery_codes (hash, user_id) VALUES (?, ?)`, h, id); err != nil {
			return err
		}
	}
	return nil
}

// UseRecoveryCode spends a recovery code of user id; false if unknown or used.
func (tx *Tx) UseRecoveryCode(ctx context.Context, id claims.ID, hash []byte) (bool, error) {
	res, err := tx.exec(ctx, `UPDATE recovery_codes SET used_at = ? WHERE hash = ? AND user_id = ? AND used_at IS NULL`,
		micros(tx.now), hash, id)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// InsertMFAChallenge records a pending second factor.
func (tx *Tx) InsertMFAChallenge(ctx context.Context, hash []byte, user claims.ID, expires time.Time) error {
	_, err := tx.exec(ctx, `INSERT INTO mfa_challenges (hash, user_id, expires_at) VALUES (?, ?, ?)`, hash, user, micros(expires))
	return err
}

// MFAChallenge returns the user of a live challenge and counts an attempt;
// after maxAttempts the challenge is spent.
func (tx *Tx) MFAChallenge(ctx context.Context, hash []byte, maxAttempts int) (claims.ID, error) {
	var (
		user     claims.ID
		exp      int64
		attempts int
		used     sql.NullInt64
	)
	bad := claims.Errorf(claims.Unauthenticated, "The sign-in challenge is not valid; sign in again.")
	err := tx.queryRow(ctx, `SELECT user_id, expires_at, attempts, used_at FROM mfa_challenges WHERE hash = ?`, hash).
		Scan(&user, &exp, &attempts, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return "", bad
	}
	if err != nil {
		return "", err
	}
	if used.Valid || micros(tx.now) > exp || attempts >= maxAttempts {
		return "", bad
	}
	if _, err := tx.exec(ctx, `UPDATE mfa_challenges SET attempts = attempts + 1 WHERE hash = ?`, hash); err != nil {
		return "", err
	}
	return user, nil
}

// SpendMFAChallenge marks a challenge used; false if it was already.
func (tx *Tx) SpendMFAChallenge(ctx context.Context, hash []byte) (bool, error) {
	res, err := tx.exec(ctx, `UPDATE mfa_challenges SET used_at = ? WHERE hash = ? AND used_at IS NULL`, micros(tx.now), hash)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Throttle is the failure record of one throttle key.
type Throttle struct {
	Failures     int
	LastFailure  time.Time
	BlockedUntil time.Time
}

// ThrottleState returns the record for key (zero when none).
func (tx *Tx) ThrottleState(ctx context.Context, key string) (Throttle, error) {
	var t Throttle
	var last, blocked int64
	err := tx.queryRow(ctx, `SELECT failures, last_failure, blocked_until FROM login_throttle WHERE key = ?`, key).
		Scan(&t.Failures, &last, &blocked)
	if errors.Is(err, sql.ErrNoRows) {
		return t, nil
	}
	if err != nil {
		return t, fmt.Errorf("select throttle: %w", err)
	}
	t.LastFailure, t.BlockedUntil = fromMicros(last), fromMicros(blocked)
	return t, nil
}

// SetThrottle writes the record for key.
func (tx *Tx) SetThrottle(ctx context.Context, key string, t Throttle) error {
	q := `INSERT INTO login_throttle (key, failures, last_failure, blocked_until) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_failure = excluded.last_failure,
		blocked_until = excluded.blocked_until`
	_, err := tx.exec(ctx, q, key, t.Failures, micros(t.LastFailure), micros(t.BlockedUntil))
	return err
}

// ClearThrottle forgets the failures of key (successful sign-in, unlock).
func (tx *Tx) ClearThrottle(ctx context.Context, key string) error {
	_, err := tx.exec(ctx, `DELETE FROM login_throttle WHERE key = ?`, key)
	return err
}

// InsertPasswordReset stores a reset token hash.
func (tx *Tx) InsertPasswordReset(ctx context.Context, hash []byte, user claims.ID, expires time.Time) error {
	_, err := tx.exec(ctx, `INSERT INTO password_resets (hash, user_id, expires_at) VALUES (?, ?, ?)`, hash, user, micros(expires))
	return err
}

// UsePasswordReset spends a reset token and returns its user.
func (tx *Tx) UsePasswordReset(ctx context.Context, hash []byte) (claims.ID, error) {
	var (
		user claims.ID
		exp  int64
	)
	bad := claims.InvalidField("token", "valid", "The reset link is invalid or has expired; ask for a new one.")
	err := tx.queryRow(ctx, `SELECT user_id, expires_at FROM password_resets WHERE hash = ? AND used_at IS NULL`, hash).Scan(&user, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", bad
	}
	if err != nil {
		return "", err
	}
	if micros(tx.now) > exp {
		return "", bad
	}
	res, err := tx.exec(ctx, `UPDATE password_resets SET used_at = ? WHERE hash = ? AND used_at IS NULL`, micros(tx.now), hash)
	if err != nil {
		return "", err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return "", bad
	}
	return user, nil
}

// Mail is one outbox message.
type Mail struct {
	ID        claims.ID
	Kind      string
	To        string
	Body      string
	CreatedAt time.Time
	Sent      bool
}

// InsertMail queues a message; recipient and body are sealed.
func (tx *Tx) InsertMail(ctx context.Context, m Mail) error {
	to, err := tx.db.keys.Seal([]byte(m.To), seal.AAD("outbox", "recipient", string(m.ID)))
	if err != nil {
		return err
	}
	body, err := tx.db.keys.Seal([]byte(m.Body), seal.AAD("outbox", "body", string(m.ID)))
	if err != nil {
		return err
	}
	_, err = tx.exec(ctx, `INSERT INTO outbox (id, kind, recipient, body, created_at) VALUES (?, ?, ?, ?, ?)`,
		m.ID, m.Kind, to, body, micros(tx.now))
	return err
}

// Outbox returns queued messages, oldest first.
func (tx *Tx) Outbox(ctx context.Context, unsentOnly bool) ([]Mail, error) {
	rows, err := tx.query(ctx, `SELECT id, kind, recipient, body, created_at, sent_at FROM outbox
		WHERE sent_at IS NULL OR ? = 0 ORDER BY created_at`, b2i(unsentOnly))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Mail
	for rows.Next() {
		var (
			m        Mail
			to, body []byte
			cr       int64
			sent     sql.NullInt64
		)
		if err := rows.Scan(&m.ID, &m.Kind, &to, &body, &cr, &sent); err != nil {
			return nil, err
		}
		t, err := tx.db.keys.Open(to, seal.AAD("outbox", "recipient", string(m.ID)))
		if err != nil {
			return nil, err
		}
		b, err := tx.db.keys.Open(body, seal.AAD("outbox", "body", string(m.ID)))
		if err != nil {
			return nil, err
		}
		m.To, m.Body, m.CreatedAt, m.Sent = string(t), string(b), fromMicros(cr), sent.Valid
		out = append(out, m)
	}
	return out, rows.Err()
}

// UserSessions returns the live sessions of user, oldest first.
func (tx *Tx) UserSessions(ctx context.Context, user claims.ID) ([]Session, error) {
	rows, err := tx.query(ctx, `SELECT id, user_id, created_at, last_seen, expires_at, ip, user_agent, mfa_at
		FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at, id`, user, micros(tx.now))
	if err != nil {
		return nil, fmt.Errorf("select sessions: %w", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		var s Session
		var cr, seen, exp, mfa int64
		if err := rows.Scan(&s.ID, &s.UserID, &cr, &seen, &exp, &s.IP, &s.UserAgent, &mfa); err != nil {
			return nil, err
		}
		s.CreatedAt, s.LastSeen, s.ExpiresAt = fromMicros(cr), fromMicros(seen), fromMicros(exp)
		if mfa > 0 {
			s.MFAAt = fromMicros(mfa)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// RevokeUserSessions ends every live session of user except keep ("" = all).
func (tx *Tx) RevokeUserSessions(ctx context.Context, user, keep claims.ID, reason string) (int, error) {
	res, err := tx.exec(ctx, `UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE user_id = ? AND id <> ?
		AND revoked_at IS NULL`, micros(tx.now), reason, user, keep)
	if err != nil {
		return 0, fmt.Errorf("revoke sessions of %s: %w", user, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// SetSessionMFA records a successful MFA check in a session (step-up).
func (tx *Tx) SetSessionMFA(ctx context.Context, id claims.ID, at time.Time) error {
	_, err := tx.exec(ctx, `UPDATE sessions SET mfa_at = ? WHERE id = ?`, micros(at), id)
	return err
}

// SetUserStatus enables or disables an account.
func (tx *Tx) SetUserStatus(ctx context.Context, id claims.ID, st claims.UserStatus) error {
	_, err := tx.exec(ctx, `UPDATE users SET status = ?, updated_at = ?, authz_version = authz_version + 1 WHERE id = ?`,
		st, micros(tx.now), id)
	return err
}

// SetUserRole changes an account's role.
func (tx *Tx) SetUserRole(ctx context.Context, id claims.ID, r claims.Role) error {
	_, err := tx.exec(ctx, `UPDATE users SET role = ?, updated_at = ?, authz_version = authz_version + 1 WHERE id = ?`,
		r, micros(tx.now), id)
	return err
}

// UserEmailIndex returns the blind index the throttle uses for an email.
func (db *DB) UserEmailIndex(email string) []byte {
	return db.blind("throttle.email", NormalizeEmail(email))
}
