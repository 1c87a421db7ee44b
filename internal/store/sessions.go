package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openclaims/claims/internal/claims"
)

// Session is a server-side sign-in. Every authenticated request checks it,
// so ending a session takes effect on the next request, not when the access
// token expires.
type Session struct {
	ID        claims.ID
	UserID    claims.ID
	CreatedAt time.Time
	LastSeen  time.Time
	ExpiresAt time.Time // absolute end
	IP        string
	UserAgent string
	Revoked   bool
	// RevokeReason says why a session ended, for the user to see.
	RevokeReason string
	// MFAAt is the last successful MFA check in this session (zero: none).
	MFAAt time.Time
}

// InsertSession stores a new session.
func (tx *Tx) InsertSession(ctx context.Context, s Session) error {
	var mfa int64
	if !s.MFAAt.IsZero() {
		mfa = micros(s.MFAAt)
	}
	_, err := tx.exec(ctx, `INSERT INTO sessions (id, user_id, created_at, last_seen, expires_at, ip, user_agent, mfa_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, s.ID, s.UserID, micros(s.CreatedAt), micros(s.LastSeen), micros(s.ExpiresAt),
		s.IP, s.UserAgent, mfa)
	if err != nil {
		return fmt.Errorf("insert session: %w", err)
	}
	return nil
}

// Session returns session id.
func (tx *Tx) Session(ctx context.Context, id claims.ID) (Session, error) {
	var (
		s                  Session
		cr, seen, exp, mfa int64
		revoked            sql.NullInt64
	)
	err := tx.queryRow(ctx, `SELECT id, user_id, created_at, last_seen, expires_at, ip, user_agent, revoked_at,
		revoke_reason, mfa_at FROM sessions WHERE id = ?`, id).Scan(&s.ID, &s.UserID, &cr, &seen, &exp, &s.IP,
		&s.UserAgent, &revoked, &s.RevokeReason, &mfa)
	if errors.Is(err, sql.ErrNoRows) {
		return s, claims.Errorf(claims.Unauthenticated, "The session has ended; sign in again.")
	}
	if err != nil {
		return s, fmt.Errorf("select session: %w", err)
	}
	s.CreatedAt, s.LastSeen, s.ExpiresAt, s.Revoked = fromMicros(cr), fromMicros(seen), fromMicros(exp), revoked.Valid
	if mfa > 0 {
		s.MFAAt = fromMicros(mfa)
	}
	return s, nil
}

// TouchSession records activity, at most once per resolution to spare writes.
func (tx *Tx) TouchSession(ctx context.Context, id claims.ID, now time.Time) error {
	_, err := tx.exec(ctx, `UPDATE sessions SET last_seen = ? WHERE id = ? AND last_seen < ?`,
		micros(now), id, micros(now.Add(-30*time.Second)))
	return err
}

// RevokeSession ends a session.
func (tx *Tx) RevokeSession(ctx context.Context, id claims.ID, reason string) error {
	_, err := tx.exec(ctx, `UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL`,
		micros(tx.now), reason, id)
	return err
}

// RefreshToken is one link of a refresh-token family: rotated on every use.
type RefreshToken struct {
	Hash       []byte
	SessionID  claims.ID
	Family     claims.ID
	Generation int
	ExpiresAt  time.Time
	Used       bool
}

// InsertRefreshToken stores a refresh token by hash.
func (tx *Tx) InsertRefreshToken(ctx context.Context, t RefreshToken) error {
	_, err := tx.exec(ctx, `INSERT INTO refresh_tokens (hash, session_id, family, generation, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`, t.Hash, t.SessionID, t.Family, t.Generation, micros(tx.now), micros(t.ExpiresAt))
	if err != nil {
		return fmt.Errorf("insert refresh token: %w", err)
	}
	return nil
}

// UseRefreshToken marks the token with hash as used and returns it. It
// reports Used=true (and changes nothing) if it had been used before: the
// caller treats that as theft. Marking is a conditional update, so of two
// concurrent uses exactly one wins.
func (tx *Tx) UseRefreshToken(ctx context.Context, hash []byte) (RefreshToken, error) {
	var (
		t    RefreshToken
		exp  int64
		used sql.NullInt64
	)
	err := tx.queryRow(ctx, `SELECT hash, session_id, family, generation, expires_at, used_at FROM refresh_tokens
		WHERE hash = ?`, hash).Scan(&t.Hash, &t.SessionID, &t.Family, &t.Generation, &exp, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return t, claims.Errorf(claims.Unauthenticated, "The refresh token is not valid.")
	}
	if err != nil {
		return t, fmt.Errorf("select refresh token: %w", err)
	}
	t.ExpiresAt = fromMicros(exp)
	if used.Valid {
		t.Used = true
		return t, nil
	}
	res, err := tx.exec(ctx, `UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL`, micros(tx.now), hash)
	if err != nil {
		return t, fmt.Errorf("use refresh token: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Used = true
	}
	return t, nil
}

// RevokeFamily ends every session reached by a refresh-token family.
func (tx *Tx) RevokeFamily(ctx context.Context, family claims.ID, reason string) error {
	_, err := tx.exec(ctx, `UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE revoked_at IS NULL
		AND id IN (SELECT session_id FROM refresh_tokens WHERE family = ?)`, micros(tx.now), reason, family)
	if err != nil {
		return fmt.Errorf("revoke family: %w", err)
	}
	_, err = tx.exec(ctx, `UPDATE refresh_tokens SET used_at = ? WHERE family = ? AND used_at IS NULL`, micros(tx.now), family)
	return err
}
