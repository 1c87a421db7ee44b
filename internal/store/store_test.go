package store_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
)

// rebind turns ? placeholders into $n for raw SQL on PostgreSQL.
func rebind(d store.Dialect, q string) string {
	if d != store.Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func rawExec(t *testing.T, db *store.DB, q string, args ...any) int64 {
	t.Helper()
	res, err := db.SQL().ExecContext(ctx, rebind(db.Dialect(), q), args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	n, _ := res.RowsAffected()
	return n
}

func rawCount(t *testing.T, db *store.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(ctx, rebind(db.Dialect(), q), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func migrationNames(t *testing.T, d store.Dialect) []string {
	t.Helper()
	entries, err := os.ReadDir("migrations/" + string(d))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestMigrationsMatch: every migration exists for both engines under the
// same name, so the two schemas move in step.
func TestMigrationsMatch(t *testing.T) {
	lite, pg := migrationNames(t, store.SQLite), migrationNames(t, store.Postgres)
	if len(lite) == 0 {
		t.Fatal("no migrations")
	}
	if !slices.Equal(lite, pg) {
		t.Fatalf("migrations differ:\n  sqlite:   %v\n  postgres: %v", lite, pg)
	}
	for _, n := range lite {
		if !strings.HasSuffix(n, ".sql") || len(n) < 9 || n[4] != '_' {
			t.Errorf("migration %q is not named NNNN_name.sql", n)
		}
	}
}

// TestMigrate: migrations apply, a second run changes nothing, and the
// version is reported.
func TestMigrate(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		t.Parallel()
		db := storetest.Open(t, d) // migrated once
		want := len(migrationNames(t, d))
		for i := 0; i < 2; i++ {
			n, err := db.Migrate(ctx)
			if err != nil || n != want {
				t.Fatalf("migrate again: %d, %v; want %d", n, err, want)
			}
		}
		applied, known, err := db.SchemaVersion(ctx)
		if err != nil || applied != want || known != want {
			t.Fatalf("SchemaVersion = %d, %d, %v; want %d, %d", applied, known, err, want, want)
		}
		if n := rawCount(t, db, `SELECT COUNT(*) FROM schema_migrations`); n != want {
			t.Fatalf("schema_migrations has %d rows, want %d", n, want)
		}
	})
}

// TestMigrateConcurrently: several nodes starting at once against one fresh
// database all succeed, and each migration is applied once.
func TestMigrateConcurrently(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		t.Parallel()
		url, keys := storetest.URL(t, d), storetest.Keys(t)
		const nodes = 4
		dbs := make([]*store.DB, nodes)
		for i := range dbs {
			db, err := store.Open(ctx, url, store.Options{Keys: keys.Ring, Index: keys.Index})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			dbs[i] = db
		}
		var wg sync.WaitGroup
		errs := make([]error, nodes)
		for i, db := range dbs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = db.Migrate(ctx)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("node %d: %v", i, err)
			}
		}
		if n := rawCount(t, dbs[0], `SELECT COUNT(*) FROM schema_migrations`); n != len(migrationNames(t, d)) {
			t.Fatalf("schema_migrations has %d rows", n)
		}
	})
}

func TestRoundTrip(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		t.Parallel()
		db := storetest.Open(t, d)

		// Policyholder: sealed personal data opens to what was stored.
		h := newHolder(t, db, claims.Policyholder{FullName: "Ada Lovelace", DateOfBirth: date("1815-12-10"),
			Email: "Ada@Example.com", Phone: "+44 20 7946 0000", Address: "12 St James's Square, London",
			NationalID: "QQ123456C", Attributes: map[string]string{"occupation": "mathematician"}})
		var got claims.Policyholder
		tx(t, db, func(tx *store.Tx) error {
			var err error
			got, err = tx.Holder(ctx, h.ID)
			return err
		})
		if got.FullName != h.FullName || got.Email != h.Email || got.Phone != h.Phone || got.Address != h.Address ||
			got.NationalID != h.NationalID || got.DateOfBirth != h.DateOfBirth || got.Erased ||
			got.Attributes["occupation"] != "mathematician" || got.CreatedAt.IsZero() {
			t.Fatalf("holder round trip: %+v", got)
		}
		tx(t, db, func(tx *store.Tx) error {
			ids, err := tx.HoldersByEmail(ctx, "  ada@example.COM ")
			if err != nil || len(ids) != 1 || ids[0] != h.ID {
				t.Errorf("HoldersByEmail = %v, %v", ids, err)
			}
			_, err = tx.Holder(ctx, claims.NewID())
			if claims.KindOf(err) != claims.NotFound {
				t.Errorf("missing holder: %v", err)
			}
			return nil
		})

		// Policy, by id and by number; a duplicate number is refused.
		pol := newPolicy(t, db, h.ID, 100000)
		tx(t, db, func(tx *store.Tx) error {
			p, err := tx.Policy(ctx, pol.ID)
			if err != nil || p.Number != pol.Number || p.CoverageLimit != pol.CoverageLimit || p.HolderID != h.ID ||
				p.EffectiveDate != pol.EffectiveDate || p.ExpiryDate != pol.ExpiryDate || p.Attributes["channel"] != "test" {
				t.Errorf("policy round trip: %+v, %v", p, err)
			}
			if p, err = tx.PolicyByNumber(ctx, " "+strings.ToLower(pol.Number)+" "); err != nil || p.ID != pol.ID {
				t.Errorf("PolicyByNumber: %+v, %v", p, err)
			}
			list, err := tx.Policies(ctx, store.PolicyFilter{HolderID: h.ID})
			if err != nil || len(list) != 1 {
				t.Errorf("Policies: %d, %v", len(list), err)
			}
			return nil
		})
		dup := pol
		dup.ID = claims.NewID()
		if err := db.InTx(ctx, func(tx *store.Tx) error { return tx.InsertPolicy(ctx, dup) }); claims.KindOf(err) != claims.Invalid {
			t.Errorf("duplicate policy number: %v", err)
		}

		// Users: the email is found through the blind index, whatever its case.
		proc := newUser(t, db, "Proc@Example.com", claims.RoleClaimsProcessor)
		tx(t, db, func(tx *store.Tx) error {
			u, err := tx.UserByEmail(ctx, " proc@EXAMPLE.com")
			if err != nil || u.ID != proc.ID || u.Email != "proc@example.com" || u.Role != claims.RoleClaimsProcessor ||
				u.PasswordHash != proc.PasswordHash || u.Status != claims.UserActive {
				t.Errorf("UserByEmail: %+v, %v", u, err)
			}
			if u, err = tx.User(ctx, proc.ID); err != nil || u.Email != "proc@example.com" {
				t.Errorf("User: %+v, %v", u, err)
			}
			if _, err := tx.UserByEmail(ctx, "nobody@example.com"); claims.KindOf(err) != claims.NotFound {
				t.Errorf("unknown email: %v", err)
			}
			if n, err := tx.CountUsers(ctx, claims.RoleClaimsProcessor); err != nil || n != 1 {
				t.Errorf("CountUsers = %d, %v", n, err)
			}
			return tx.UpdatePassword(ctx, proc.ID, "$new$hash")
		})
		err := db.InTx(ctx, func(tx *store.Tx) error {
			return tx.InsertUser(ctx, claims.User{ID: claims.NewID(), Email: "PROC@example.com", Role: claims.RoleCustomer,
				Status: claims.UserActive, PasswordHash: "x"})
		})
		if claims.KindOf(err) != claims.Conflict {
			t.Errorf("taken email: %v", err)
		}

		// A claim with lines: text sealed and opened, amounts and dates kept.
		c := claimOn(pol, "2026-03-01", time.Now(), "Rear-ended at a red light", 50000, 15000)
		c.Flags = []claims.Flag{claims.FlagPossibleDuplicate}
		c.Attributes = map[string]string{"collision": "rear"}
		insertClaim(t, db, c)
		g := getClaim(t, db, c.ID)
		if g.Number != c.Number || g.Description != c.Description || g.Location != c.Location || g.Total != usd(65000) ||
			g.Status != claims.StatusDraft || g.Version != 1 || !g.CreatedAt.Equal(c.CreatedAt) ||
			g.IncidentDate != c.IncidentDate || g.ReportedDate != c.ReportedDate || g.PolicyID != pol.ID ||
			g.HolderID != h.ID || !g.HasFlag(claims.FlagPossibleDuplicate) || g.Attributes["collision"] != "rear" ||
			g.Decision != nil {
			t.Fatalf("claim round trip:\n got %+v\nwant %+v", g, c)
		}
		if len(g.Lines) != 2 {
			t.Fatalf("lines: %+v", g.Lines)
		}
		for i, l := range g.Lines {
			w := c.Lines[i]
			if l.ID != w.ID || l.Seq != w.Seq || l.Category != w.Category || l.Description != w.Description ||
				l.ServiceDate != w.ServiceDate || l.Amount != w.Amount {
				t.Errorf("line %d: got %+v want %+v", i, l, w)
			}
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error { return tx.InsertClaim(ctx, c, "") }); claims.KindOf(err) != claims.Conflict {
			t.Errorf("same claim twice: %v", err)
		}

		// Transitions and a decision with per-line explanation.
		now := time.Now().UTC().Truncate(time.Microsecond)
		tx(t, db, func(tx *store.Tx) error {
			c := g
			for _, to := range []claims.Status{claims.StatusSubmitted, claims.StatusUnderReview} {
				tr, err := c.MoveTo(to, proc.ID, "moved to "+string(to), now)
				if err != nil {
					return err
				}
				if err := tx.UpdateClaim(ctx, &c); err != nil {
					return err
				}
				if err := tx.InsertTransition(ctx, c.HolderID, tr); err != nil {
					return err
				}
				now = now.Add(time.Millisecond)
			}
			p, err := tx.PolicyForUpdate(ctx, c.PolicyID)
			if err != nil {
				return err
			}
			used, err := tx.PeriodUsage(ctx, p, c.ID)
			if err != nil {
				return err
			}
			dec, err := claims.Adjudicate(c, p, used, nil, claims.OutcomeApprove)
			if err != nil {
				return err
			}
			dec.Reason = "covered collision"
			tr, err := c.Decide(dec, proc.ID, now, false)
			if err != nil {
				return err
			}
			if err := tx.UpdateClaim(ctx, &c); err != nil {
				return err
			}
			return tx.InsertTransition(ctx, c.HolderID, tr)
		})
		g = getClaim(t, db, c.ID)
		if g.Status != claims.StatusApproved || g.Version != 4 || g.Payable != usd(65000) || g.DecidedBy != proc.ID {
			t.Fatalf("decided claim: %+v", g)
		}
		if dd := g.Decision; dd == nil || dd.Reason != "covered collision" || dd.Payable != usd(65000) ||
			dd.Submitted != usd(65000) || len(dd.Lines) != 2 || dd.Lines[0].Benefit != usd(50000) || dd.Lines[1].Benefit != usd(15000) ||
			!dd.DecidedAt.Equal(now) {
			t.Fatalf("decision: %+v", g.Decision)
		}
		var hist []claims.Transition
		tx(t, db, func(tx *store.Tx) error {
			var err error
			hist, err = tx.Transitions(ctx, c.ID, h.ID)
			return err
		})
		var path []string
		for _, tr := range hist {
			path = append(path, string(tr.From)+">"+string(tr.To)+":"+tr.Reason)
		}
		if want := "draft>submitted:moved to submitted|submitted>under_review:moved to under_review|under_review>approved:covered collision"; strings.Join(path, "|") != want {
			t.Fatalf("history %q, want %q", strings.Join(path, "|"), want)
		}
		tx(t, db, func(tx *store.Tx) error {
			u, err := tx.PeriodUsage(ctx, pol, "")
			if err != nil || u.Paid != usd(65000) || len(u.PaidLines) != 2 {
				t.Errorf("PeriodUsage = %+v, %v", u, err)
			}
			return nil
		})

		// Payments: once per claim.
		pay := store.Payment{ID: claims.NewID(), ClaimID: c.ID, Amount: usd(65000), Reference: "WIRE-1", PaidBy: proc.ID}
		tx(t, db, func(tx *store.Tx) error { return tx.InsertPayment(ctx, pay) })
		pay.ID = claims.NewID()
		if err := db.InTx(ctx, func(tx *store.Tx) error { return tx.InsertPayment(ctx, pay) }); claims.KindOf(err) != claims.Conflict {
			t.Errorf("second payment: %v", err)
		}
		if n := rawCount(t, db, `SELECT COUNT(*) FROM payments WHERE claim_id = ? AND amount = 65000 AND reference = 'WIRE-1'`, c.ID); n != 1 {
			t.Errorf("payments: %d", n)
		}

		// Sessions and refresh tokens: the second use of a token reports Used.
		sess := store.Session{ID: claims.NewID(), UserID: proc.ID, CreatedAt: now, LastSeen: now.Add(-time.Hour),
			ExpiresAt: now.Add(8 * time.Hour), IP: "192.0.2.1", UserAgent: "test"}
		hash := bytes.Repeat([]byte{7}, 32)
		tx(t, db, func(tx *store.Tx) error {
			if err := tx.InsertSession(ctx, sess); err != nil {
				return err
			}
			return tx.InsertRefreshToken(ctx, store.RefreshToken{Hash: hash, SessionID: sess.ID, Family: sess.ID,
				Generation: 1, ExpiresAt: sess.ExpiresAt})
		})
		tx(t, db, func(tx *store.Tx) error {
			s, err := tx.Session(ctx, sess.ID)
			if err != nil || s.UserID != proc.ID || !s.ExpiresAt.Equal(sess.ExpiresAt) || s.IP != "192.0.2.1" || s.Revoked {
				t.Errorf("session: %+v, %v", s, err)
			}
			if err := tx.TouchSession(ctx, sess.ID, now); err != nil {
				return err
			}
			if s, _ = tx.Session(ctx, sess.ID); !s.LastSeen.Equal(now) {
				t.Errorf("touch: last seen %v, want %v", s.LastSeen, now)
			}
			if _, err := tx.Session(ctx, claims.NewID()); claims.KindOf(err) != claims.Unauthenticated {
				t.Errorf("missing session: %v", err)
			}
			return nil
		})
		for i, wantUsed := range []bool{false, true} {
			tx(t, db, func(tx *store.Tx) error {
				rt, err := tx.UseRefreshToken(ctx, hash)
				if err != nil || rt.Used != wantUsed || rt.SessionID != sess.ID || rt.Generation != 1 {
					t.Errorf("use %d: %+v, %v", i+1, rt, err)
				}
				return nil
			})
		}
		tx(t, db, func(tx *store.Tx) error {
			if _, err := tx.UseRefreshToken(ctx, []byte("unknown")); claims.KindOf(err) != claims.Unauthenticated {
				t.Errorf("unknown refresh token: %v", err)
			}
			if err := tx.RevokeFamily(ctx, sess.ID, "reuse"); err != nil {
				return err
			}
			s, err := tx.Session(ctx, sess.ID)
			if err != nil || !s.Revoked {
				t.Errorf("after RevokeFamily: %+v, %v", s, err)
			}
			return nil
		})

		// Idempotency keys: replay, misuse, and the race marker.
		req := []byte("request-hash")
		tx(t, db, func(tx *store.Tx) error {
			if _, found, err := tx.IdempotentResult(ctx, proc.ID, "k1", req); found || err != nil {
				t.Errorf("fresh key: %v, %v", found, err)
			}
			return tx.SaveIdempotentResult(ctx, proc.ID, "k1", req, c.ID)
		})
		tx(t, db, func(tx *store.Tx) error {
			id, found, err := tx.IdempotentResult(ctx, proc.ID, "k1", req)
			if err != nil || !found || id != c.ID {
				t.Errorf("replay: %v, %v, %v", id, found, err)
			}
			if _, _, err := tx.IdempotentResult(ctx, proc.ID, "k1", []byte("other")); claims.KindOf(err) != claims.Invalid {
				t.Errorf("key reused with another body: %v", err)
			}
			if _, found, _ := tx.IdempotentResult(ctx, claims.NewID(), "k1", req); found {
				t.Error("another user's key was found")
			}
			return nil
		})
		err = db.InTx(ctx, func(tx *store.Tx) error { return tx.SaveIdempotentResult(ctx, proc.ID, "k1", req, c.ID) })
		if !errors.Is(err, store.ErrIdempotencyRace) {
			t.Errorf("second save: %v", err)
		}

		// Audit: entries append in order and the chain verifies.
		appendAudit(t, db, 3)
		var entries []claims.AuditEntry
		tx(t, db, func(tx *store.Tx) error {
			var err error
			entries, err = tx.AuditEntries(ctx, store.AuditFilter{})
			return err
		})
		if len(entries) != 3 || entries[0].Seq != 1 || entries[2].Seq != 3 || entries[1].Details["n"] != "c" ||
			!bytes.Equal(entries[1].PrevHash, entries[0].Hash) {
			t.Fatalf("audit entries: %+v", entries)
		}
		if n, err := db.VerifyAudit(ctx); err != nil || n != 3 {
			t.Fatalf("VerifyAudit = %d, %v", n, err)
		}
	})
}

// TestPagination: paging by cursor returns every claim exactly once, in
// (created_at, id) descending order, even with ties on created_at and with
// new claims arriving while a client pages.
func TestPagination(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		t.Parallel()
		db := storetest.Open(t, d)
		h := newHolder(t, db, claims.Policyholder{FullName: "Pager"})
		pol := newPolicy(t, db, h.ID, 100000)
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		var all []claims.Claim
		for i := 0; i < 25; i++ {
			// Three claims share each instant, so ties are broken by id.
			c := insertClaim(t, db, claimOn(pol, "2026-02-01", base.Add(time.Duration(i/3)*time.Second), "claim "+strconv.Itoa(i), 1000))
			all = append(all, c)
		}
		slices.SortFunc(all, func(a, b claims.Claim) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(string(b.ID), string(a.ID))
		})
		var (
			seen   []claims.ID
			cursor string
			pages  int
		)
		for {
			after, err := store.ParseCursor(cursor)
			if err != nil {
				t.Fatal(err)
			}
			var page []claims.Claim
			tx(t, db, func(tx *store.Tx) error {
				var err error
				page, err = tx.Claims(ctx, store.ClaimFilter{After: after, Limit: 7})
				return err
			})
			pages++
			for _, c := range page {
				seen = append(seen, c.ID)
				if c.Description == "" || c.Lines != nil {
					t.Errorf("list item %s: description %q, %d lines", c.ID, c.Description, len(c.Lines))
				}
			}
			if pages == 2 {
				// A claim filed meanwhile is newer than the cursor: it does
				// not shift the pages the client is reading.
				insertClaim(t, db, claimOn(pol, "2026-02-01", base.Add(time.Hour), "late", 1000))
			}
			if len(page) < 7 {
				break
			}
			last := page[len(page)-1]
			cursor = store.CursorOf(last.ID, last.CreatedAt.UnixMicro()).String()
		}
		if pages != 4 {
			t.Errorf("%d pages, want 4 (7+7+7+4)", pages)
		}
		want := make([]claims.ID, len(all))
		for i, c := range all {
			want[i] = c.ID
		}
		if !slices.Equal(seen, want) {
			t.Fatalf("paged ids:\n got %v\nwant %v", seen, want)
		}
		if _, err := store.ParseCursor("not a cursor!"); claims.KindOf(err) != claims.Invalid {
			t.Errorf("bad cursor: %v", err)
		}
	})
}

func TestClaimFilter(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		t.Parallel()
		db := storetest.Open(t, d)
		h1 := newHolder(t, db, claims.Policyholder{FullName: "One"})
		h2 := newHolder(t, db, claims.Policyholder{FullName: "Two"})
		p1, p2 := newPolicy(t, db, h1.ID, 100000), newPolicy(t, db, h2.ID, 100000)
		u1 := newUser(t, db, "u1@example.com", claims.RoleClaimsProcessor)
		u2 := newUser(t, db, "u2@example.com", claims.RoleClaimsProcessor)
		base := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
		mk := func(name string, p claims.Policy, incident string, st claims.Status, assignee claims.ID, i int) claims.ID {
			c := claimOn(p, incident, base.Add(time.Duration(i)*time.Minute), name, 1000)
			c.Status, c.AssigneeID = st, assignee
			return insertClaim(t, db, c).ID
		}
		ids := map[claims.ID]string{}
		for i, x := range []struct {
			name     string
			p        claims.Policy
			incident string
			st       claims.Status
			assignee claims.ID
		}{
			{"a", p1, "2026-02-01", claims.StatusSubmitted, ""},
			{"b", p1, "2026-03-01", claims.StatusUnderReview, u1.ID},
			{"c", p1, "2026-04-01", claims.StatusApproved, u2.ID},
			{"d", p2, "2026-05-01", claims.StatusSubmitted, ""},
			{"e", p2, "2026-06-01", claims.StatusUnderReview, u1.ID},
		} {
			ids[mk(x.name, x.p, x.incident, x.st, x.assignee, i)] = x.name
		}
		list := func(f store.ClaimFilter) string {
			var out []string
			tx(t, db, func(tx *store.Tx) error {
				cs, err := tx.Claims(ctx, f)
				for _, c := range cs {
					out = append(out, ids[c.ID])
				}
				return err
			})
			slices.Sort(out)
			return strings.Join(out, "")
		}
		for _, tc := range []struct {
			name string
			f    store.ClaimFilter
			want string
		}{
			{"all", store.ClaimFilter{}, "abcde"},
			{"status", store.ClaimFilter{Status: []claims.Status{claims.StatusSubmitted}}, "ad"},
			{"statuses", store.ClaimFilter{Status: []claims.Status{claims.StatusUnderReview, claims.StatusApproved}}, "bce"},
			{"assignee", store.ClaimFilter{AssigneeID: u1.ID}, "be"},
			{"unassigned", store.ClaimFilter{Unassigned: true}, "ad"},
			{"policy", store.ClaimFilter{PolicyID: p2.ID}, "de"},
			{"no such policy", store.ClaimFilter{PolicyID: "none"}, ""},
			{"incident range", store.ClaimFilter{IncidentFrom: date("2026-03-01"), IncidentTo: date("2026-05-01")}, "bcd"},
			{"incident from", store.ClaimFilter{IncidentFrom: date("2026-04-15")}, "de"},
			{"incident to", store.ClaimFilter{IncidentTo: date("2026-02-28")}, "a"},
			{"holder", store.ClaimFilter{HolderID: h1.ID}, "abc"},
			{"visible to u1", store.ClaimFilter{VisibleTo: u1.ID}, "abde"},
			{"visible to u2", store.ClaimFilter{VisibleTo: u2.ID}, "acd"},
			{"holder and visible", store.ClaimFilter{HolderID: h2.ID, VisibleTo: u2.ID}, "d"},
			{"status and policy", store.ClaimFilter{Status: []claims.Status{claims.StatusUnderReview}, PolicyID: p1.ID}, "b"},
			{"limit", store.ClaimFilter{Limit: 2}, "de"}, // newest first
		} {
			if got := list(tc.f); got != tc.want {
				t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
			}
		}
	})
}

// TestUpdateClaimStale: a write based on an old version is refused as
// PreconditionFailed and leaves the claim and its lines as they were.
func TestUpdateClaimStale(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		t.Parallel()
		db := storetest.Open(t, d)
		h := newHolder(t, db, claims.Policyholder{FullName: "Stale"})
		pol := newPolicy(t, db, h.ID, 100000)
		u := newUser(t, db, "p@example.com", claims.RoleClaimsProcessor)
		c := claimOn(pol, "2026-02-01", time.Now(), "stale", 1000, 2000)
		c.Status = claims.StatusUnderReview
		insertClaim(t, db, c)
		first, second := getClaim(t, db, c.ID), getClaim(t, db, c.ID)

		first.AssigneeID, first.UpdatedAt = u.ID, time.Now().UTC().Truncate(time.Microsecond)
		tx(t, db, func(tx *store.Tx) error { return tx.UpdateClaim(ctx, &first) })
		if first.Version != 2 {
			t.Fatalf("version after update: %d", first.Version)
		}
		before := getClaim(t, db, c.ID)

		// The second writer read version 1 and decides: refused. Its error is
		// swallowed so the transaction commits, proving UpdateClaim itself
		// wrote nothing (not just that a rollback hid it).
		dec, err := claims.Adjudicate(second, pol, claims.PeriodUsage{Paid: usd(0), DeductibleApplied: usd(0)}, nil, claims.OutcomeApprove)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := second.Decide(dec, u.ID, time.Now().UTC(), false); err != nil {
			t.Fatal(err)
		}
		var uerr error
		tx(t, db, func(tx *store.Tx) error {
			uerr = tx.UpdateClaim(ctx, &second)
			return nil
		})
		if claims.KindOf(uerr) != claims.PreconditionFailed {
			t.Fatalf("stale update: %v, want PreconditionFailed", uerr)
		}
		if second.Version != 1 {
			t.Errorf("stale update bumped the caller's version to %d", second.Version)
		}
		after := getClaim(t, db, c.ID)
		if after.Version != 2 || after.Status != claims.StatusUnderReview || after.AssigneeID != u.ID ||
			after.Payable != usd(0) || after.Decision != nil || after.DecidedBy != "" || !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Fatalf("stale update changed the claim: %+v", after)
		}
		if n := rawCount(t, db, `SELECT COUNT(*) FROM claim_lines WHERE claim_id = ? AND benefit IS NOT NULL`, c.ID); n != 0 {
			t.Fatalf("stale update wrote %d line decisions", n)
		}
	})
}

// planted values: if any reaches the database unsealed, a test below finds it.
const (
	plantedName   = "Zebulon Quaxworth-Planted"
	plantedNatID  = "NID-PLANTED-7731-XQ"
	plantedDesc   = "planted description: xylophone fell on the quokka"
	plantedLine   = "planted line: vermilion bumper"
	plantedReason = "planted reason: marmalade"
	plantedEmail  = "planted.zq@example.org"
)

var planted = []string{plantedName, plantedNatID, plantedDesc, plantedLine, plantedReason, plantedEmail}

// plant writes every kind of sealed value once and returns the policy
// number, which is stored in clear (the positive control).
func plant(t *testing.T, db *store.DB) string {
	t.Helper()
	h := newHolder(t, db, claims.Policyholder{FullName: plantedName, NationalID: plantedNatID, Email: plantedEmail,
		Address: plantedName + " street", DateOfBirth: date("1970-01-01")})
	pol := newPolicy(t, db, h.ID, 100000)
	u := newUser(t, db, plantedEmail, claims.RoleCustomer)
	c := claimOn(pol, "2026-02-01", time.Now(), plantedDesc, 1000)
	c.Lines[0].Description = plantedLine
	c.Location = plantedName
	insertClaim(t, db, c)
	tx(t, db, func(tx *store.Tx) error {
		c, err := tx.ClaimForUpdate(ctx, c.ID)
		if err != nil {
			return err
		}
		tr, err := c.MoveTo(claims.StatusSubmitted, u.ID, plantedReason, tx.Now())
		if err != nil {
			return err
		}
		if err := tx.UpdateClaim(ctx, &c); err != nil {
			return err
		}
		return tx.InsertTransition(ctx, c.HolderID, tr)
	})
	return pol.Number
}

func findPlanted(b []byte) []string {
	var found []string
	for _, p := range planted {
		if bytes.Contains(b, []byte(p)) || bytes.Contains(bytes.ToLower(b), []byte(hex.EncodeToString([]byte(p)))) {
			found = append(found, p)
		}
	}
	return found
}

// TestNoPlaintextAtRest reads the raw SQLite database and WAL files, before
// and after a checkpoint, and every PostgreSQL table cast to text: no
// personal value or free text appears in clear (nor hex-encoded).
func TestNoPlaintextAtRest(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path, keys := storetest.URL(t, store.SQLite), storetest.Keys(t)
		db := storetest.OpenWith(t, path, keys)
		number := plant(t, db)
		check := func(when string, mustSee bool) {
			var all []byte
			for _, f := range []string{path, path + "-wal"} {
				b, err := os.ReadFile(f)
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				if found := findPlanted(b); len(found) > 0 {
					t.Errorf("%s: %s holds %q in clear", when, f, found)
				}
				all = append(all, b...)
			}
			if mustSee && !bytes.Contains(all, []byte(number)) {
				t.Errorf("%s: the clear policy number %s is not in the files: the scan reads the wrong bytes", when, number)
			}
		}
		check("before checkpoint", true)
		if _, err := db.SQL().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			t.Fatal(err)
		}
		check("after checkpoint", true)
		db.Close()
		check("after close", true)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		db := storetest.Open(t, store.Postgres)
		number := plant(t, db)
		rows, err := db.SQL().QueryContext(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		var tables []string
		for rows.Next() {
			var n string
			rows.Scan(&n)
			tables = append(tables, n)
		}
		rows.Close()
		var all []byte
		for _, tbl := range tables {
			rows, err := db.SQL().QueryContext(ctx, `SELECT t::text FROM `+tbl+` t`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				if found := findPlanted([]byte(s)); len(found) > 0 {
					t.Errorf("table %s holds %q in clear: %.200s", tbl, found, s)
				}
				all = append(all, s...)
			}
			rows.Close()
		}
		if !bytes.Contains(all, []byte(number)) {
			t.Errorf("the clear policy number %s was not seen: the scan reads the wrong rows (tables %v)", number, tables)
		}
	})
}

// TestSealedValueMoved: a sealed value copied into another row (same table,
// same column, even under the same subject key) does not open there: the
// row id is part of the additional data.
func TestSealedValueMoved(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		t.Parallel()
		db := storetest.Open(t, d)
		h := newHolder(t, db, claims.Policyholder{FullName: "Holder One", NationalID: "ID-1"})
		h2 := newHolder(t, db, claims.Policyholder{FullName: "Holder Two", NationalID: "ID-2"})
		pol := newPolicy(t, db, h.ID, 100000)
		c1 := insertClaim(t, db, claimOn(pol, "2026-02-01", time.Now(), "first claim's secret", 1000, 2000))
		c2 := insertClaim(t, db, claimOn(pol, "2026-02-02", time.Now(), "second claim", 1000))
		u1 := newUser(t, db, "one@example.com", claims.RoleCustomer)
		u2 := newUser(t, db, "two@example.com", claims.RoleCustomer)

		// Claim details, same holder (same data key), another row.
		rawExec(t, db, `UPDATE claims SET details = (SELECT details FROM claims WHERE id = ?) WHERE id = ?`, c1.ID, c2.ID)
		err := db.InTx(ctx, func(tx *store.Tx) error {
			c, err := tx.Claim(ctx, c2.ID)
			if err == nil {
				t.Errorf("moved details opened as %q", c.Description)
			}
			return err
		})
		if err == nil {
			t.Error("reading a claim with another claim's sealed details succeeded")
		}
		err = db.InTx(ctx, func(tx *store.Tx) error { _, err := tx.Claims(ctx, store.ClaimFilter{}); return err })
		if err == nil {
			t.Error("listing claims with a moved sealed value succeeded")
		}
		if _, err := db.SQL().ExecContext(ctx, rebind(d, `UPDATE claims SET details = ? WHERE id = ?`), []byte("x"), c2.ID); err != nil {
			t.Fatal(err)
		}

		// A line description moved to the next line of the same claim.
		rawExec(t, db, `UPDATE claim_lines SET description = (SELECT description FROM claim_lines WHERE id = ?) WHERE id = ?`,
			c1.Lines[0].ID, c1.Lines[1].ID)
		if err := db.InTx(ctx, func(tx *store.Tx) error { _, err := tx.Claim(ctx, c1.ID); return err }); err == nil {
			t.Error("reading a claim whose line holds another line's description succeeded")
		}

		// A holder's personal data moved to another holder.
		rawExec(t, db, `UPDATE policyholders SET pii = (SELECT pii FROM policyholders WHERE id = ?) WHERE id = ?`, h.ID, h2.ID)
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			got, err := tx.Holder(ctx, h2.ID)
			if err == nil {
				t.Errorf("moved pii opened as %q", got.FullName.Reveal())
			}
			return err
		}); err == nil {
			t.Error("reading a holder with another holder's pii succeeded")
		}
		// A holder's wrapped subject key moved to another holder.
		rawExec(t, db, `UPDATE policyholders SET subject_key = (SELECT subject_key FROM policyholders WHERE id = ?) WHERE id = ?`, h.ID, h2.ID)
		if err := db.InTx(ctx, func(tx *store.Tx) error { _, err := tx.Holder(ctx, h2.ID); return err }); err == nil {
			t.Error("a subject key moved to another holder unwrapped")
		}

		// A user's sealed email moved to another user (key ring, not a
		// subject key): the blind index still finds u2, but opening fails.
		rawExec(t, db, `UPDATE users SET email_sealed = (SELECT email_sealed FROM users WHERE id = ?) WHERE id = ?`, u1.ID, u2.ID)
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			u, err := tx.UserByEmail(ctx, "two@example.com")
			if err == nil {
				t.Errorf("moved email opened as %q", u.Email)
			}
			return err
		}); err == nil {
			t.Error("reading a user with another user's sealed email succeeded")
		}
		// The rows that were not touched still read.
		tx(t, db, func(tx *store.Tx) error {
			if u, err := tx.User(ctx, u1.ID); err != nil || u.Email != "one@example.com" {
				t.Errorf("untouched user: %+v, %v", u, err)
			}
			if got, err := tx.Holder(ctx, h.ID); err != nil || got.FullName != "Holder One" {
				t.Errorf("untouched holder: %+v, %v", got, err)
			}
			return nil
		})
	})
}
