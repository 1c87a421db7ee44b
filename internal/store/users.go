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

func emailAAD(id claims.ID) []byte { return seal.AAD("users", "email", string(id)) }

// InsertUser stores a new account. The email is sealed and found through a
// blind index; a taken email is a Conflict the caller may turn into a
// neutral answer (registration must not reveal which emails exist).
func (tx *Tx) InsertUser(ctx context.Context, u claims.User) error {
	email := NormalizeEmail(u.Email)
	sealed, err := tx.db.keys.Seal([]byte(email), emailAAD(u.ID))
	if err != nil {
		return fmt.Errorf("seal email: %w", err)
	}
	_, err = tx.exec(ctx, `INSERT INTO users (id, email_index, email_sealed, role, status, password_hash, holder_id,
		authz_version, created_at, updated_at, email_verified) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)`,
		u.ID, tx.db.blind("user.email", email), sealed, u.Role, u.Status, u.PasswordHash, nullID(u.HolderID),
		micros(tx.now), micros(tx.now), b2i(u.EmailVerified))
	if isUniqueViolation(err) {
		return claims.Errorf(claims.Conflict, "An account with this email already exists.")
	}
	if err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	return nil
}

const userColumns = `id, email_sealed, role, status, password_hash, holder_id, mfa_enabled, created_at, updated_at, email_verified`

func (tx *Tx) scanUser(row *sql.Row) (claims.User, error) {
	var (
		u       claims.User
		sealed  []byte
		holder  sql.NullString
		mfa, ev int
		cr, upd int64
	)
	if err := row.Scan(&u.ID, &sealed, &u.Role, &u.Status, &u.PasswordHash, &holder, &mfa, &cr, &upd, &ev); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return u, claims.Errorf(claims.NotFound, "User not found.")
		}
		return u, fmt.Errorf("select user: %w", err)
	}
	email, err := tx.db.keys.Open(sealed, emailAAD(u.ID))
	if err != nil {
		return u, fmt.Errorf("open email of user %s: %w", u.ID, err)
	}
	u.Email, u.HolderID, u.CreatedAt, u.UpdatedAt = string(email), claims.ID(holder.String), fromMicros(cr), fromMicros(upd)
	u.MFAEnabled, u.EmailVerified = mfa != 0, ev != 0
	return u, nil
}

// User returns user id.
func (tx *Tx) User(ctx context.Context, id claims.ID) (claims.User, error) {
	return tx.scanUser(tx.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
}

// UserByEmail finds an account by email through the blind index.
func (tx *Tx) UserByEmail(ctx context.Context, email string) (claims.User, error) {
	return tx.scanUser(tx.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email_index = ?`,
		tx.db.blind("user.email", NormalizeEmail(email))))
}

// CountUsers returns how many accounts have role r ("" = all).
func (tx *Tx) CountUsers(ctx context.Context, r claims.Role) (int, error) {
	var n int
	err := tx.queryRow(ctx, `SELECT COUNT(*) FROM users WHERE role = ? OR ? = ''`, r, r).Scan(&n)
	return n, err
}

// UpdatePassword sets a user's password hash.
func (tx *Tx) UpdatePassword(ctx context.Context, id claims.ID, hash string) error {
	_, err := tx.exec(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?`, hash, micros(tx.now), id)
	return err
}

// SetEmailVerified records that the account proved its email.
func (tx *Tx) SetEmailVerified(ctx context.Context, id claims.ID) error {
	_, err := tx.exec(ctx, `UPDATE users SET email_verified = 1 WHERE id = ?`, id)
	return err
}

// InsertEmailVerification stores a verification code hash.
func (tx *Tx) InsertEmailVerification(ctx context.Context, hash []byte, user claims.ID, expires time.Time) error {
	_, err := tx.exec(ctx, `INSERT INTO email_verifications (hash, user_id, expires_at) VALUES (?, ?, ?)`, hash, user, micros(expires))
	return err
}

// UseEmailVerification spends a verification code and returns its account.
func (tx *Tx) UseEmailVerification(ctx context.Context, hash []byte) (claims.ID, error) {
	var (
		user claims.ID
		exp  int64
	)
	bad := claims.InvalidField("token", "valid", "The verification code is invalid or has expired.")
	err := tx.queryRow(ctx, `SELECT user_id, expires_at FROM email_verifications WHERE hash = ? AND used_at IS NULL`, hash).Scan(&user, &exp)
	if errors.Is(err, sql.ErrNoRows) || err == nil && micros(tx.now) > exp {
		return "", bad
	}
	if err != nil {
		return "", err
	}
	res, err := tx.exec(ctx, `UPDATE email_verifications SET used_at = ? WHERE hash = ? AND used_at IS NULL`, micros(tx.now), hash)
	if err != nil {
		return "", err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return "", bad
	}
	return user, nil
}
