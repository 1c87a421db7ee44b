package workflow

import (
	"context"
	"fmt"
	"strconv"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/importer"
	"github.com/openclaims/claims/internal/store"
)

// ImportSink stores importer batches: each batch is one transaction, so a
// failure leaves no half-written record, and rows seen before (same source
// and key) are skipped, so re-running an import adds nothing.
type ImportSink struct {
	s     *Service
	actor claims.ID
}

// ImportSink returns a sink that records actor as the importer.
func (s *Service) ImportSink(actor claims.ID) *ImportSink { return &ImportSink{s: s, actor: actor} }

// ImportBatch implements importer.Sink. The batch is written set-based: one
// query finds the keys imported before, and multi-row INSERTs store the
// holders, policies, claims and lines (see store.InsertImported). If that
// fails, its transaction has rolled back and the batch is run again row by
// row, so a bad row is reported with its line number as before.
func (k *ImportSink) ImportBatch(ctx context.Context, source string, recs []importer.Record) (int, error) {
	created, err := k.importSet(ctx, source, recs)
	if err == nil || ctx.Err() != nil {
		return created, err
	}
	return k.importRows(ctx, source, recs)
}

// prepare sets what the sink assigns on a record: policy number form, claim
// number, filer, version and times.
func (k *ImportSink) prepare(tx *store.Tx, r importer.Record) (claims.Policyholder, claims.Policy, claims.Claim) {
	h, pol, c := r.Holder, r.Policy, r.Claim
	pol.Number = claims.NormalizePolicyNumber(pol.Number)
	year := c.ReportedDate.Year()
	if year == 0 {
		year = tx.Now().Year()
	}
	c.Number = store.NewClaimNumber(year)
	c.FiledBy = k.actor
	if c.Version == 0 {
		c.Version = 1
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt, c.UpdatedAt = tx.Now(), tx.Now()
	}
	return h, pol, c
}

func (k *ImportSink) audit(ctx context.Context, tx *store.Tx, source string, rows, created int) error {
	return tx.AppendAudit(ctx, claims.AuditEntry{ActorID: k.actor, Action: "import.batch", ObjectType: "import",
		ObjectID: source, Outcome: "ok", Details: map[string]string{"rows": strconv.Itoa(rows), "created": strconv.Itoa(created)}})
}

// importSet stores the batch with set-based statements in one transaction.
func (k *ImportSink) importSet(ctx context.Context, source string, recs []importer.Record) (int, error) {
	created := 0
	err := k.s.db.InTx(ctx, func(tx *store.Tx) error {
		keys := make([]string, len(recs))
		for i, r := range recs {
			keys[i] = r.Key
		}
		seen, err := tx.ImportedKeys(ctx, source, keys)
		if err != nil {
			return err
		}
		rows := make([]store.ImportRow, 0, len(recs))
		for _, r := range recs {
			if seen[r.Key] {
				continue
			}
			seen[r.Key] = true // a key repeated in the batch is imported once, as row by row
			h, pol, c := k.prepare(tx, r)
			rows = append(rows, store.ImportRow{Key: r.Key, Holder: h, Policy: pol, Claim: c})
		}
		if err := tx.InsertImported(ctx, source, rows); err != nil {
			return err
		}
		created = len(rows)
		return k.audit(ctx, tx, source, len(recs), created)
	})
	return created, err
}

// importRows stores the batch one record at a time in one transaction.
func (k *ImportSink) importRows(ctx context.Context, source string, recs []importer.Record) (int, error) {
	created := 0
	err := k.s.db.InTx(ctx, func(tx *store.Tx) error {
		created = 0
		for _, r := range recs {
			seen, err := tx.ImportedBefore(ctx, source, r.Key)
			if err != nil {
				return err
			}
			if seen {
				continue
			}
			h, pol, c := k.prepare(tx, r)
			if err := tx.InsertHolder(ctx, h, source, r.Key); err != nil {
				return fmt.Errorf("line %d: %w", r.Line, err)
			}
			if err := tx.InsertPolicy(ctx, pol); err != nil {
				return fmt.Errorf("line %d: %w", r.Line, err)
			}
			if err := tx.InsertClaim(ctx, c, r.Key); err != nil {
				return fmt.Errorf("line %d: %w", r.Line, err)
			}
			created++
		}
		return k.audit(ctx, tx, source, len(recs), created)
	})
	return created, err
}
