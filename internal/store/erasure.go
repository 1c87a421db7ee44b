package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/seal"
)

// Erasure (GDPR art. 17) is crypto-shredding: the subject key is deleted,
// so every value sealed under it (personal data, claim free text, document
// names) becomes unreadable everywhere at once, while amounts, statuses,
// decisions and the audit chain stay for the retention period. The account
// is disabled and its sealed email and blind index replaced, so nothing
// links it to the person any more.

// Erasure request statuses.
const (
	ErasurePending  = "pending"
	ErasureApproved = "approved"
)

// ErasureRequest is a customer's request to be erased.
type ErasureRequest struct {
	ID          claims.ID
	HolderID    claims.ID
	UserID      claims.ID
	Status      string
	RequestedAt time.Time
	DecidedBy   claims.ID
	DecidedAt   time.Time
}

// RegisterEntry is one line of the erasure register: ids and a time, no
// personal data.
type RegisterEntry struct {
	HolderID claims.ID `json:"holder"`
	UserID   claims.ID `json:"user,omitempty"`
	ErasedAt time.Time `json:"erased_at"`
}

// InsertErasureRequest records a pending request. A holder with a pending
// request already is a Conflict.
func (tx *Tx) InsertErasureRequest(ctx context.Context, r ErasureRequest) error {
	var n int
	if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM erasure_requests WHERE holder_id = ? AND status = ?`,
		r.HolderID, ErasurePending).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return claims.Errorf(claims.Conflict, "An erasure request is already waiting for approval.")
	}
	_, err := tx.exec(ctx, `INSERT INTO erasure_requests (id, holder_id, user_id, status, requested_at) VALUES (?, ?, ?, ?, ?)`,
		r.ID, r.HolderID, r.UserID, ErasurePending, micros(tx.now))
	if err != nil {
		return fmt.Errorf("insert erasure request: %w", err)
	}
	return nil
}

const erasureColumns = `id, holder_id, user_id, status, requested_at, decided_by, decided_at`

func scanErasure(s scanner) (ErasureRequest, error) {
	var (
		r         ErasureRequest
		req       int64
		decidedBy sql.NullString
		decidedAt sql.NullInt64
	)
	if err := s.Scan(&r.ID, &r.HolderID, &r.UserID, &r.Status, &req, &decidedBy, &decidedAt); err != nil {
		return r, err
	}
	r.RequestedAt, r.DecidedBy = fromMicros(req), claims.ID(decidedBy.String)
	if decidedAt.Valid {
		r.DecidedAt = fromMicros(decidedAt.Int64)
	}
	return r, nil
}

// ErasureRequestForUpdate returns request id, locked on PostgreSQL.
func (tx *Tx) ErasureRequestForUpdate(ctx context.Context, id claims.ID) (ErasureRequest, error) {
	r, err := scanErasure(tx.queryRow(ctx, `SELECT `+erasureColumns+` FROM erasure_requests WHERE id = ?`+tx.forUpdate(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, claims.Errorf(claims.NotFound, "Erasure request not found.")
	}
	return r, err
}

// ErasureRequests lists requests with status ("" = all), oldest first.
func (tx *Tx) ErasureRequests(ctx context.Context, status string, limit int) ([]ErasureRequest, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	rows, err := tx.query(ctx, `SELECT `+erasureColumns+` FROM erasure_requests WHERE status = ? OR ? = ''
		ORDER BY requested_at, id LIMIT ?`, status, status, limit)
	if err != nil {
		return nil, fmt.Errorf("select erasure requests: %w", err)
	}
	defer rows.Close()
	var out []ErasureRequest
	for rows.Next() {
		r, err := scanErasure(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// MarkErasureApproved records the decision on a request.
func (tx *Tx) MarkErasureApproved(ctx context.Context, id, by claims.ID) error {
	_, err := tx.exec(ctx, `UPDATE erasure_requests SET status = ?, decided_by = ?, decided_at = ? WHERE id = ?`,
		ErasureApproved, by, micros(tx.now), id)
	return err
}

// EraseSubject crypto-shreds policyholder holder and neutralises the
// account user ("" = none) in this transaction:
//
//   - policyholders: subject_key, pii and both blind indexes set to NULL,
//     erased_at set; claims, lines, decisions and documents keep their
//     (now unreadable) ciphertexts and every plain amount and status;
//   - users: status disabled, password and MFA removed, the sealed email and
//     its blind index replaced by values derived from the account id, every
//     session revoked, recovery codes, resets, MFA challenges, the sign-in
//     throttle of the email and queued mail to it deleted;
//   - erasure_register gets (holder, user, time).
//
// It is idempotent: erasing an erased subject only re-applies the above.
func (tx *Tx) EraseSubject(ctx context.Context, holder, user claims.ID) error {
	if _, err := tx.exec(ctx, `SELECT id FROM policyholders WHERE id = ?`+tx.forUpdate(), holder); err != nil {
		return err
	}
	if _, err := tx.exec(ctx, `UPDATE policyholders SET subject_key = NULL, pii = NULL, national_id_index = NULL,
		email_index = NULL, erased_at = COALESCE(erased_at, ?) WHERE id = ?`, micros(tx.now), holder); err != nil {
		return fmt.Errorf("erase holder %s: %w", holder, err)
	}
	tx.keyCache()[holder] = nil
	// Documents (medical records, photos) are encrypted under per-file
	// keys, not the subject key: mark them erased so their content is
	// deleted (DeleteErasedBlobs right after commit; the sweeper catches
	// whatever that misses or a restore brings back).
	if _, err := tx.EraseDocuments(ctx, holder); err != nil {
		return err
	}
	if user != "" {
		if err := tx.eraseUser(ctx, user); err != nil {
			return err
		}
	}
	_, err := tx.exec(ctx, `INSERT INTO erasure_register (holder_id, user_id, erased_at) VALUES (?, ?, ?)
		ON CONFLICT (holder_id) DO NOTHING`, holder, string(user), micros(tx.now))
	if err != nil {
		return fmt.Errorf("erasure register: %w", err)
	}
	return nil
}

func erasedEmail(user claims.ID) string { return "erased-" + string(user) + "@erased.invalid" }

func (tx *Tx) eraseUser(ctx context.Context, user claims.ID) error {
	var sealed []byte
	err := tx.queryRow(ctx, `SELECT email_sealed FROM users WHERE id = ?`+tx.forUpdate(), user).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	placeholder := erasedEmail(user)
	if email, err := tx.db.keys.Open(sealed, emailAAD(user)); err == nil && string(email) != placeholder {
		// Queued mail to the address and its sign-in throttle go too.
		if err := tx.deleteMailTo(ctx, string(email)); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `DELETE FROM login_throttle WHERE key = ?`,
			"email:"+hex.EncodeToString(tx.db.UserEmailIndex(string(email)))); err != nil {
			return err
		}
	}
	newSealed, err := tx.db.keys.Seal([]byte(placeholder), emailAAD(user))
	if err != nil {
		return err
	}
	if _, err := tx.exec(ctx, `UPDATE users SET status = ?, email_index = ?, email_sealed = ?, password_hash = '!erased',
		mfa_secret = NULL, mfa_enabled = 0, updated_at = ?, authz_version = authz_version + 1 WHERE id = ?`,
		claims.UserDisabled, tx.db.blind("user.email", placeholder), newSealed, micros(tx.now), user); err != nil {
		return fmt.Errorf("erase user %s: %w", user, err)
	}
	for _, q := range []string{
		`DELETE FROM recovery_codes WHERE user_id = ?`,
		`DELETE FROM password_resets WHERE user_id = ?`,
		`DELETE FROM mfa_challenges WHERE user_id = ?`,
	} {
		if _, err := tx.exec(ctx, q, user); err != nil {
			return err
		}
	}
	_, err = tx.RevokeUserSessions(ctx, user, "", "data subject erased")
	return err
}

// deleteMailTo deletes queued mail addressed to email (recipients are
// sealed, so each is opened and compared).
func (tx *Tx) deleteMailTo(ctx context.Context, email string) error {
	rows, err := tx.query(ctx, `SELECT id, recipient FROM outbox`)
	if err != nil {
		return err
	}
	var ids []string
	for rows.Next() {
		var id string
		var to []byte
		if err := rows.Scan(&id, &to); err != nil {
			rows.Close()
			return err
		}
		if b, err := tx.db.keys.Open(to, seal.AAD("outbox", "recipient", id)); err == nil && NormalizeEmail(string(b)) == NormalizeEmail(email) {
			ids = append(ids, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := tx.exec(ctx, `DELETE FROM outbox WHERE id = ?`, id); err != nil {
			return err
		}
	}
	return nil
}

// ErasureRegister returns every register entry, oldest first.
func (db *DB) ErasureRegister(ctx context.Context) ([]RegisterEntry, error) {
	var out []RegisterEntry
	err := db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.query(ctx, `SELECT holder_id, user_id, erased_at FROM erasure_register ORDER BY erased_at, holder_id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e RegisterEntry
			var at int64
			if err := rows.Scan(&e.HolderID, &e.UserID, &at); err != nil {
				return err
			}
			e.ErasedAt = fromMicros(at)
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, err
}

// ApplyErasureRegister erases again every subject in entries that the
// database still holds readable (after restoring an older backup), and
// records the entries in erasure_register. It returns how many subjects it
// erased. Holders the database never had are skipped.
func (db *DB) ApplyErasureRegister(ctx context.Context, entries []RegisterEntry) (int, error) {
	n := 0
	for _, e := range entries {
		err := db.InTx(ctx, func(tx *Tx) error {
			var key []byte
			var userID sql.NullString
			err := tx.queryRow(ctx, `SELECT subject_key, user_id FROM policyholders WHERE id = ?`, e.HolderID).Scan(&key, &userID)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			user := e.UserID
			if user == "" {
				user = claims.ID(userID.String)
			}
			var status string
			if user != "" {
				if err := tx.queryRow(ctx, `SELECT status FROM users WHERE id = ?`, user).Scan(&status); err != nil && !errors.Is(err, sql.ErrNoRows) {
					return err
				}
			}
			var registered int
			if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM erasure_register WHERE holder_id = ?`, e.HolderID).Scan(&registered); err != nil {
				return err
			}
			if key == nil && registered > 0 && (status == "" || status == string(claims.UserDisabled)) {
				return nil // already erased here
			}
			save := tx.now
			if !e.ErasedAt.IsZero() {
				tx.now = e.ErasedAt.UTC().Truncate(time.Microsecond)
			}
			err = tx.EraseSubject(ctx, e.HolderID, user)
			tx.now = save
			if err == nil {
				n++
			}
			return err
		})
		if err != nil {
			return n, fmt.Errorf("re-apply erasure of %s: %w", e.HolderID, err)
		}
	}
	return n, nil
}
