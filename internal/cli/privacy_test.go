package cli_test

import (
	"archive/tar"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/cli"
	"github.com/openclaims/claims/internal/seal"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
)

// Planted values: each must appear nowhere at rest or in the logs.
const (
	plantedName = "Zebulon Quixotewright"
	plantedNID  = "NID-PLNT-77319024"
	plantedDiag = "pneumothorax-plantdx"
	plantedAcct = "DE44500105175407324931"
)

var planted = []string{plantedName, plantedNID, plantedDiag, plantedAcct}

func runErr(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := cli.Run(context.Background(), cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] }}, args)
	return out.String(), errb.String(), err
}

func assertNoPlanted(t *testing.T, what string, b []byte) {
	t.Helper()
	for _, p := range planted {
		if bytes.Contains(b, []byte(p)) {
			t.Errorf("%s contains the planted value %q", what, p)
		}
	}
}

// decryptTar returns the members of a backup, decrypted.
func decryptTar(t *testing.T, file string, id age.Identity) map[string][]byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := age.Decrypt(f, id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = b
	}
}

// dumpTables returns every row of every table as sorted text.
func dumpTables(t *testing.T, db *store.DB) map[string][]string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	if db.Dialect() == store.Postgres {
		q = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`
	}
	rows, err := db.SQL().Query(q)
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
	out := map[string][]string{}
	for _, tb := range tables {
		sel := `SELECT * FROM ` + tb
		if tb == "schema_migrations" {
			sel = `SELECT version FROM schema_migrations`
		}
		rs, err := db.SQL().Query(sel)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rs.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		var lines []string
		for rs.Next() {
			if err := rs.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, v := range vals {
				switch x := v.(type) {
				case []byte:
					fmt.Fprintf(&b, "%x|", x)
				default:
					fmt.Fprintf(&b, "%v|", x)
				}
			}
			lines = append(lines, b.String())
		}
		rs.Close()
		slices.Sort(lines)
		out[tb] = lines
	}
	return out
}

func openInstallation(t *testing.T, url, keysDir string) *store.DB {
	t.Helper()
	k, err := seal.LoadOrCreate(keysDir, false)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), url, store.Options{Keys: k.Ring, Index: k.Index})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func backupBlobFiles(t *testing.T, dataDir string) map[string][]byte {
	out := map[string][]byte{}
	root := filepath.Join(dataDir, "documents")
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasPrefix(fi.Name(), ".") {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(root, p)
			out[rel] = b
		}
		return nil
	})
	return out
}

// TestDataProtection walks the scenarios through the real server
// and command line, on both engines: planted personal, medical and
// financial values are nowhere at rest, in backups or in the log; a
// backup round-trips every row and document byte, verifies, and fails
// verification when tampered with; it never holds a key; a customer
// exports their data and is erased; restoring a backup taken before the
// erasure leaves them erased; keys rotate (two-step), retire only when
// unused, and re-encrypt while the server serves.
func TestDataProtection(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		env := newEnv(t, d)
		env["CLAIMS_LOG_LEVEL"] = "debug"
		dataDir := env["CLAIMS_DATA_DIR"]
		keysDir := filepath.Join(dataDir, "keys")
		mustRun(t, env, pw+"\n", "user", "create", "--email", "admin@example.com", "--role", "admin", "--password-stdin")
		mustRun(t, env, pw+"\n", "user", "create", "--email", "proc@example.com", "--role", "claims_processor", "--password-stdin")
		s, serverLog := startServerOut(t, env)

		s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "alice@example.com", "password": pw, "fullName": plantedName}), 202)
		s.verifyEmail("alice@example.com")
		admin := s.adminSession("admin@example.com")
		s.expect(s.do("POST", "/api/v1/policies", admin, map[string]any{
			"number": "HLTH-7001", "productLine": "health", "effectiveDate": "2026-01-01", "expiryDate": "2026-12-31",
			"currency": "USD", "coverageLimit": "5000.00", "deductible": "0.00", "premium": "900.00", "holderEmail": "alice@example.com"}), 201)
		s.expect(s.do("POST", "/api/v1/policies", admin, map[string]any{
			"number": "HLTH-7002", "productLine": "health", "effectiveDate": "2026-01-01", "expiryDate": "2026-12-31",
			"currency": "USD", "coverageLimit": "5000.00", "premium": "900.00",
			"holder": map[string]string{"fullName": "Other Person", "nationalId": plantedNID}}), 201)
		alice := s.login("alice@example.com", pw)
		c := s.expect(s.do("POST", "/api/v1/claims", alice, map[string]any{"policyNumber": "HLTH-7001", "type": "illness",
			"incidentDate": "2026-03-01", "description": "Admitted with " + plantedDiag, "currency": "USD", "submit": true,
			"lines": []map[string]string{{"category": "hospital", "description": "Chest drain for " + plantedDiag, "amount": "800.00"}}}), 201)
		claimID := c.str("id")
		doc := s.expect(s.upload(alice, claimID, "discharge-notes.txt", "text/plain", []byte("discharge summary: stable\n"), 0), 201)
		s.waitStatus(alice, claimID, doc.str("id"), "clean")
		proc := s.login("proc@example.com", pw)
		s.expect(s.do("POST", "/api/v1/claims/"+claimID+"/assign", proc, nil), 200)
		s.expect(s.do("POST", "/api/v1/claims/"+claimID+"/decide", proc, map[string]string{"outcome": "approve",
			"reason": "Covered; pay to IBAN " + plantedAcct}), 200)

		s.expect(s.do("GET", "/api/v1/claims/"+claimID, proc, nil), 200) // an audited read of her data
		// Subject access: the export has it all, and is audited.
		exp := s.expect(s.do("GET", "/api/v1/me/export", alice, nil), 200)
		for _, want := range []string{plantedName, plantedDiag, plantedAcct, "discharge-notes.txt", "claim.read", "HLTH-7001"} {
			if !strings.Contains(string(exp.raw), want) {
				t.Errorf("export lacks %q", want)
			}
		}
		if strings.Contains(string(exp.raw), plantedNID) {
			t.Error("export holds another subject's national id")
		}
		holderID := exp.str("policyholder", "id")

		// A backup, while the server runs.
		idOut := mustRun(t, env, "", "backup", "keygen")
		identity, err := age.ParseX25519Identity(strings.TrimSpace(idOut[strings.Index(idOut, "AGE-SECRET-KEY"):]))
		if err != nil {
			t.Fatal(err)
		}
		idFile := filepath.Join(t.TempDir(), "backup.identity")
		os.WriteFile(idFile, []byte(identity.String()+"\n"), 0o600)
		bk1 := filepath.Join(t.TempDir(), "before-erasure.age")
		_, progress, err := runErr(t, env, "backup", "create", "--out", bk1, "--recipient", identity.Recipient().String())
		if err != nil {
			t.Fatalf("backup create: %v %s", err, progress)
		}
		if !strings.Contains(progress, "backup: ") {
			t.Errorf("no progress on stderr: %q", progress)
		}
		srcDB := openInstallation(t, (&cfgURL{env}).target(), keysDir)
		srcTables := dumpTables(t, srcDB)
		srcBlobs := backupBlobFiles(t, dataDir)
		if out := mustRun(t, env, "", "backup", "verify", bk1, "--identity", idFile); !strings.Contains(out, "backup OK") {
			t.Fatalf("verify: %s", out)
		}

		// Nothing planted at rest, in the backup (encrypted or not) or the log.
		if d == store.SQLite {
			for _, f := range []string{"claims.db", "claims.db-wal"} {
				if b, err := os.ReadFile(filepath.Join(dataDir, f)); err == nil {
					assertNoPlanted(t, f, b)
				} else if f == "claims.db" {
					t.Fatal(err)
				}
			}
		}
		raw, _ := os.ReadFile(bk1)
		assertNoPlanted(t, "the backup file", raw)
		members := decryptTar(t, bk1, identity)
		for name, b := range members {
			assertNoPlanted(t, "decrypted backup member "+name, b)
			for _, f := range []string{"kek-", "index.key", "signing", "pepper"} {
				if strings.Contains(name, f) {
					t.Errorf("backup holds key file %s", name)
				}
			}
			for _, kf := range []string{"kek-k1.key", "index.key", "backup-signing.key"} {
				kb, _ := os.ReadFile(filepath.Join(keysDir, kf))
				secret := strings.TrimSpace(string(kb))
				if i := strings.LastIndex(secret, ":"); i >= 0 && len(secret[i+1:]) >= 40 && bytes.Contains(b, []byte(secret[i+1:])) {
					t.Errorf("backup member %s holds %s", name, kf)
				}
			}
		}
		if _, ok := members["manifest.json"]; !ok {
			t.Fatal("no manifest")
		}

		// Round trip: restore into a fresh installation and compare every
		// row and every document byte.
		envA := restoreEnv(t, d, env, keysDir)
		mustRun(t, envA, "", "backup", "restore", bk1, "--identity", idFile, "--data-dir", envA["CLAIMS_DATA_DIR"], "--keys-dir", keysDir)
		resA := openInstallation(t, (&cfgURL{envA}).target(), keysDir)
		gotTables := dumpTables(t, resA)
		for tb, rows := range srcTables {
			if !slices.Equal(rows, gotTables[tb]) {
				t.Errorf("table %s differs after restore: %d rows vs %d", tb, len(rows), len(gotTables[tb]))
			}
		}
		gotBlobs := backupBlobFiles(t, envA["CLAIMS_DATA_DIR"])
		if len(srcBlobs) == 0 || len(gotBlobs) != len(srcBlobs) {
			t.Errorf("documents: %d restored of %d", len(gotBlobs), len(srcBlobs))
		}
		for p, b := range srcBlobs {
			if !bytes.Equal(gotBlobs[p], b) {
				t.Errorf("document blob %s differs after restore", p)
			}
		}
		// Restoring over a live installation is refused.
		if _, _, err := runErr(t, envA, "backup", "restore", bk1, "--identity", idFile, "--data-dir", envA["CLAIMS_DATA_DIR"], "--keys-dir", keysDir); err == nil ||
			!strings.Contains(err.Error(), "not empty") {
			t.Errorf("restore over a live data dir: %v", err)
		}

		// A tampered backup fails verification: a flipped byte in the age
		// payload, and a re-encrypted archive with one changed member.
		bad := append([]byte(nil), raw...)
		bad[len(bad)/2] ^= 1
		badFile := filepath.Join(t.TempDir(), "bad.age")
		os.WriteFile(badFile, bad, 0o600)
		if _, _, err := runErr(t, env, "backup", "verify", badFile, "--identity", idFile); err == nil {
			t.Error("verify accepted a corrupted backup")
		}
		forged := reencryptTampered(t, bk1, identity)
		if _, _, err := runErr(t, env, "backup", "verify", forged, "--identity", idFile); err == nil || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("verify of a re-encrypted tampered archive: %v", err)
		}

		// Erasure: requested by the customer, approved by an admin.
		er := s.expect(s.do("POST", "/api/v1/me/erasure-request", alice, nil), 202)
		s.expect(s.do("POST", "/api/v1/me/erasure-request", alice, nil), 409)
		s.expect(s.do("POST", "/api/v1/erasure-requests/"+er.str("id")+"/approve", proc, nil), 403)
		list := s.expect(s.do("GET", "/api/v1/erasure-requests?status=pending", admin, nil), 200).items()
		if len(list) != 1 || list[0]["id"] != er.str("id") {
			t.Fatalf("pending requests: %v", list)
		}
		s.expect(s.do("POST", "/api/v1/erasure-requests/"+er.str("id")+"/approve", admin, nil), 200)
		s.expect(s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "alice@example.com", "password": pw}), 401)
		s.expect(s.do("GET", "/api/v1/me", alice, nil), 401)
		gone := s.expect(s.do("GET", "/api/v1/claims/"+claimID, proc, nil), 200)
		if gone.str("description") != store.ErasedText || gone.str("payable", "amount") != "800.00" || gone.str("status") != "approved" {
			t.Errorf("claim after erasure: %s", gone.raw)
		}
		// Her documents' content is gone too (per-file keys, not the
		// subject key): the download is refused and no blob is left.
		s.expect(s.do("GET", "/api/v1/claims/"+claimID+"/documents/"+doc.str("id")+"/content", proc, nil), 404)
		if n := countBlobs(t, filepath.Join(dataDir, "documents")); n != 0 {
			t.Errorf("%d document blobs left after erasure", n)
		}
		if out := mustRun(t, env, "", "audit", "verify"); !strings.Contains(out, "intact") {
			t.Errorf("audit verify after erasure: %s", out)
		}
		trail := s.expect(s.do("GET", "/api/v1/audit?action=subject.erased", admin, nil), 200).items()
		if len(trail) != 1 {
			t.Errorf("subject.erased audited %d times", len(trail))
		}
		// The register reaches the keys dir (it outlives any restore).
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, _ := os.ReadFile(filepath.Join(keysDir, "erasure-register.jsonl"))
			if strings.Contains(string(b), holderID) {
				assertNoPlanted(t, "the erasure register", b)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("erasure register file lacks %s: %q", holderID, b)
			}
			time.Sleep(50 * time.Millisecond)
		}

		// Restoring the backup taken BEFORE the erasure does not bring her back.
		envB := restoreEnv(t, d, env, keysDir)
		out := mustRun(t, envB, "", "backup", "restore", bk1, "--identity", idFile, "--data-dir", envB["CLAIMS_DATA_DIR"], "--keys-dir", keysDir)
		if !strings.Contains(out, "1 subjects erased again") {
			t.Errorf("restore: %s", out)
		}
		if n := countBlobs(t, filepath.Join(envB["CLAIMS_DATA_DIR"], "documents")); n != 0 {
			t.Errorf("the restore brought back %d erased document blobs", n)
		}
		resB := openInstallation(t, (&cfgURL{envB}).target(), keysDir)
		err = resB.Read(context.Background(), func(tx *store.Tx) error {
			h, err := tx.Holder(context.Background(), claims.ID(holderID))
			if err != nil {
				return err
			}
			if !h.Erased || h.FullName.Reveal() != "" {
				return fmt.Errorf("restored holder readable: %+v", h)
			}
			c, err := tx.Claim(context.Background(), claims.ID(claimID))
			if err != nil {
				return err
			}
			if c.Description != store.ErasedText || c.Payable.Minor != 80000 {
				return fmt.Errorf("restored claim: %q %v", c.Description, c.Payable)
			}
			if _, err := tx.UserByEmail(context.Background(), "alice@example.com"); claims.KindOf(err) != claims.NotFound {
				return fmt.Errorf("restored account still found by email: %v", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		// Keys: a two-step rotation while the server runs.
		out = mustRun(t, env, "", "keys", "rotate", "--stage")
		if !strings.Contains(out, "KEK k2 added; k1 stays primary") {
			t.Fatalf("stage: %s", out)
		}
		s2, _ := startServerOut(t, env) // a node restarted with k2 loaded
		mustRun(t, env, "", "keys", "rotate", "--activate", "k2")
		st := mustRun(t, env, "", "keys", "status")
		if !strings.Contains(st, "k2       primary") || !strings.Contains(st, "k1       unused") {
			t.Fatalf("status after rotation:\n%s", st)
		}
		// The node that was never restarted still wraps under k1: k1 is in
		// use again, and retiring it is refused until a rewrap.
		s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "late@example.com", "password": pw}), 202)
		s.verifyEmail("late@example.com")
		if _, _, err := runErr(t, env, "keys", "retire", "k1"); err == nil || !strings.Contains(err.Error(), "refusing to retire KEK k1") {
			t.Fatalf("retire of a KEK in use: %v", err)
		}
		if _, _, err := runErr(t, env, "keys", "retire", "k2"); err == nil || !strings.Contains(err.Error(), "primary") {
			t.Fatalf("retire of the primary: %v", err)
		}
		mustRun(t, env, "", "keys", "rotate", "--no-add")
		proc2 := s2.login("proc@example.com", pw)
		if got := s2.expect(s2.do("GET", "/api/v1/claims/"+claimID, proc2, nil), 200); got.str("payable", "amount") != "800.00" {
			t.Errorf("claim after rotation: %s", got.raw)
		}
		// Her document was erased with her (rotation of document keys is
		// covered by the store's rotation test).
		s2.expect(s2.do("GET", "/api/v1/claims/"+claimID+"/documents/"+doc.str("id")+"/content", proc2, nil), 404)
		mustRun(t, env, "", "keys", "retire", "k1")
		if _, err := os.Stat(filepath.Join(keysDir, "kek-k1.key")); err == nil {
			t.Error("retired KEK file still there")
		}
		// Re-encryption under new subject keys while the server serves.
		_, rstderr, err := runErr(t, env, "keys", "reencrypt")
		if err != nil || !strings.Contains(rstderr, "reencrypt: ") || !strings.Contains(rstderr, " holders") {
			t.Fatalf("reencrypt: %v %s", err, rstderr)
		}
		st = mustRun(t, env, "", "keys", "status")
		if !strings.Contains(st, "generation 2: finished") {
			t.Errorf("status after reencrypt:\n%s", st)
		}
		if ex := s2.do("GET", "/api/v1/policies", proc2, nil); ex.status != 200 || !strings.Contains(string(ex.raw), "HLTH-7002") {
			t.Errorf("policies after reencrypt: %d %s", ex.status, ex.raw)
		}

		// And the server log never held a planted value.
		assertNoPlanted(t, "the server log", []byte(serverLog.String()))
	})
}

// cfgURL gives the database target of an environment.
type cfgURL struct{ env map[string]string }

func (c *cfgURL) target() string {
	if u := c.env["CLAIMS_DATABASE_URL"]; u != "" {
		return u
	}
	return filepath.Join(c.env["CLAIMS_DATA_DIR"], "claims.db")
}

// restoreEnv is a fresh installation (empty data dir, and an empty
// database on PostgreSQL) sharing the keys dir.
func restoreEnv(t *testing.T, d store.Dialect, env map[string]string, keysDir string) map[string]string {
	e := map[string]string{}
	for k, v := range env {
		e[k] = v
	}
	e["CLAIMS_DATA_DIR"] = filepath.Join(t.TempDir(), "restored")
	e["CLAIMS_KEYS_DIR"] = keysDir
	if d == store.Postgres {
		e["CLAIMS_DATABASE_URL"] = storetest.URL(t, d)
	}
	return e
}

// reencryptTampered decrypts a backup, changes one byte of its first data
// member, and encrypts it again to the same recipient: only the signed
// checksums can catch this.
func reencryptTampered(t *testing.T, file string, id *age.X25519Identity) string {
	t.Helper()
	f, _ := os.Open(file)
	defer f.Close()
	r, err := age.Decrypt(f, id)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "forged.age")
	o, _ := os.Create(out)
	w, _ := age.Encrypt(o, id.Recipient())
	tw := tar.NewWriter(w)
	tr := tar.NewReader(r)
	first := true
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		b, _ := io.ReadAll(tr)
		if first && len(b) > 100 {
			b[len(b)/2] ^= 0x20
			first = false
		}
		tw.WriteHeader(h)
		tw.Write(b)
	}
	tw.Close()
	w.Close()
	o.Close()
	return out
}

var _ = sql.ErrNoRows

// countBlobs counts the blob files under a documents folder (not temp
// files).
func countBlobs(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.Contains(d.Name(), ".tmp") && !strings.HasPrefix(d.Name(), ".") {
			n++
		}
		return nil
	})
	return n
}
