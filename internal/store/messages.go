package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openclaims/claims/internal/claims"
)

// Message is one message on a claim between the policyholder and the staff
// handling it. Body is personal data: it is sealed under the holder's
// subject key and never leaves the store except through Messages.
type Message struct {
	ID         claims.ID
	ClaimID    claims.ID
	HolderID   claims.ID
	AuthorID   claims.ID
	AuthorRole claims.Role // built-in role when posted
	Body       string      // ErasedText once the holder is erased
	CreatedAt  time.Time
}

func init() {
	// Message bodies are sealed under the holder's subject key, so a
	// holder's re-encryption (keyring.go) re-seals them with the rest.
	subjectColumns = append(subjectColumns, subjectColumn{name: "claim_messages.body", table: "claim_messages", column: "body",
		query:  `SELECT id, id, body FROM claim_messages WHERE holder_id = ?`,
		update: `UPDATE claim_messages SET body = ? WHERE id = ?`})
}

// InsertMessage stores m, its body sealed under m.HolderID's subject key.
func (tx *Tx) InsertMessage(ctx context.Context, m Message) error {
	body, err := tx.sealFor(ctx, m.HolderID, "claim_messages", "body", string(m.ID), []byte(m.Body))
	if err != nil {
		return fmt.Errorf("seal message: %w", err)
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = tx.now
	}
	_, err = tx.exec(ctx, `INSERT INTO claim_messages (id, claim_id, holder_id, author_id, author_role, body, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, m.ID, m.ClaimID, m.HolderID, m.AuthorID, string(m.AuthorRole), body, micros(m.CreatedAt))
	if err != nil {
		return fmt.Errorf("insert message: %w", err)
	}
	return nil
}

// CountMessages returns how many messages claim id has.
func (tx *Tx) CountMessages(ctx context.Context, claimID claims.ID) (int, error) {
	var n int
	if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM claim_messages WHERE claim_id = ?`, claimID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count messages: %w", err)
	}
	return n, nil
}

// Messages lists a claim's messages oldest first, after cursor (exclusive),
// bodies opened. holder is the claim's policyholder (whose key seals them).
func (tx *Tx) Messages(ctx context.Context, claimID, holder claims.ID, after Cursor, limit int) ([]Message, error) {
	q := `SELECT id, author_id, author_role, body, created_at FROM claim_messages WHERE claim_id = ?`
	args := []any{claimID}
	if !after.IsZero() {
		q += ` AND (created_at > ? OR (created_at = ? AND id > ?))`
		args = append(args, after.At, after.At, after.ID)
	}
	q += ` ORDER BY created_at, id LIMIT ?`
	args = append(args, limitOr(limit))
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("select messages: %w", err)
	}
	type raw struct {
		m    Message
		body []byte
	}
	var got []raw
	for rows.Next() {
		var (
			r    raw
			role string
			at   int64
		)
		if err := rows.Scan(&r.m.ID, &r.m.AuthorID, &role, &r.body, &at); err != nil {
			rows.Close()
			return nil, err
		}
		r.m.ClaimID, r.m.HolderID, r.m.AuthorRole, r.m.CreatedAt = claimID, holder, claims.Role(role), fromMicros(at)
		got = append(got, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(got))
	for _, r := range got {
		plain, err := tx.openFor(ctx, holder, "claim_messages", "body", string(r.m.ID), r.body)
		switch {
		case errors.Is(err, errErased):
			r.m.Body = ErasedText
		case err != nil:
			return nil, err
		default:
			r.m.Body = string(plain)
		}
		out = append(out, r.m)
	}
	return out, nil
}

// ClaimRef is what access decisions about a claim need, read without
// opening any sealed column: who holds it, who handles it, its status.
type ClaimRef struct {
	ID         claims.ID
	HolderID   claims.ID
	AssigneeID claims.ID
	FiledBy    claims.ID
	Status     claims.Status
	UpdatedAt  time.Time
}

// Claim returns the claims.Claim with only the reference fields set, for
// access checks (access.CanReadClaim).
func (r ClaimRef) Claim() claims.Claim {
	return claims.Claim{ID: r.ID, HolderID: r.HolderID, AssigneeID: r.AssigneeID, FiledBy: r.FiledBy, Status: r.Status, UpdatedAt: r.UpdatedAt}
}

// ClaimRef returns claim id's reference fields; a missing claim is
// NotFound. It decrypts nothing, so it is cheap enough for subscription
// checks.
func (tx *Tx) ClaimRef(ctx context.Context, id claims.ID) (ClaimRef, error) {
	var (
		r                 ClaimRef
		assignee, filedBy sql.NullString
		status            string
		upd               int64
	)
	err := tx.queryRow(ctx, `SELECT id, holder_id, assignee_id, filed_by, status, updated_at FROM claims WHERE id = ?`, id).
		Scan(&r.ID, &r.HolderID, &assignee, &filedBy, &status, &upd)
	if errors.Is(err, sql.ErrNoRows) {
		return r, claims.Errorf(claims.NotFound, "Claim not found.")
	}
	if err != nil {
		return r, fmt.Errorf("select claim %s: %w", id, err)
	}
	r.AssigneeID, r.FiledBy, r.Status, r.UpdatedAt = claims.ID(assignee.String), claims.ID(filedBy.String), claims.Status(status), fromMicros(upd)
	return r, nil
}
