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

// ImportBatch implements importer.Sink.
func (k *ImportSink) ImportBatch(ctx context.Context, source string, recs []importer.Record) (int, error) {
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
			h, pol, c := r.Holder, r.Policy, r.Claim
			if err := tx.InsertHolder(ctx, h, source, r.Key); err != nil {
				return fmt.Errorf("line %d: %w", r.Line, err)
			}
			pol.Number = claims.NormalizePolicyNumber(pol.Number)
			if err := tx.InsertPolicy(ctx, pol); err != nil {
				return fmt.Errorf("line %d: %w", r.Line, err)
			}
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
			if err := tx.InsertClaim(ctx, c, r.Key); err != nil {
				return fmt.Errorf("line %d: %w", r.Line, err)
			}
			created++
		}
		return tx.AppendAudit(ctx, claims.AuditEntry{ActorID: k.actor, Action: "import.batch", ObjectType: "import",
			ObjectID: source, Outcome: "ok", Details: map[string]string{"rows": strconv.Itoa(len(recs)), "created": strconv.Itoa(created)}})
	})
	return created, err
}
