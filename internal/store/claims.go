package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/openclaims/claims/internal/claims"
)

// claimDetails is the sealed part of a claim row: the free text, which may
// hold medical or personal detail.
type claimDetails struct {
	Description string `json:"description"`
	Location    string `json:"location,omitempty"`
}

// ErasedText stands in for free text whose data subject was erased.
const ErasedText = "[erased]"

// NewClaimNumber returns a fresh public claim number, CLM-YYYY-XXXXXXXXXX
// (50 random bits in Crockford-like base32, so numbers don't reveal volume).
func NewClaimNumber(year int) string {
	var b [7]byte
	rand.Read(b[:])
	s := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])[:10]
	return fmt.Sprintf("CLM-%04d-%s", year, s)
}

// InsertClaim stores a new claim with its lines. source/sourceKey identify
// imported claims; a second insert with the same pair is a Conflict.
func (tx *Tx) InsertClaim(ctx context.Context, c claims.Claim, sourceKey string) error {
	details, _ := json.Marshal(claimDetails{Description: c.Description, Location: c.Location})
	sealed, err := tx.sealFor(ctx, c.HolderID, "claims", "details", string(c.ID), details)
	if err != nil {
		return fmt.Errorf("seal claim details: %w", err)
	}
	var sk any
	if sourceKey != "" {
		sk = sourceKey
	}
	if c.Source == "" {
		c.Source = "api"
	}
	_, err = tx.exec(ctx, `INSERT INTO claims (id, number, policy_id, holder_id, filed_by, type, incident_date,
		reported_date, details, currency, total, payable, status, assignee_id, flags, source, source_key,
		attributes, version, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Number, c.PolicyID, c.HolderID, nullID(c.FiledBy), c.Type, c.IncidentDate.String(),
		c.ReportedDate.String(), sealed, c.Total.Currency, c.Total.Minor, c.Payable.Minor, c.Status,
		nullID(c.AssigneeID), flagText(c.Flags), c.Source, sk, attrs(c.Attributes), c.Version,
		micros(c.CreatedAt), micros(c.UpdatedAt))
	if isUniqueViolation(err) {
		return claims.Errorf(claims.Conflict, "This claim was recorded before.")
	}
	if err != nil {
		return fmt.Errorf("insert claim: %w", err)
	}
	for _, l := range c.Lines {
		desc, err := tx.sealFor(ctx, c.HolderID, "claim_lines", "description", string(l.ID), []byte(l.Description))
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO claim_lines (id, claim_id, seq, category, description, service_date,
			currency, amount) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			l.ID, c.ID, l.Seq, l.Category, desc, l.ServiceDate.String(), l.Amount.Currency, l.Amount.Minor); err != nil {
			return fmt.Errorf("insert claim line %d: %w", l.Seq, err)
		}
	}
	return nil
}

const claimColumns = `id, number, policy_id, holder_id, filed_by, type, incident_date, reported_date, details,
	currency, total, payable, status, assignee_id, outcome, decision_reason, deductible_applied, decided_by,
	decided_at, appealed, flags, source, attributes, version, created_at, updated_at, proposed_by`

// scanClaim reads a claims row; free text is left sealed in the returned
// raw values for openClaim.
func scanClaim(s scanner) (claims.Claim, rawClaim, error) {
	var (
		c                                 claims.Claim
		r                                 rawClaim
		filedBy, assignee, decidedBy      sql.NullString
		proposedBy                        sql.NullString
		incident, reported, cur, flags    string
		attrText, outcome                 string
		total, payable, ded, ver, cr, upd int64
		decidedAt                         sql.NullInt64
		appealed                          int
	)
	err := s.Scan(&c.ID, &c.Number, &c.PolicyID, &c.HolderID, &filedBy, &c.Type, &incident, &reported, &r.details,
		&cur, &total, &payable, &c.Status, &assignee, &outcome, &r.reason, &ded, &decidedBy,
		&decidedAt, &appealed, &flags, &c.Source, &attrText, &ver, &cr, &upd, &proposedBy)
	if err != nil {
		return c, r, err
	}
	c.FiledBy, c.AssigneeID, c.DecidedBy = claims.ID(filedBy.String), claims.ID(assignee.String), claims.ID(decidedBy.String)
	c.ProposedBy = claims.ID(proposedBy.String)
	c.IncidentDate, _ = claims.ParseDate(incident)
	c.ReportedDate, _ = claims.ParseDate(reported)
	c.Total, c.Payable = claims.Money{Minor: total, Currency: cur}, claims.Money{Minor: payable, Currency: cur}
	c.Appealed, c.Flags, c.Attributes = appealed != 0, parseFlags(flags), parseAttrs(attrText)
	c.Version, c.CreatedAt, c.UpdatedAt = ver, fromMicros(cr), fromMicros(upd)
	if outcome != "" {
		r.decision = &claims.Decision{Outcome: claims.Outcome(outcome), Status: c.Status, Payable: c.Payable,
			DeductibleApplied: claims.Money{Minor: ded, Currency: cur}, DecidedBy: c.DecidedBy}
		if c.Status == claims.StatusPendingApproval {
			// The decision's own status is what approval will move to.
			r.decision.Status, r.decision.DecidedBy = decisionStatus(outcome, payable, total), c.ProposedBy
		}
		if decidedAt.Valid {
			r.decision.DecidedAt = fromMicros(decidedAt.Int64)
		}
	}
	return c, r, nil
}

type rawClaim struct {
	details, reason []byte
	decision        *claims.Decision
}

// openClaim fills in the sealed text and, when withLines, the lines and the
// decision's per-line explanation.
func (tx *Tx) openClaim(ctx context.Context, c *claims.Claim, r rawClaim, withLines bool) error {
	plain, err := tx.openFor(ctx, c.HolderID, "claims", "details", string(c.ID), r.details)
	switch {
	case errors.Is(err, errErased):
		c.Description, c.Location = ErasedText, ""
	case err != nil:
		return err
	default:
		var d claimDetails
		if err := json.Unmarshal(plain, &d); err != nil {
			return fmt.Errorf("decode details of claim %s: %w", c.ID, err)
		}
		c.Description, c.Location = d.Description, d.Location
	}
	if !withLines {
		return nil
	}
	lines, err := tx.claimLines(ctx, c.ID, c.HolderID)
	if err != nil {
		return err
	}
	c.Lines = lines
	if r.decision != nil {
		d := *r.decision
		reason, err := tx.openFor(ctx, c.HolderID, "claims", "decision_reason", string(c.ID), r.reason)
		if errors.Is(err, errErased) {
			reason = []byte(ErasedText)
		} else if err != nil {
			return err
		}
		d.Reason = string(reason)
		d.Submitted, d.Eligible = claims.Zero(c.Total.Currency), claims.Zero(c.Total.Currency)
		decided, err := tx.lineDecisions(ctx, c.ID)
		if err != nil {
			return err
		}
		d.Lines = decided
		for _, ld := range decided {
			d.Submitted = d.Submitted.Add(ld.Submitted)
			d.Eligible = d.Eligible.Add(ld.Eligible)
		}
		c.Decision = &d
	}
	return nil
}

func (tx *Tx) claimLines(ctx context.Context, claimID, holderID claims.ID) ([]claims.LineItem, error) {
	rows, err := tx.query(ctx, `SELECT id, seq, category, description, service_date, currency, amount
		FROM claim_lines WHERE claim_id = ? ORDER BY seq`, claimID)
	if err != nil {
		return nil, fmt.Errorf("select lines of %s: %w", claimID, err)
	}
	type raw struct {
		l    claims.LineItem
		desc []byte
	}
	var list []raw
	for rows.Next() {
		var r raw
		var sd string
		if err := rows.Scan(&r.l.ID, &r.l.Seq, &r.l.Category, &r.desc, &sd, &r.l.Amount.Currency, &r.l.Amount.Minor); err != nil {
			rows.Close()
			return nil, err
		}
		r.l.ServiceDate, _ = claims.ParseDate(sd)
		list = append(list, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]claims.LineItem, 0, len(list))
	for _, r := range list {
		plain, err := tx.openFor(ctx, holderID, "claim_lines", "description", string(r.l.ID), r.desc)
		if errors.Is(err, errErased) {
			plain = []byte(ErasedText)
		} else if err != nil {
			return nil, err
		}
		r.l.Description = string(plain)
		out = append(out, r.l)
	}
	return out, nil
}

func (tx *Tx) lineDecisions(ctx context.Context, claimID claims.ID) ([]claims.LineDecision, error) {
	rows, err := tx.query(ctx, `SELECT id, seq, currency, amount, COALESCE(eligible, 0), COALESCE(deductible_applied, 0),
		COALESCE(coinsurance_applied, 0), COALESCE(limit_applied, 0), COALESCE(benefit, 0), reasons
		FROM claim_lines WHERE claim_id = ? ORDER BY seq`, claimID)
	if err != nil {
		return nil, fmt.Errorf("select line decisions of %s: %w", claimID, err)
	}
	defer rows.Close()
	var out []claims.LineDecision
	for rows.Next() {
		var (
			ld                           claims.LineDecision
			cur, reasons                 string
			amt, el, ded, co, lim, benef int64
		)
		if err := rows.Scan(&ld.LineID, &ld.Seq, &cur, &amt, &el, &ded, &co, &lim, &benef, &reasons); err != nil {
			return nil, err
		}
		m := func(n int64) claims.Money { return claims.Money{Minor: n, Currency: cur} }
		ld.Submitted, ld.Eligible, ld.DeductibleApplied, ld.CoinsuranceApplied, ld.LimitApplied, ld.Benefit =
			m(amt), m(el), m(ded), m(co), m(lim), m(benef)
		for _, r := range strings.Split(reasons, ",") {
			if r != "" {
				ld.Reasons = append(ld.Reasons, claims.ReasonCode(r))
			}
		}
		out = append(out, ld)
	}
	return out, rows.Err()
}

// Claim returns claim id with its lines, text and decision.
func (tx *Tx) Claim(ctx context.Context, id claims.ID) (claims.Claim, error) {
	return tx.claim(ctx, id, "")
}

// ClaimForUpdate is Claim with the row locked until the transaction ends
// (PostgreSQL), for read-modify-write.
func (tx *Tx) ClaimForUpdate(ctx context.Context, id claims.ID) (claims.Claim, error) {
	return tx.claim(ctx, id, tx.forUpdate())
}

func (tx *Tx) claim(ctx context.Context, id claims.ID, lock string) (claims.Claim, error) {
	c, r, err := scanClaim(tx.queryRow(ctx, `SELECT `+claimColumns+` FROM claims WHERE id = ?`+lock, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, claims.Errorf(claims.NotFound, "Claim not found.")
	}
	if err != nil {
		return c, fmt.Errorf("select claim %s: %w", id, err)
	}
	if err := tx.openClaim(ctx, &c, r, true); err != nil {
		return c, err
	}
	return c, nil
}

// UpdateClaim writes c's mutable state (status, assignee, payable, decision,
// flags, appeal) if the stored version is still c.Version, and bumps the
// version. A stale version is PreconditionFailed: someone else won.
func (tx *Tx) UpdateClaim(ctx context.Context, c *claims.Claim) error {
	var (
		outcome    string
		reason     []byte
		ded        int64
		decidedAt  any
		err        error
		newVersion = c.Version + 1
	)
	if d := c.Decision; d != nil {
		outcome, ded, decidedAt = string(d.Outcome), d.DeductibleApplied.Minor, micros(d.DecidedAt)
		if reason, err = tx.sealFor(ctx, c.HolderID, "claims", "decision_reason", string(c.ID), []byte(d.Reason)); err != nil {
			return err
		}
	}
	res, err := tx.exec(ctx, `UPDATE claims SET status = ?, assignee_id = ?, payable = ?, outcome = ?, decision_reason = ?,
		deductible_applied = ?, decided_by = ?, decided_at = ?, appealed = ?, flags = ?, version = ?, updated_at = ?,
		proposed_by = ? WHERE id = ? AND version = ?`,
		c.Status, nullID(c.AssigneeID), c.Payable.Minor, outcome, reason, ded, nullID(c.DecidedBy), decidedAt,
		b2i(c.Appealed), flagText(c.Flags), newVersion, micros(c.UpdatedAt), nullID(c.ProposedBy), c.ID, c.Version)
	if err != nil {
		return fmt.Errorf("update claim %s: %w", c.ID, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return claims.Errorf(claims.PreconditionFailed, "Claim %s was changed by someone else; reload it and try again.", c.Number)
	}
	if d := c.Decision; d != nil && len(d.Lines) > 0 {
		for _, ld := range d.Lines {
			reasons := make([]string, len(ld.Reasons))
			for i, r := range ld.Reasons {
				reasons[i] = string(r)
			}
			if _, err := tx.exec(ctx, `UPDATE claim_lines SET eligible = ?, deductible_applied = ?, coinsurance_applied = ?,
				limit_applied = ?, benefit = ?, reasons = ? WHERE id = ? AND claim_id = ?`,
				ld.Eligible.Minor, ld.DeductibleApplied.Minor, ld.CoinsuranceApplied.Minor, ld.LimitApplied.Minor,
				ld.Benefit.Minor, strings.Join(reasons, ","), ld.LineID, c.ID); err != nil {
				return fmt.Errorf("update line decision: %w", err)
			}
		}
	}
	c.Version = newVersion
	return nil
}

// InsertTransition records one status change in the claim's history.
func (tx *Tx) InsertTransition(ctx context.Context, holder claims.ID, t claims.Transition) error {
	var reason []byte
	if t.Reason != "" {
		var err error
		// The row id is not known before the insert, so the reason is bound
		// to the claim and the instant instead.
		if reason, err = tx.sealFor(ctx, holder, "claim_transitions", "reason", string(t.ClaimID)+"@"+fmt.Sprint(micros(t.At))+"@"+string(t.To), []byte(t.Reason)); err != nil {
			return err
		}
	}
	_, err := tx.exec(ctx, `INSERT INTO claim_transitions (claim_id, from_status, to_status, actor_id, reason, at)
		VALUES (?, ?, ?, ?, ?, ?)`, t.ClaimID, t.From, t.To, nullID(t.ActorID), reason, micros(t.At))
	if err != nil {
		return fmt.Errorf("insert transition: %w", err)
	}
	return nil
}

// Transitions returns a claim's history, oldest first.
func (tx *Tx) Transitions(ctx context.Context, claimID, holder claims.ID) ([]claims.Transition, error) {
	rows, err := tx.query(ctx, `SELECT from_status, to_status, actor_id, reason, at FROM claim_transitions
		WHERE claim_id = ? ORDER BY id`, claimID)
	if err != nil {
		return nil, fmt.Errorf("select history of %s: %w", claimID, err)
	}
	type raw struct {
		t      claims.Transition
		reason []byte
	}
	var list []raw
	for rows.Next() {
		var r raw
		var actor sql.NullString
		var at int64
		if err := rows.Scan(&r.t.From, &r.t.To, &actor, &r.reason, &at); err != nil {
			rows.Close()
			return nil, err
		}
		r.t.ClaimID, r.t.ActorID, r.t.At = claimID, claims.ID(actor.String), fromMicros(at)
		list = append(list, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]claims.Transition, 0, len(list))
	for _, r := range list {
		if r.reason != nil {
			plain, err := tx.openFor(ctx, holder, "claim_transitions", "reason",
				string(claimID)+"@"+fmt.Sprint(micros(r.t.At))+"@"+string(r.t.To), r.reason)
			if errors.Is(err, errErased) {
				plain = []byte(ErasedText)
			} else if err != nil {
				return nil, err
			}
			r.t.Reason = string(plain)
		}
		out = append(out, r.t)
	}
	return out, nil
}

// ClaimFilter selects claims. Zero fields match everything; the access
// fields (HolderID, VisibleTo) are set by workflow from the principal, never
// from client input.
type ClaimFilter struct {
	HolderID claims.ID // only this holder's claims (customers)
	// VisibleTo limits to claims assigned to this user or waiting unassigned
	// in the intake queue (processors without claims.read.any).
	VisibleTo claims.ID
	// AnyUpTo, with a delegated claims.read.any scoped to an amount, also
	// shows claims whose total is at most this many minor units.
	AnyUpTo int64
	// ExcludeDrafts hides drafts (staff never see them).
	ExcludeDrafts bool
	Status        []claims.Status
	AssigneeID    claims.ID
	Unassigned    bool
	PolicyID      claims.ID
	IncidentFrom  claims.Date
	IncidentTo    claims.Date
	After         Cursor
	Limit         int
}

// Claims lists claims newest first, without lines.
func (tx *Tx) Claims(ctx context.Context, f ClaimFilter) ([]claims.Claim, error) {
	q := `SELECT ` + claimColumns + ` FROM claims WHERE 1=1`
	var args []any
	if f.HolderID != "" {
		q += ` AND holder_id = ?`
		args = append(args, f.HolderID)
	}
	switch {
	case f.VisibleTo != "" && f.AnyUpTo > 0:
		q += ` AND (assignee_id = ? OR assignee_id IS NULL OR total <= ?)`
		args = append(args, f.VisibleTo, f.AnyUpTo)
	case f.VisibleTo != "":
		q += ` AND (assignee_id = ? OR assignee_id IS NULL)`
		args = append(args, f.VisibleTo)
	case f.AnyUpTo > 0:
		q += ` AND total <= ?`
		args = append(args, f.AnyUpTo)
	}
	if f.ExcludeDrafts {
		q += ` AND status <> 'draft'`
	}
	if len(f.Status) > 0 {
		q += ` AND status IN (?` + strings.Repeat(", ?", len(f.Status)-1) + `)`
		for _, s := range f.Status {
			args = append(args, s)
		}
	}
	if f.AssigneeID != "" {
		q += ` AND assignee_id = ?`
		args = append(args, f.AssigneeID)
	}
	if f.Unassigned {
		q += ` AND assignee_id IS NULL`
	}
	if f.PolicyID != "" {
		q += ` AND policy_id = ?`
		args = append(args, f.PolicyID)
	}
	if !f.IncidentFrom.IsZero() {
		q += ` AND incident_date >= ?`
		args = append(args, f.IncidentFrom.String())
	}
	if !f.IncidentTo.IsZero() {
		q += ` AND incident_date <= ?`
		args = append(args, f.IncidentTo.String())
	}
	if !f.After.IsZero() {
		q += ` AND (created_at < ? OR (created_at = ? AND id < ?))`
		args = append(args, f.After.At, f.After.At, f.After.ID)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, limitOr(f.Limit))
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list claims: %w", err)
	}
	type item struct {
		c claims.Claim
		r rawClaim
	}
	var items []item
	for rows.Next() {
		c, r, err := scanClaim(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan claim: %w", err)
		}
		items = append(items, item{c, r})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// The page's subject keys in one query, not one per holder.
	holders := make([]claims.ID, len(items))
	for i, it := range items {
		holders[i] = it.c.HolderID
	}
	if err := tx.loadHolderKeys(ctx, holders); err != nil {
		return nil, err
	}
	out := make([]claims.Claim, 0, len(items))
	for _, it := range items {
		if err := tx.openClaim(ctx, &it.c, it.r, false); err != nil {
			return nil, err
		}
		out = append(out, it.c)
	}
	return out, nil
}

// ClaimsOnIncident returns the claims on policy p for incident date d, for
// duplicate detection. Given a total (near), it returns at most one claim,
// one that claims.(*Claim).IsLikelyDuplicate would match for a new claim of
// that total: same currency, not withdrawn, totals within 1% of the larger
// (|a-b|*100 <= max(a,b), in integers as there), found by the database with
// LIMIT 1 instead of reading every claim of that day.
func (tx *Tx) ClaimsOnIncident(ctx context.Context, policyID claims.ID, d claims.Date, near ...claims.Money) ([]claims.Claim, error) {
	q := `SELECT id, policy_id, incident_date, currency, total, status FROM claims
		WHERE policy_id = ? AND incident_date = ?`
	args := []any{policyID, d.String()}
	if len(near) > 0 {
		larger := "MAX(total, ?)"
		if tx.db.dialect == Postgres {
			larger = "GREATEST(total, ?)"
		}
		q += ` AND currency = ? AND status <> ? AND ABS(total - ?) * 100 <= ` + larger + ` LIMIT 1`
		args = append(args, near[0].Currency, claims.StatusWithdrawn, near[0].Minor, near[0].Minor)
	}
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("claims on incident: %w", err)
	}
	defer rows.Close()
	var out []claims.Claim
	for rows.Next() {
		var c claims.Claim
		var inc string
		if err := rows.Scan(&c.ID, &c.PolicyID, &inc, &c.Total.Currency, &c.Total.Minor, &c.Status); err != nil {
			return nil, err
		}
		c.IncidentDate, _ = claims.ParseDate(inc)
		out = append(out, c)
	}
	return out, rows.Err()
}

// CursorOf returns the cursor after claim c in a list.
func CursorOf(id claims.ID, created int64) Cursor { return Cursor{At: created, ID: id} }

func flagText(f []claims.Flag) string {
	s := make([]string, len(f))
	for i, x := range f {
		s[i] = string(x)
	}
	return strings.Join(s, ",")
}

func parseFlags(s string) []claims.Flag {
	if s == "" {
		return nil
	}
	var out []claims.Flag
	for _, x := range strings.Split(s, ",") {
		out = append(out, claims.Flag(x))
	}
	return out
}

// Payment is money sent for a decided claim.
type Payment struct {
	ID        claims.ID
	ClaimID   claims.ID
	Amount    claims.Money
	Reference string
	PaidBy    claims.ID
	PaidAt    int64
}

// InsertPayment records the payment of a claim; a claim is paid once.
func (tx *Tx) InsertPayment(ctx context.Context, p Payment) error {
	_, err := tx.exec(ctx, `INSERT INTO payments (id, claim_id, currency, amount, reference, paid_by, paid_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, p.ID, p.ClaimID, p.Amount.Currency, p.Amount.Minor, p.Reference, p.PaidBy, micros(tx.now))
	if isUniqueViolation(err) {
		return claims.Errorf(claims.Conflict, "This claim has been paid already.")
	}
	if err != nil {
		return fmt.Errorf("insert payment: %w", err)
	}
	return nil
}

// ImportedBefore reports whether a claim from source with key exists.
func (tx *Tx) ImportedBefore(ctx context.Context, source, key string) (bool, error) {
	var n int
	err := tx.queryRow(ctx, `SELECT COUNT(*) FROM claims WHERE source = ? AND source_key = ?`, "import:"+source, key).Scan(&n)
	return n > 0, err
}

// decisionStatus is the status an adjudication outcome leads to.
func decisionStatus(outcome string, payable, total int64) claims.Status {
	switch {
	case outcome == string(claims.OutcomeDeny) || payable == 0:
		return claims.StatusDenied
	case payable == total:
		return claims.StatusApproved
	}
	return claims.StatusPartiallyApproved
}
