package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
)

// importRows builds n import rows with keys prefix-0.. : a holder (one
// without e-mail, so sealed and NULL columns both occur), a policy and a
// claim with two lines each.
func importRows(prefix string, n int) []store.ImportRow {
	var out []store.ImportRow
	for i := range n {
		h := claims.Policyholder{ID: claims.NewID(), FullName: claims.Secret(fmt.Sprintf("Holder %s %d", prefix, i)),
			Attributes: map[string]string{"age": fmt.Sprint(20 + i), "note": "a<b & \"c\""}}
		if i%2 == 0 {
			h.Email = claims.Secret(fmt.Sprintf("h%d@example.com", i))
		}
		p := claims.Policy{ID: claims.NewID(), Number: fmt.Sprintf("IMP-%s-%d", prefix, i), HolderID: h.ID,
			ProductLine: claims.LineAuto, Status: claims.PolicyActive, EffectiveDate: date("2026-01-01"),
			ExpiryDate: date("2026-12-31"), CoverageLimit: usd(100000), Deductible: usd(500), Premium: usd(60000),
			CoinsuranceBP: 10000}
		c := claimOn(p, "2026-03-04", time.Now(), fmt.Sprintf("Imported %s %d", prefix, i), 1000, 250)
		c.Source = "import:test"
		c.Flags = []claims.Flag{claims.FlagPossibleDuplicate}
		out = append(out, store.ImportRow{Key: fmt.Sprintf("%s-%d", prefix, i), Holder: h, Policy: p, Claim: c})
	}
	return out
}

// TestInsertImported checks the set-based import writes what the row by
// row inserts write: holders with their own subject key and readable PII,
// claims with sealed text and lines, keys found again by ImportedKeys; and
// that a constraint failure fails the whole call.
func TestInsertImported(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		db := storetest.Open(t, d)
		rows := importRows("a", 7)
		tx(t, db, func(tx *store.Tx) error { return tx.InsertImported(ctx, "test", rows) })
		tx(t, db, func(tx *store.Tx) error {
			for i, r := range rows {
				h, err := tx.Holder(ctx, r.Holder.ID)
				if err != nil {
					return err
				}
				if h.FullName != r.Holder.FullName || h.Email != r.Holder.Email || h.Attributes["note"] != "a<b & \"c\"" {
					t.Errorf("row %d: holder %+v", i, h)
				}
				c, err := tx.Claim(ctx, r.Claim.ID)
				if err != nil {
					return err
				}
				if c.Description != r.Claim.Description || c.Location != "Springfield" || len(c.Lines) != 2 ||
					c.Lines[1].Description != r.Claim.Lines[1].Description || c.Total != usd(1250) ||
					c.Source != "import:test" || len(c.Flags) != 1 {
					t.Errorf("row %d: claim %+v", i, c)
				}
			}
			seen, err := tx.ImportedKeys(ctx, "test", []string{"a-0", "a-6", "b-0", "a-7"})
			if err != nil {
				return err
			}
			if len(seen) != 2 || !seen["a-0"] || !seen["a-6"] {
				t.Errorf("ImportedKeys = %v", seen)
			}
			// Listing opens every holder's text with the keys loaded in one query.
			list, err := tx.Claims(ctx, store.ClaimFilter{Limit: 100})
			if err != nil {
				return err
			}
			if len(list) != 7 {
				t.Errorf("listed %d", len(list))
			}
			for _, c := range list {
				if c.Description == "" || c.Description == store.ErasedText {
					t.Errorf("listed claim text %q", c.Description)
				}
			}
			return nil
		})
		// A policy number taken: nothing of the batch is stored.
		again := importRows("b", 3)
		again[2].Policy.Number = rows[0].Policy.Number
		err := db.InTx(ctx, func(tx *store.Tx) error { return tx.InsertImported(ctx, "test", again) })
		if err == nil {
			t.Fatal("duplicate policy number accepted")
		}
		tx(t, db, func(tx *store.Tx) error {
			seen, err := tx.ImportedKeys(ctx, "test", []string{"b-0", "b-1", "b-2"})
			if len(seen) != 0 {
				t.Errorf("failed batch left %v", seen)
			}
			return err
		})
	})
}

// TestClaimsOnIncidentNear checks the SQL duplicate filter against the
// domain rule, on both engines: same policy, day and currency, not
// withdrawn, totals within 1% of the larger.
func TestClaimsOnIncidentNear(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		db := storetest.Open(t, d)
		h := newHolder(t, db, claims.Policyholder{FullName: "Dup Holder"})
		p := newPolicy(t, db, h.ID, 10000000)
		base := insertClaim(t, db, claimOn(p, "2026-02-01", time.Now(), "base", 100000)) // 1,000.00
		w := claimOn(p, "2026-02-01", time.Now(), "withdrawn", 200000)
		w.Status = claims.StatusWithdrawn
		insertClaim(t, db, w)
		insertClaim(t, db, claimOn(p, "2026-02-02", time.Now(), "other day", 100000))
		for _, tt := range []struct {
			total int64
			day   string
			dup   bool
		}{
			{100000, "2026-02-01", true}, {101000, "2026-02-01", true}, {99000, "2026-02-01", true},
			{101011, "2026-02-01", false}, {98900, "2026-02-01", false}, {200000, "2026-02-01", false},
			{100000, "2026-02-03", false},
		} {
			c := claimOn(p, tt.day, time.Now(), "new", tt.total)
			var got []claims.Claim
			tx(t, db, func(tx *store.Tx) error {
				var err error
				got, err = tx.ClaimsOnIncident(ctx, p.ID, c.IncidentDate, c.Total)
				return err
			})
			if (len(got) == 1) != tt.dup || len(got) > 1 {
				t.Errorf("total %d on %s: got %d claims, want duplicate %v", tt.total, tt.day, len(got), tt.dup)
			}
			if len(got) == 1 && (got[0].ID != base.ID || !c.IsLikelyDuplicate(got[0])) {
				t.Errorf("total %d: found %+v", tt.total, got[0])
			}
		}
		var all []claims.Claim
		tx(t, db, func(tx *store.Tx) error {
			var err error
			all, err = tx.ClaimsOnIncident(ctx, p.ID, date("2026-02-01"))
			return err
		})
		if len(all) != 2 {
			t.Errorf("without a total: %d claims, want both of the day", len(all))
		}
	})
}
