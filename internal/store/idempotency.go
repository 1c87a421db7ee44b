package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"

	"github.com/openclaims/claims/internal/claims"
)

// IdempotentResult returns the object a previous request with the same
// Idempotency-Key created for user, if any. A key reused with a different
// request body is Invalid: the client has a bug, and guessing is unsafe.
func (tx *Tx) IdempotentResult(ctx context.Context, user claims.ID, key string, requestHash []byte) (claims.ID, bool, error) {
	var (
		hash []byte
		obj  []byte
	)
	err := tx.queryRow(ctx, `SELECT request_hash, response FROM idempotency_keys WHERE user_id = ? AND key = ?`,
		user, key).Scan(&hash, &obj)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("select idempotency key: %w", err)
	}
	if subtle.ConstantTimeCompare(hash, requestHash) != 1 {
		return "", false, claims.InvalidField("Idempotency-Key", "reused", "This Idempotency-Key was used with a different request.")
	}
	return claims.ID(obj), true, nil
}

// ErrIdempotencyRace is returned when a concurrent request with the same key
// committed first; the caller rolls back and reads that result.
var ErrIdempotencyRace = errors.New("store: idempotency key taken concurrently")

// SaveIdempotentResult records that key created object for user. It runs in
// the creating transaction, so the object and the key commit together.
func (tx *Tx) SaveIdempotentResult(ctx context.Context, user claims.ID, key string, requestHash []byte, object claims.ID) error {
	_, err := tx.exec(ctx, `INSERT INTO idempotency_keys (user_id, key, request_hash, status_code, response, created_at)
		VALUES (?, ?, ?, 201, ?, ?)`, user, key, requestHash, []byte(object), micros(tx.now))
	if isUniqueViolation(err) {
		return ErrIdempotencyRace
	}
	if err != nil {
		return fmt.Errorf("save idempotency key: %w", err)
	}
	return nil
}
