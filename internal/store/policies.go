package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/openclaims/claims/internal/claims"
)

const policyColumns = `id, number, holder_id, product_line, status, effective_date, expiry_date, currency,
	coverage_limit, deductible, premium, coinsurance_bp, attributes, created_at`

type scanner interface{ Scan(dest ...any) error }

func scanPolicy(s scanner) (claims.Policy, error) {
	var (
		p                  claims.Policy
		eff, exp, cur, att string
		limit, ded, prem   int64
		created            int64
	)
	if err := s.Scan(&p.ID, &p.Number, &p.HolderID, &p.ProductLine, &p.Status, &eff, &exp, &cur,
		&limit, &ded, &prem, &p.CoinsuranceBP, &att, &created); err != nil {
		return p, err
	}
	p.EffectiveDate, _ = claims.ParseDate(eff)
	p.ExpiryDate, _ = claims.ParseDate(exp)
	p.CoverageLimit = claims.Money{Minor: limit, Currency: cur}
	p.Deductible = claims.Money{Minor: ded, Currency: cur}
	p.Premium = claims.Money{Minor: prem, Currency: cur}
	p.Attributes, p.CreatedAt = parseAttrs(att), fromMicros(created)
	return p, nil
}

// InsertPolicy stores a new policy. A duplicate number is a Conflict.
func (tx *Tx) InsertPolicy(ctx context.Context, p claims.Policy) error {
	_, err := tx.exec(ctx, `INSERT INTO policies (`+policyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.Number, p.HolderID, p.ProductLine, p.Status, p.EffectiveDate.String(), p.ExpiryDate.String(),
		p.CoverageLimit.Currency, p.CoverageLimit.Minor, p.Deductible.Minor, p.Premium.Minor, p.CoinsuranceBP,
		attrs(p.Attributes), micros(tx.now))
	if isUniqueViolation(err) {
		return claims.InvalidField("number", "unique", "A policy numbered %s already exists.", p.Number)
	}
	if err != nil {
		return fmt.Errorf("insert policy: %w", err)
	}
	return nil
}

// Policy returns policy id.
func (tx *Tx) Policy(ctx context.Context, id claims.ID) (claims.Policy, error) {
	p, err := scanPolicy(tx.queryRow(ctx, `SELECT `+policyColumns+` FROM policies WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, claims.Errorf(claims.NotFound, "Policy not found.")
	}
	if err != nil {
		return p, fmt.Errorf("select policy %s: %w", id, err)
	}
	return p, nil
}

// PolicyForUpdate returns policy id locked against concurrent decisions on
// the same policy (PostgreSQL row lock; SQLite has one writer anyway), so
// that limits per policy period hold under concurrent adjudication.
func (tx *Tx) PolicyForUpdate(ctx context.Context, id claims.ID) (claims.Policy, error) {
	p, err := scanPolicy(tx.queryRow(ctx, `SELECT `+policyColumns+` FROM policies WHERE id = ?`+tx.forUpdate(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, claims.Errorf(claims.NotFound, "Policy not found.")
	}
	if err != nil {
		return p, fmt.Errorf("lock policy %s: %w", id, err)
	}
	return p, nil
}

// PolicyByNumber returns the policy with the given number.
func (tx *Tx) PolicyByNumber(ctx context.Context, number string) (claims.Policy, error) {
	p, err := scanPolicy(tx.queryRow(ctx, `SELECT `+policyColumns+` FROM policies WHERE number = ?`,
		claims.NormalizePolicyNumber(number)))
	if errors.Is(err, sql.ErrNoRows) {
		return p, claims.Errorf(claims.NotFound, "Policy not found.")
	}
	if err != nil {
		return p, fmt.Errorf("select policy %s: %w", number, err)
	}
	return p, nil
}

// PolicyFilter selects policies. Zero fields match everything.
type PolicyFilter struct {
	HolderID claims.ID
	Status   claims.PolicyStatus
	After    Cursor
	Limit    int
}

// Policies lists policies newest first.
func (tx *Tx) Policies(ctx context.Context, f PolicyFilter) ([]claims.Policy, error) {
	q := `SELECT ` + policyColumns + ` FROM policies WHERE 1=1`
	var args []any
	if f.HolderID != "" {
		q += ` AND holder_id = ?`
		args = append(args, f.HolderID)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	if !f.After.IsZero() {
		q += ` AND (created_at < ? OR (created_at = ? AND id < ?))`
		args = append(args, f.After.At, f.After.At, f.After.ID)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, limitOr(f.Limit))
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	defer rows.Close()
	var out []claims.Policy
	for rows.Next() {
		p, err := scanPolicy(rows)
		if err != nil {
			return nil, fmt.Errorf("scan policy: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PeriodUsage returns what policy p's current period has consumed through
// decisions that still stand: benefits, deductible met, and the lines paid.
// It reads only plain amount columns, so an erased policyholder's claims
// still count against the limit. Call it after PolicyForUpdate in the
// deciding transaction.
func (tx *Tx) PeriodUsage(ctx context.Context, p claims.Policy, exclude claims.ID) (claims.PeriodUsage, error) {
	cur := p.CoverageLimit.Currency
	u := claims.PeriodUsage{Paid: claims.Zero(cur), DeductibleApplied: claims.Zero(cur), PaidLines: map[string]bool{}}
	const stands = `policy_id = ? AND id <> ? AND status IN ('approved', 'partially_approved', 'paid', 'closed')
		AND incident_date >= ? AND incident_date <= ?`
	args := []any{p.ID, exclude, p.EffectiveDate.String(), p.ExpiryDate.String()}
	var paid, ded int64
	if err := tx.queryRow(ctx, `SELECT COALESCE(SUM(payable), 0), COALESCE(SUM(deductible_applied), 0)
		FROM claims WHERE `+stands, args...).Scan(&paid, &ded); err != nil {
		return u, fmt.Errorf("period usage of %s: %w", p.ID, err)
	}
	u.Paid.Minor, u.DeductibleApplied.Minor = paid, ded
	rows, err := tx.query(ctx, `SELECT l.category, l.service_date, l.currency, l.amount, c.incident_date
		FROM claim_lines l JOIN claims c ON c.id = l.claim_id
		WHERE l.benefit > 0 AND l.claim_id IN (SELECT id FROM claims WHERE `+stands+`)`, args...)
	if err != nil {
		return u, fmt.Errorf("paid lines of %s: %w", p.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var l claims.LineItem
		var sd, inc string
		if err := rows.Scan(&l.Category, &sd, &l.Amount.Currency, &l.Amount.Minor, &inc); err != nil {
			return u, err
		}
		l.ServiceDate, _ = claims.ParseDate(sd)
		incident, _ := claims.ParseDate(inc)
		u.PaidLines[claims.LineKey(l, incident)] = true
	}
	return u, rows.Err()
}
