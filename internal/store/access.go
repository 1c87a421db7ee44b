package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openclaims/claims/internal/access"
	"github.com/openclaims/claims/internal/claims"
)

// CustomRole returns the custom role named name.
func (tx *Tx) CustomRole(ctx context.Context, name string) (access.CustomRole, error) {
	var (
		r     access.CustomRole
		perms string
		limit sql.NullInt64
	)
	err := tx.queryRow(ctx, `SELECT name, base_role, permissions, authority_limit, version FROM custom_roles WHERE name = ?`, name).
		Scan(&r.Name, &r.Base, &perms, &limit, &r.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return r, claims.Errorf(claims.NotFound, "Role not found.")
	}
	if err != nil {
		return r, fmt.Errorf("select custom role: %w", err)
	}
	r.Permissions = access.ParsePermissions(perms)
	if limit.Valid {
		r.AuthorityLimit = &limit.Int64
	}
	return r, nil
}

// CustomRoles lists the custom roles by name.
func (tx *Tx) CustomRoles(ctx context.Context) ([]access.CustomRole, error) {
	rows, err := tx.query(ctx, `SELECT name FROM custom_roles ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	var out []access.CustomRole
	for _, n := range names {
		r, err := tx.CustomRole(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// PutCustomRole creates or updates a custom role, bumping its version.
func (tx *Tx) PutCustomRole(ctx context.Context, r access.CustomRole) (int64, error) {
	var limit any
	if r.AuthorityLimit != nil {
		limit = *r.AuthorityLimit
	}
	res, err := tx.exec(ctx, `UPDATE custom_roles SET base_role = ?, permissions = ?, authority_limit = ?, version = version + 1,
		updated_at = ? WHERE name = ?`, r.Base, access.JoinPermissions(r.Permissions), limit, micros(tx.now), r.Name)
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := tx.exec(ctx, `INSERT INTO custom_roles (name, base_role, permissions, authority_limit, version, created_at, updated_at)
			VALUES (?, ?, ?, ?, 1, ?, ?)`, r.Name, r.Base, access.JoinPermissions(r.Permissions), limit, micros(tx.now), micros(tx.now)); err != nil {
			return 0, err
		}
	}
	var v int64
	err = tx.queryRow(ctx, `SELECT version FROM custom_roles WHERE name = ?`, r.Name).Scan(&v)
	return v, err
}

// UserAuthorityLimit returns the per-user override (nil: none).
func (tx *Tx) UserAuthorityLimit(ctx context.Context, id claims.ID) (*int64, error) {
	var l sql.NullInt64
	if err := tx.queryRow(ctx, `SELECT authority_limit FROM users WHERE id = ?`, id).Scan(&l); err != nil {
		return nil, err
	}
	if !l.Valid {
		return nil, nil
	}
	return &l.Int64, nil
}

// SetUserAuthorityLimit sets or clears (nil) the per-user override.
func (tx *Tx) SetUserAuthorityLimit(ctx context.Context, id claims.ID, limit *int64) error {
	var v any
	if limit != nil {
		v = *limit
	}
	_, err := tx.exec(ctx, `UPDATE users SET authority_limit = ?, updated_at = ? WHERE id = ?`, v, micros(tx.now), id)
	return err
}

// InsertDelegation stores a delegation.
func (tx *Tx) InsertDelegation(ctx context.Context, d access.Delegation) error {
	var max any
	if d.MaxAmount > 0 {
		max = d.MaxAmount
	}
	_, err := tx.exec(ctx, `INSERT INTO delegations (id, from_user, to_user, permissions, max_amount, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, d.ID, d.From, d.To, access.JoinPermissions(d.Permissions), max, micros(tx.now), micros(d.ExpiresAt))
	return err
}

// Delegations returns the delegations given by or to user (live ones only
// when liveOnly), newest first.
func (tx *Tx) Delegations(ctx context.Context, user claims.ID, liveOnly bool) ([]access.Delegation, error) {
	q := `SELECT id, from_user, to_user, permissions, max_amount, created_at, expires_at, revoked_at FROM delegations
		WHERE (from_user = ? OR to_user = ?)`
	args := []any{user, user}
	if liveOnly {
		q += ` AND revoked_at IS NULL AND expires_at > ?`
		args = append(args, micros(tx.now))
	}
	rows, err := tx.query(ctx, q+` ORDER BY created_at DESC, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("select delegations: %w", err)
	}
	defer rows.Close()
	var out []access.Delegation
	for rows.Next() {
		var (
			d       access.Delegation
			perms   string
			max     sql.NullInt64
			cr, exp int64
			rev     sql.NullInt64
		)
		if err := rows.Scan(&d.ID, &d.From, &d.To, &perms, &max, &cr, &exp, &rev); err != nil {
			return nil, err
		}
		d.Permissions, d.MaxAmount, d.CreatedAt, d.ExpiresAt, d.Revoked = access.ParsePermissions(perms), max.Int64,
			fromMicros(cr), fromMicros(exp), rev.Valid
		out = append(out, d)
	}
	return out, rows.Err()
}

// RevokeDelegation ends delegation id if it was given by (or to) user.
func (tx *Tx) RevokeDelegation(ctx context.Context, id, user claims.ID) error {
	res, err := tx.exec(ctx, `UPDATE delegations SET revoked_at = ? WHERE id = ? AND (from_user = ? OR to_user = ?)
		AND revoked_at IS NULL`, micros(tx.now), id, user, user)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return claims.Errorf(claims.NotFound, "Delegation not found.")
	}
	return nil
}

// Checkpoint is a signed statement of the audit chain's length and head.
type Checkpoint struct {
	Seq       int64
	HeadHash  []byte
	At        time.Time
	KeyID     string
	Signature []byte
}

// AuditHead returns the chain's current length and head hash.
func (tx *Tx) AuditHead(ctx context.Context) (int64, []byte, error) {
	var (
		seq  int64
		hash []byte
	)
	err := tx.queryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	return seq, hash, err
}

// InsertCheckpoint stores a signed checkpoint (one per chain length).
func (tx *Tx) InsertCheckpoint(ctx context.Context, c Checkpoint) error {
	_, err := tx.exec(ctx, `INSERT INTO audit_checkpoints (seq, head_hash, at, key_id, signature) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (seq) DO NOTHING`, c.Seq, c.HeadHash, micros(c.At), c.KeyID, c.Signature)
	return err
}

// Checkpoints returns every checkpoint, oldest first.
func (db *DB) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	rows, err := db.ro.QueryContext(ctx, `SELECT seq, head_hash, at, key_id, signature FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		var c Checkpoint
		var at int64
		if err := rows.Scan(&c.Seq, &c.HeadHash, &at, &c.KeyID, &c.Signature); err != nil {
			return nil, err
		}
		c.At = fromMicros(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// UserList is one page of accounts for administrators.
func (tx *Tx) Users(ctx context.Context, limit int) ([]claims.User, error) {
	rows, err := tx.query(ctx, `SELECT id FROM users ORDER BY created_at, id LIMIT ?`, limitOr(limit))
	if err != nil {
		return nil, err
	}
	var ids []claims.ID
	for rows.Next() {
		var id claims.ID
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	out := make([]claims.User, 0, len(ids))
	for _, id := range ids {
		u, err := tx.User(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// PseudonymKey is the key of training-data pseudonyms, derived from the
// index key (never a KEK) so pseudonyms survive KEK rotation.
func (db *DB) PseudonymKey() []byte { return db.index.Index("pseudonym.key", []byte("v1")) }

// ClaimsPlain lists claims with only their plain columns (no sealed text is
// opened): amounts, dates, statuses, categories, flags and non-personal
// attributes, plus the policy's product line as attribute "product_line".
func (tx *Tx) ClaimsPlain(ctx context.Context, f ClaimFilter) ([]claims.Claim, error) {
	q := `SELECT c.id, c.holder_id, c.type, c.incident_date, c.reported_date, c.currency, c.total, c.payable, c.status,
		c.flags, c.attributes, c.created_at, p.product_line FROM claims c JOIN policies p ON p.id = c.policy_id WHERE 1=1`
	var args []any
	if !f.After.IsZero() {
		q += ` AND (c.created_at < ? OR (c.created_at = ? AND c.id < ?))`
		args = append(args, f.After.At, f.After.At, f.After.ID)
	}
	q += ` ORDER BY c.created_at DESC, c.id DESC LIMIT ?`
	args = append(args, limitOr(f.Limit))
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list plain claims: %w", err)
	}
	var out []claims.Claim
	for rows.Next() {
		var (
			c                             claims.Claim
			inc, rep, cur, flags, att, pl string
			total, payable, cr            int64
		)
		if err := rows.Scan(&c.ID, &c.HolderID, &c.Type, &inc, &rep, &cur, &total, &payable, &c.Status, &flags, &att, &cr, &pl); err != nil {
			rows.Close()
			return nil, err
		}
		c.IncidentDate, _ = claims.ParseDate(inc)
		c.ReportedDate, _ = claims.ParseDate(rep)
		c.Total, c.Payable = claims.Money{Minor: total, Currency: cur}, claims.Money{Minor: payable, Currency: cur}
		c.Flags, c.CreatedAt = parseFlags(flags), fromMicros(cr)
		c.Attributes = map[string]string{"product_line": pl}
		for k, v := range parseAttrs(att) {
			if k == "fraud_reported" || k == "fraud_found" {
				c.Attributes[k] = v
			}
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		lrows, err := tx.query(ctx, `SELECT category FROM claim_lines WHERE claim_id = ? ORDER BY seq`, out[i].ID)
		if err != nil {
			return nil, err
		}
		for lrows.Next() {
			var l claims.LineItem
			if err := lrows.Scan(&l.Category); err != nil {
				lrows.Close()
				return nil, err
			}
			out[i].Lines = append(out[i].Lines, l)
		}
		lrows.Close()
	}
	return out, nil
}
