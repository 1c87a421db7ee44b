package workflow_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/seal"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
	"github.com/openclaims/claims/internal/workflow"
)

// privacyFixture is a customer with a policy, an admin and a processor.
type privacyFixture struct {
	s                *workflow.Service
	cust, admin, pro claims.Principal
	policy           claims.Policy
}

func newPrivacyFixture(t testing.TB, d store.Dialect) privacyFixture {
	t.Helper()
	ctx := context.Background()
	s, _ := newIdentityService(asT(t), d)
	f := privacyFixture{s: s}
	u, err := s.CreateUser(ctx, "", "cust@example.com", passphrase, claims.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	f.cust = claims.Principal{UserID: u.ID, Role: claims.RoleCustomer, HolderID: u.HolderID, SessionID: claims.NewID()}
	a, err := s.CreateUser(ctx, "", "admin@example.com", passphrase, claims.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	f.admin = claims.Principal{UserID: a.ID, Role: claims.RoleAdmin, MFAEnrolled: true, MFAAt: time.Now(), SessionID: claims.NewID()}
	pr, err := s.CreateUser(ctx, "", "proc@example.com", passphrase, claims.RoleClaimsProcessor)
	if err != nil {
		t.Fatal(err)
	}
	f.pro = claims.Principal{UserID: pr.ID, Role: claims.RoleClaimsProcessor, SessionID: claims.NewID()}
	usd := func(m int64) claims.Money { return claims.Money{Minor: m, Currency: "USD"} }
	eff, _ := claims.ParseDate("2026-01-01")
	exp, _ := claims.ParseDate("2026-12-31")
	f.policy, err = s.CreatePolicy(ctx, f.admin, workflow.NewPolicyRequest{Policy: claims.Policy{Number: "HLTH-1", ProductLine: claims.LineHealth,
		EffectiveDate: eff, ExpiryDate: exp, CoverageLimit: usd(10_000_000), Deductible: usd(0), Premium: usd(90000), CoinsuranceBP: 10000},
		HolderEmail: "cust@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// asT lets the fixture run under benchmarks too.
func asT(t testing.TB) *testing.T {
	if tt, ok := t.(*testing.T); ok {
		return tt
	}
	return &testing.T{}
}

func claimInput(lines int) claims.NewClaimInput {
	inc, _ := claims.ParseDate("2026-03-01")
	in := claims.NewClaimInput{PolicyNumber: "HLTH-1", Type: "illness", IncidentDate: inc,
		Description: "Admitted with community-acquired pneumonia; chest X-ray and antibiotics.", Location: "St Mary's", Currency: "USD"}
	for i := 0; i < lines; i++ {
		in.Lines = append(in.Lines, claims.NewLineInput{Category: "hospital", Description: fmt.Sprintf("Ward day %d, IV antibiotics", i+1),
			ServiceDate: inc, Amount: claims.Money{Minor: 45000, Currency: "USD"}})
	}
	return in
}

func TestExportAndErasureWorkflow(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		ctx := context.Background()
		f := newPrivacyFixture(t, d)
		c, _, err := f.s.FileClaim(ctx, f.cust, workflow.FileRequest{Input: claimInput(2), Submit: true})
		if err != nil {
			t.Fatal(err)
		}
		x, err := f.s.ExportSubject(ctx, f.cust)
		if err != nil || len(x.Claims) != 1 || x.Claims[0].Description != c.Description || x.Account.Email != "cust@example.com" {
			t.Fatalf("export %+v %v", x, err)
		}
		if _, err := f.s.ExportSubject(ctx, f.pro); claims.KindOf(err) != claims.NotFound {
			t.Errorf("staff without a holder record: %v", err)
		}
		req, err := f.s.RequestErasure(ctx, f.cust)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.ApproveErasure(ctx, f.pro, req.ID); claims.KindOf(err) != claims.Forbidden {
			t.Errorf("processor approved an erasure: %v", err)
		}
		stale := f.admin
		stale.MFAAt = time.Now().Add(-time.Hour)
		if _, err := f.s.ApproveErasure(ctx, stale, req.ID); err == nil || !strings.Contains(err.Error(), "second-factor") {
			t.Errorf("approval without step-up: %v", err)
		}
		done, err := f.s.ApproveErasure(ctx, f.admin, req.ID)
		if err != nil || done.Status != store.ErasureApproved {
			t.Fatalf("approve: %+v %v", done, err)
		}
		if _, err := f.s.ApproveErasure(ctx, f.admin, req.ID); claims.KindOf(err) != claims.Conflict {
			t.Errorf("second approval: %v", err)
		}
		got, err := f.s.Claim(ctx, f.pro, c.ID)
		if err != nil || got.Description != store.ErasedText || got.Total.Minor != 90000 {
			t.Fatalf("claim after erasure: %+v %v", got, err)
		}
		if _, err := f.s.Login(ctx, "cust@example.com", passphrase); err == nil {
			t.Error("erased customer can sign in")
		}
		if n, err := f.s.DB().VerifyAudit(ctx); err != nil || n == 0 {
			t.Errorf("audit chain after erasure: %d %v", n, err)
		}
	})
}

// BenchmarkClaimEncryption measures what encryption adds to filing and
// reading a claim. With the subject-key design a claim of L lines costs,
// on create: 1 UnwrapDEK (the holder's key, once per transaction) and 1+L
// DEK.Seal (details, one per line); on read (with a decision): 1
// UnwrapDEK and 2+L DEK.Open (details, decision reason, lines). The
// sub-benchmarks time the whole workflow call and exactly those crypto
// operations; docs/data-protection.md records the share.
func BenchmarkClaimEncryption(b *testing.B) {
	const lines = 3
	ctx := context.Background()
	f := newPrivacyFixture(b, store.SQLite)
	c, _, err := f.s.FileClaim(ctx, f.cust, workflow.FileRequest{Input: claimInput(lines), Submit: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("workflow-file", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := f.s.FileClaim(ctx, f.cust, workflow.FileRequest{Input: claimInput(lines), Submit: true}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("workflow-read", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.s.Claim(ctx, f.pro, c.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	keys := storetest.Keys(b)
	aad := seal.AAD("policyholders", "subject_key", "0123456789abcdef0123456789abcdef")
	_, wrapped, _ := keys.Ring.NewDEK(aad)
	details := []byte(`{"description":"Admitted with community-acquired pneumonia; chest X-ray and antibiotics.","location":"St Mary's"}`)
	line := []byte("Ward day 1, IV antibiotics")
	b.Run("crypto-file", func(b *testing.B) {
		for b.Loop() {
			dek, err := keys.Ring.UnwrapDEK(wrapped, aad)
			if err != nil {
				b.Fatal(err)
			}
			dek.Seal(details, seal.AAD("claims", "details", "x"))
			for i := 0; i < lines; i++ {
				dek.Seal(line, seal.AAD("claim_lines", "description", "x"))
			}
		}
	})
	dek, _ := keys.Ring.UnwrapDEK(wrapped, aad)
	sd, _ := dek.Seal(details, seal.AAD("claims", "details", "x"))
	sr, _ := dek.Seal([]byte("Covered under the hospital benefit."), seal.AAD("claims", "decision_reason", "x"))
	sl, _ := dek.Seal(line, seal.AAD("claim_lines", "description", "x"))
	b.Run("crypto-read", func(b *testing.B) {
		for b.Loop() {
			dek, err := keys.Ring.UnwrapDEK(wrapped, aad)
			if err != nil {
				b.Fatal(err)
			}
			dek.Open(sd, seal.AAD("claims", "details", "x"))
			dek.Open(sr, seal.AAD("claims", "decision_reason", "x"))
			for i := 0; i < lines; i++ {
				dek.Open(sl, seal.AAD("claim_lines", "description", "x"))
			}
		}
	})
}
