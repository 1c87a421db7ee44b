package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openclaims/claims/internal/claims"
)

// UnlinkedHoldersByEmail returns policyholders with this email that no
// account owns yet.
func (tx *Tx) UnlinkedHoldersByEmail(ctx context.Context, email string) ([]claims.ID, error) {
	rows, err := tx.query(ctx, `SELECT id FROM policyholders WHERE email_index = ? AND erased_at IS NULL AND user_id IS NULL`,
		tx.db.blind("holder.email", NormalizeEmail(email)))
	if err != nil {
		return nil, fmt.Errorf("holders by email: %w", err)
	}
	defer rows.Close()
	var ids []claims.ID
	for rows.Next() {
		var id claims.ID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// InsertEmailLink stores a link token hash.
func (tx *Tx) InsertEmailLink(ctx context.Context, hash []byte, user, holder claims.ID, expires time.Time) error {
	_, err := tx.exec(ctx, `INSERT INTO email_links (hash, user_id, holder_id, expires_at) VALUES (?, ?, ?, ?)`,
		hash, user, holder, micros(expires))
	return err
}

// UseEmailLink spends a link token of user and returns the holder it links.
func (tx *Tx) UseEmailLink(ctx context.Context, hash []byte, user claims.ID) (claims.ID, error) {
	var (
		holder claims.ID
		owner  claims.ID
		exp    int64
		used   sql.NullInt64
	)
	bad := claims.InvalidField("token", "valid", "The link code is invalid or has expired.")
	err := tx.queryRow(ctx, `SELECT holder_id, user_id, expires_at, used_at FROM email_links WHERE hash = ?`, hash).
		Scan(&holder, &owner, &exp, &used)
	if errors.Is(err, sql.ErrNoRows) || err == nil && (owner != user || used.Valid || micros(tx.now) > exp) {
		return "", bad
	}
	if err != nil {
		return "", err
	}
	res, err := tx.exec(ctx, `UPDATE email_links SET used_at = ? WHERE hash = ? AND used_at IS NULL`, micros(tx.now), hash)
	if err != nil {
		return "", err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return "", bad
	}
	return holder, nil
}

// MoveUserToHolder makes holder the account's policyholder record,
// releasing the one it had (which keeps its own, possibly empty, data).
func (tx *Tx) MoveUserToHolder(ctx context.Context, user, holder claims.ID) error {
	var taken sql.NullString
	if err := tx.queryRow(ctx, `SELECT user_id FROM policyholders WHERE id = ?`+tx.forUpdate(), holder).Scan(&taken); err != nil {
		return fmt.Errorf("holder %s: %w", holder, err)
	}
	if taken.Valid && taken.String != "" && claims.ID(taken.String) != user {
		return claims.Errorf(claims.Conflict, "These policies are already linked to another account.")
	}
	if _, err := tx.exec(ctx, `UPDATE policyholders SET user_id = NULL WHERE user_id = ?`, user); err != nil {
		return err
	}
	return tx.LinkHolderUser(ctx, holder, user)
}
