package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/seal"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
)

// plantSet is what plantData stored: one value in every sealed column.
type plantSet struct {
	holders []claims.Policyholder
	claimID []claims.ID
	users   []claims.User
	docIDs  []claims.ID
	docOf   map[claims.ID]claims.ID // document -> claim
	mailID  claims.ID
}

// plantData writes n holders, each with a policy, a claim with two lines, a
// decision with a reason, a transition with a reason and a document; and
// n users with an MFA secret, and one queued mail.
func plantData(t *testing.T, db *store.DB, n int) plantSet {
	t.Helper()
	p := plantSet{docOf: map[claims.ID]claims.ID{}}
	for i := 0; i < n; i++ {
		u := newUser(t, db, fmt.Sprintf("user%d@example.com", i), claims.RoleCustomer)
		tx(t, db, func(tx *store.Tx) error { return tx.SetMFA(ctx, u.ID, fmt.Sprintf("MFASECRET%d", i), true) })
		p.users = append(p.users, u)
		h := newHolder(t, db, claims.Policyholder{FullName: claims.Secret(fmt.Sprintf("Holder Name %d", i)),
			NationalID: claims.Secret(fmt.Sprintf("NID-%06d", i)), Email: claims.Secret(fmt.Sprintf("holder%d@example.com", i)),
			DateOfBirth: date("1980-02-03")})
		p.holders = append(p.holders, h)
		pol := newPolicy(t, db, h.ID, 1_000_000)
		c := insertClaim(t, db, claimOn(pol, "2026-03-01", time.Now(), fmt.Sprintf("diagnosis %d: fractured wrist", i), 1000, 2000))
		p.claimID = append(p.claimID, c.ID)
		tx(t, db, func(tx *store.Tx) error {
			cur, err := tx.ClaimForUpdate(ctx, c.ID)
			if err != nil {
				return err
			}
			tr, err := cur.MoveTo(claims.StatusSubmitted, "", fmt.Sprintf("review reason %d", i), tx.Now())
			if err != nil {
				return err
			}
			if err := tx.InsertTransition(ctx, cur.HolderID, tr); err != nil {
				return err
			}
			cur.Decision = &claims.Decision{Outcome: claims.OutcomeApprove, Status: claims.StatusApproved,
				Reason: fmt.Sprintf("pay to account DE89370400440532013%03d", i), Payable: cur.Total, DecidedAt: tx.Now()}
			cur.Payable = cur.Total
			if err := tx.UpdateClaim(ctx, &cur); err != nil {
				return err
			}
			d := store.Document{ID: claims.NewID(), ClaimID: c.ID, HolderID: h.ID, BlobID: strings.Repeat("a", 30) + fmt.Sprintf("%02d", i%100),
				Filename: fmt.Sprintf("mri-scan-%d.pdf", i), ContentType: "application/pdf", Size: 10,
				SHA256: strings.Repeat("0", 63) + "1", OriginalSHA256: strings.Repeat("0", 64), UploadedBy: u.ID}
			p.docIDs = append(p.docIDs, d.ID)
			p.docOf[d.ID] = c.ID
			return tx.InsertDocument(ctx, d)
		})
	}
	p.mailID = claims.NewID()
	tx(t, db, func(tx *store.Tx) error {
		return tx.InsertMail(ctx, store.Mail{ID: p.mailID, Kind: "reset", To: "user0@example.com", Body: "reset link"})
	})
	return p
}

// checkReadable opens every plantSet value.
func checkReadable(t *testing.T, db *store.DB, p plantSet) {
	t.Helper()
	err := db.Read(ctx, func(tx *store.Tx) error {
		for i, h := range p.holders {
			got, err := tx.Holder(ctx, h.ID)
			if err != nil {
				return err
			}
			if got.Erased || got.FullName.Reveal() != h.FullName.Reveal() || got.NationalID.Reveal() != h.NationalID.Reveal() {
				return fmt.Errorf("holder %d reads %q/%q erased=%v", i, got.FullName.Reveal(), got.NationalID.Reveal(), got.Erased)
			}
			c, err := tx.Claim(ctx, p.claimID[i])
			if err != nil {
				return err
			}
			if want := fmt.Sprintf("diagnosis %d: fractured wrist", i); c.Description != want || c.Lines[1].Description != want+" line" {
				return fmt.Errorf("claim %d reads %q / %q", i, c.Description, c.Lines[1].Description)
			}
			if c.Decision == nil || !strings.HasPrefix(c.Decision.Reason, "pay to account DE89") {
				return fmt.Errorf("claim %d decision %+v", i, c.Decision)
			}
			hist, err := tx.Transitions(ctx, c.ID, c.HolderID)
			if err != nil {
				return err
			}
			if len(hist) != 1 || hist[0].Reason != fmt.Sprintf("review reason %d", i) {
				return fmt.Errorf("claim %d history %+v", i, hist)
			}
			d, err := tx.Document(ctx, p.docOf[p.docIDs[i]], p.docIDs[i])
			if err != nil {
				return err
			}
			if d.Filename != fmt.Sprintf("mri-scan-%d.pdf", i) {
				return fmt.Errorf("document %d filename %q", i, d.Filename)
			}
		}
		for i, u := range p.users {
			got, err := tx.User(ctx, u.ID)
			if err != nil {
				return err
			}
			sec, err := tx.UserSecurity(ctx, u.ID)
			if err != nil {
				return err
			}
			if got.Email != u.Email || sec.MFASecret != fmt.Sprintf("MFASECRET%d", i) {
				return fmt.Errorf("user %d reads %q %q", i, got.Email, sec.MFASecret)
			}
		}
		mail, err := tx.Outbox(ctx, false)
		if err != nil {
			return err
		}
		if len(mail) != 1 || mail[0].Body != "reset link" {
			return fmt.Errorf("outbox %+v", mail)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("not readable: %v", err)
	}
}

// openKeys opens the database at url with the keys now in dir.
func openKeys(t *testing.T, url, dir string) *store.DB {
	t.Helper()
	k, err := seal.LoadOrCreate(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	return storetest.OpenWith(t, url, k)
}

func TestRotateRewrapsEverything(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		url, dir := storetest.URL(t, d), filepath.Join(t.TempDir(), "keys")
		db := openKeys(t, url, dir)
		p := plantData(t, db, 3)
		before, err := db.KeyUsage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// 3 users x (email, mfa) + 2 mail + 3 subject keys.
		if n := before.Total("k1"); n != 3*2+2+3 || before.SubjectKeys["k1"] != 3 {
			t.Fatalf("k1 protects %d values, %d subject keys: %+v", n, before.SubjectKeys["k1"], before.ByKEK)
		}
		// Raw bodies before, to check rotation leaves them alone.
		rawPII := rawColumn(t, db, "policyholders", "pii", string(p.holders[0].ID))
		rawKey := rawColumn(t, db, "policyholders", "subject_key", string(p.holders[0].ID))

		if _, err := seal.AddKEK(dir); err != nil {
			t.Fatal(err)
		}
		db2 := openKeys(t, url, dir)
		done, err := db2.RewrapAll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if done["policyholders.subject_key"] != 3 || done["users.mfa_secret"] != 3 {
			t.Fatalf("rewrapped %v", done)
		}
		after, err := db2.KeyUsage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if after.Total("k1") != 0 || after.Total("k2") != before.Total("k1") {
			t.Fatalf("after rotation: %+v", after.ByKEK)
		}
		if got := rawColumn(t, db2, "policyholders", "pii", string(p.holders[0].ID)); string(got) != string(rawPII) {
			t.Error("rotation changed a data body")
		}
		if got := rawColumn(t, db2, "policyholders", "subject_key", string(p.holders[0].ID)); string(got) == string(rawKey) {
			t.Error("rotation did not rewrap the subject key")
		}
		checkReadable(t, db2, p)
		// A ring without k1 still reads everything: nothing needs it.
		k2only, err := seal.LoadOrCreate(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		ring, err := seal.ParseKEKList(kekText(t, dir, "k2"))
		if err != nil {
			t.Fatal(err)
		}
		db3 := storetest.OpenWith(t, url, seal.Keys{Ring: ring, Index: k2only.Index})
		checkReadable(t, db3, p)
	})
}

func TestReencryptResumes(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		url, dir := storetest.URL(t, d), filepath.Join(t.TempDir(), "keys")
		db := openKeys(t, url, dir)
		const n = 6
		p := plantData(t, db, n)
		oldKeys := map[claims.ID]string{}
		for _, h := range p.holders {
			oldKeys[h.ID] = string(rawColumn(t, db, "policyholders", "subject_key", string(h.ID)))
		}
		oldPII := string(rawColumn(t, db, "policyholders", "pii", string(p.holders[0].ID)))

		// Interrupted after 2 holders (a cancelled context stands in for a crash
		// between two holder transactions).
		cctx, cancel := context.WithCancel(ctx)
		res, err := db.Reencrypt(cctx, store.ReencryptOptions{Batch: 2, Progress: func(done, total int) {
			if done == 2 {
				cancel()
			}
		}})
		if !errors.Is(err, context.Canceled) || res.Holders != 2 || res.Finished {
			t.Fatalf("interrupted run: %+v %v", res, err)
		}
		u, _ := db.KeyUsage(ctx)
		if u.Generations[2] != 2 || u.Generations[1] != n-2 || u.Reencrypt == nil || u.Reencrypt.FinishedAt != 0 {
			t.Fatalf("after interruption: generations %v state %+v", u.Generations, u.Reencrypt)
		}
		checkReadable(t, db, p) // half old, half new: all readable

		var lines []string
		res, err = db.Reencrypt(ctx, store.ReencryptOptions{Batch: 2, Progress: func(done, total int) {
			lines = append(lines, fmt.Sprintf("%d/%d", done, total))
		}})
		if err != nil || !res.Finished || res.Target != 2 || res.Holders != n-2 {
			t.Fatalf("resumed run: %+v %v", res, err)
		}
		if lines[0] != "3/6" || lines[len(lines)-1] != "6/6" {
			t.Errorf("progress %v", lines)
		}
		u, _ = db.KeyUsage(ctx)
		if u.Generations[2] != n || u.Reencrypt.FinishedAt == 0 {
			t.Fatalf("after resume: %v %+v", u.Generations, u.Reencrypt)
		}
		for _, h := range p.holders {
			if string(rawColumn(t, db, "policyholders", "subject_key", string(h.ID))) == oldKeys[h.ID] {
				t.Errorf("holder %s still has its old subject key", h.ID)
			}
		}
		if string(rawColumn(t, db, "policyholders", "pii", string(p.holders[0].ID))) == oldPII {
			t.Error("pii not re-sealed")
		}
		checkReadable(t, db, p)
		// A new run starts a new generation.
		res, err = db.Reencrypt(ctx, store.ReencryptOptions{})
		if err != nil || res.Target != 3 || res.Holders != n {
			t.Fatalf("second run %+v %v", res, err)
		}
		checkReadable(t, db, p)
	})
}

func TestEraseSubject(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		db := storetest.Open(t, d)
		p := plantData(t, db, 2)
		h, u := p.holders[0], p.users[0]
		tx(t, db, func(tx *store.Tx) error { return tx.LinkHolderUser(ctx, h.ID, u.ID) })
		tx(t, db, func(tx *store.Tx) error { return tx.EraseSubject(ctx, h.ID, u.ID) })
		err := db.Read(ctx, func(tx *store.Tx) error {
			got, err := tx.Holder(ctx, h.ID)
			if err != nil {
				return err
			}
			if !got.Erased || got.FullName.Reveal() != "" {
				return fmt.Errorf("holder after erasure: %+v", got)
			}
			c, err := tx.Claim(ctx, p.claimID[0])
			if err != nil {
				return err
			}
			if c.Description != store.ErasedText || c.Lines[0].Description != store.ErasedText || c.Decision.Reason != store.ErasedText {
				return fmt.Errorf("claim text after erasure: %q %q %q", c.Description, c.Lines[0].Description, c.Decision.Reason)
			}
			if c.Total.Minor != 3000 || c.Payable.Minor != 3000 || c.Status != claims.StatusSubmitted || c.Decision.Outcome != claims.OutcomeApprove {
				return fmt.Errorf("amounts lost: %+v", c)
			}
			acct, err := tx.User(ctx, u.ID)
			if err != nil {
				return err
			}
			if acct.Status != claims.UserDisabled || strings.Contains(acct.Email, "user0") {
				return fmt.Errorf("account after erasure: %+v", acct)
			}
			if _, err := tx.UserByEmail(ctx, "user0@example.com"); claims.KindOf(err) != claims.NotFound {
				return fmt.Errorf("erased email still found: %v", err)
			}
			if mail, _ := tx.Outbox(ctx, false); len(mail) != 0 {
				return fmt.Errorf("mail to the erased address kept")
			}
			ids, err := tx.HoldersByEmail(ctx, "holder0@example.com")
			if err != nil || len(ids) != 0 {
				return fmt.Errorf("blind index kept: %v %v", ids, err)
			}
			// The other subject is untouched.
			other, err := tx.Holder(ctx, p.holders[1].ID)
			if err != nil || other.FullName.Reveal() != "Holder Name 1" {
				return fmt.Errorf("other holder: %+v %v", other, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		reg, err := db.ErasureRegister(ctx)
		if err != nil || len(reg) != 1 || reg[0].HolderID != h.ID || reg[0].UserID != u.ID {
			t.Fatalf("register %+v %v", reg, err)
		}
		// Re-applying the register to a database where it already holds
		// changes nothing.
		if n, err := db.ApplyErasureRegister(ctx, reg); err != nil || n != 0 {
			t.Fatalf("re-apply: %d %v", n, err)
		}
	})
}

func TestSubjectExport(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		db := storetest.Open(t, d)
		p := plantData(t, db, 2)
		h, u := p.holders[1], p.users[1]
		tx(t, db, func(tx *store.Tx) error { return tx.LinkHolderUser(ctx, h.ID, u.ID) })
		tx(t, db, func(tx *store.Tx) error {
			return tx.AppendAudit(ctx, claims.AuditEntry{ActorID: "someone", Action: "claim.read", ObjectType: "claim", ObjectID: string(p.claimID[1])})
		})
		var x store.SubjectExport
		tx(t, db, func(tx *store.Tx) error {
			var err error
			x, err = tx.SubjectExport(ctx, h.ID, u.ID)
			return err
		})
		if x.Account == nil || x.Account.Email != u.Email || x.Holder.NationalID != "NID-000001" || len(x.Policies) != 1 ||
			len(x.Claims) != 1 || x.Claims[0].Description != "diagnosis 1: fractured wrist" || len(x.Claims[0].Lines) != 2 ||
			x.Claims[0].Decision == nil || len(x.Claims[0].History) != 1 || len(x.Claims[0].Documents) != 1 {
			t.Fatalf("export: %+v", x)
		}
		found := false
		for _, e := range x.AccessHistory {
			found = found || (e.Action == "claim.read" && e.ActorID == "someone")
		}
		if !found {
			t.Errorf("access history lacks the read: %+v", x.AccessHistory)
		}
		for _, c := range x.Claims {
			if c.ID == string(p.claimID[0]) {
				t.Error("another holder's claim exported")
			}
		}
	})
}

func rawColumn(t *testing.T, db *store.DB, table, column, id string) []byte {
	t.Helper()
	var b []byte
	q := `SELECT ` + column + ` FROM ` + table + ` WHERE id = ?`
	if db.Dialect() == store.Postgres {
		q = strings.Replace(q, "?", "$1", 1)
	}
	if err := db.SQL().QueryRow(q, id).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

func kekText(t *testing.T, dir, id string) string {
	t.Helper()
	b, err := readFile(filepath.Join(dir, "kek-"+id+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

var readFile = os.ReadFile

// BenchmarkReencrypt measures the re-encryption rate (holders/s) on SQLite
// with the planted data (per holder: pii, claim details and reason, two
// lines, a transition reason, a document name).
func BenchmarkReencrypt(b *testing.B) {
	db := storetest.Open(b, store.SQLite)
	const n = 200
	for i := 0; i < n; i++ {
		h := claims.Policyholder{ID: claims.NewID(), FullName: claims.Secret(fmt.Sprintf("Holder %d", i)), NationalID: "NID"}
		if err := db.InTx(ctx, func(tx *store.Tx) error { return tx.InsertHolder(ctx, h, "", "") }); err != nil {
			b.Fatal(err)
		}
		pol := claims.Policy{ID: claims.NewID(), Number: fmt.Sprintf("P-%d", i), HolderID: h.ID, ProductLine: claims.LineAuto,
			Status: claims.PolicyActive, EffectiveDate: date("2026-01-01"), ExpiryDate: date("2026-12-31"),
			CoverageLimit: usd(1e6), Deductible: usd(0), Premium: usd(1), CoinsuranceBP: 10000}
		c := claimOn(pol, "2026-03-01", time.Now(), "diagnosis text", 100, 200)
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			if err := tx.InsertPolicy(ctx, pol); err != nil {
				return err
			}
			return tx.InsertClaim(ctx, c, "")
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	holders := 0
	for b.Loop() {
		res, err := db.Reencrypt(ctx, store.ReencryptOptions{})
		if err != nil {
			b.Fatal(err)
		}
		holders += res.Holders
	}
	b.ReportMetric(float64(holders)/b.Elapsed().Seconds(), "holders/s")
}
