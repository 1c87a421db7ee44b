package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
)

// The fixtures below write through the store's own API, one transaction
// each, so every test starts from rows the product itself could have made.

var ctx = context.Background()

func tx(t *testing.T, db *store.DB, fn func(tx *store.Tx) error) {
	t.Helper()
	if err := db.InTx(ctx, fn); err != nil {
		t.Fatal(err)
	}
}

func usd(minor int64) claims.Money { return claims.Money{Minor: minor, Currency: "USD"} }

func date(s string) claims.Date {
	d, err := claims.ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

func newHolder(t *testing.T, db *store.DB, h claims.Policyholder) claims.Policyholder {
	t.Helper()
	if h.ID == "" {
		h.ID = claims.NewID()
	}
	tx(t, db, func(tx *store.Tx) error { return tx.InsertHolder(ctx, h, "", "") })
	return h
}

func newPolicy(t *testing.T, db *store.DB, holder claims.ID, limit int64) claims.Policy {
	t.Helper()
	id := claims.NewID()
	p := claims.Policy{ID: id, Number: "POL-" + strings.ToUpper(string(id[:10])), HolderID: holder, ProductLine: claims.LineAuto,
		Status: claims.PolicyActive, EffectiveDate: date("2026-01-01"), ExpiryDate: date("2026-12-31"),
		CoverageLimit: usd(limit), Deductible: usd(0), Premium: usd(60000), CoinsuranceBP: 10000,
		Attributes: map[string]string{"channel": "test"}}
	tx(t, db, func(tx *store.Tx) error { return tx.InsertPolicy(ctx, p) })
	return p
}

func newUser(t *testing.T, db *store.DB, email string, role claims.Role) claims.User {
	t.Helper()
	u := claims.User{ID: claims.NewID(), Email: email, Role: role, Status: claims.UserActive, PasswordHash: "$test$hash"}
	tx(t, db, func(tx *store.Tx) error { return tx.InsertUser(ctx, u) })
	return u
}

// claimOn builds (without storing) a claim on policy p with the given line
// amounts, created at the given instant.
func claimOn(p claims.Policy, incident string, at time.Time, desc string, amounts ...int64) claims.Claim {
	in := claims.NewClaimInput{PolicyNumber: p.Number, Type: "collision", IncidentDate: date(incident),
		Description: desc, Location: "Springfield", Currency: "USD"}
	for i, a := range amounts {
		cat := "vehicle"
		if i%2 == 1 {
			cat = "towing"
		}
		in.Lines = append(in.Lines, claims.NewLineInput{Category: cat, Description: desc + " line",
			ServiceDate: date(incident), Amount: usd(a)})
	}
	return claims.NewClaim(in, p, "", store.NewClaimNumber(2026), at.UTC().Truncate(time.Microsecond))
}

func insertClaim(t *testing.T, db *store.DB, c claims.Claim) claims.Claim {
	t.Helper()
	tx(t, db, func(tx *store.Tx) error { return tx.InsertClaim(ctx, c, "") })
	return c
}

func getClaim(t *testing.T, db *store.DB, id claims.ID) claims.Claim {
	t.Helper()
	var c claims.Claim
	tx(t, db, func(tx *store.Tx) error {
		var err error
		c, err = tx.Claim(ctx, id)
		return err
	})
	return c
}

func appendAudit(t *testing.T, db *store.DB, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		tx(t, db, func(tx *store.Tx) error {
			return tx.AppendAudit(ctx, claims.AuditEntry{ActorID: "actor", Action: "test.action",
				ObjectType: "claim", ObjectID: string(claims.NewID()), Details: map[string]string{"n": string(rune('a' + i))}})
		})
	}
}
