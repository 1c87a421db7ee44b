package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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
		authz_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
		u.ID, tx.db.blind("user.email", email), sealed, u.Role, u.Status, u.PasswordHash, nullID(u.HolderID),
		micros(tx.now), micros(tx.now))
	if isUniqueViolation(err) {
		return claims.Errorf(claims.Conflict, "An account with this email already exists.")
	}
	if err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	return nil
}

const userColumns = `id, email_sealed, role, status, password_hash, holder_id, mfa_enabled, created_at, updated_at`

func (tx *Tx) scanUser(row *sql.Row) (claims.User, error) {
	var (
		u       claims.User
		sealed  []byte
		holder  sql.NullString
		mfa     int
		cr, upd int64
	)
	if err := row.Scan(&u.ID, &sealed, &u.Role, &u.Status, &u.PasswordHash, &holder, &mfa, &cr, &upd); err != nil {
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
	u.MFAEnabled = mfa != 0
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
