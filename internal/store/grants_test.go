package store_test

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/seal"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
)

// pgRoles creates, on the test server, an owner role that owns a fresh
// database and an app role, both able to log in, and returns the URLs that
// connect as each. Roles are cluster-wide, so their names are random and
// they are dropped (after the database) when the test ends.
func pgRoles(t *testing.T) (ownerURL, appURL, app string) {
	t.Helper()
	dbURL := storetest.URL(t, store.Postgres) // skips or fails without a server
	admin, err := sql.Open("pgx", os.Getenv("CLAIMS_TEST_DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var b [4]byte
	rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	owner, app := "owner_x_"+suffix, "app_x_"+suffix
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	for _, s := range []string{
		`CREATE ROLE ` + owner + ` LOGIN PASSWORD 'owner-pw'`,
		`CREATE ROLE ` + app + ` LOGIN PASSWORD 'app-pw'`,
		`ALTER DATABASE ` + dbName + ` OWNER TO ` + owner,
	} {
		if _, err := admin.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	t.Cleanup(func() {
		// Pools opened by the test are closed by now (cleanups run last
		// registered first); the database goes before the roles it uses.
		for _, s := range []string{`DROP DATABASE IF EXISTS ` + dbName + ` WITH (FORCE)`, `DROP ROLE IF EXISTS ` + app, `DROP ROLE IF EXISTS ` + owner} {
			if _, err := admin.Exec(s); err != nil {
				t.Errorf("%s: %v", s, err)
			}
		}
	})
	as := func(user, pw string) string {
		v := *u
		v.User = url.UserPassword(user, pw)
		return v.String()
	}
	return as(owner, "owner-pw"), as(app, "app-pw"), app
}

func openAs(t *testing.T, url string, keys seal.Keys) *store.DB {
	t.Helper()
	db, err := store.Open(ctx, url, store.Options{Keys: keys.Ring, Index: keys.Index})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestLeastPrivilege: migrations run as the owner role; the app role the
// server uses can read and write rows but not change the schema, and can
// only append to the audit log.
func TestLeastPrivilege(t *testing.T) {
	t.Parallel()
	ownerURL, appURL, app := pgRoles(t)
	keys := storetest.Keys(t)

	owner := openAs(t, ownerURL, keys)
	if err := owner.GrantApp(ctx, app); err == nil || !strings.Contains(err.Error(), "migrated") {
		t.Errorf("GrantApp before migrating: %v", err)
	}
	if _, err := owner.Migrate(ctx); err != nil {
		t.Fatalf("migrate as owner: %v", err)
	}
	for _, bad := range []string{"", "App", "app-x", "app;drop", `a"b`, "1app", strings.Repeat("a", 64)} {
		if err := owner.GrantApp(ctx, bad); err == nil {
			t.Errorf("GrantApp(%q) accepted", bad)
		}
	}
	if err := owner.GrantApp(ctx, "no_such_role_x"); err == nil {
		t.Error("GrantApp to a missing role succeeded")
	}
	if ou, _ := url.Parse(ownerURL); owner.GrantApp(ctx, ou.User.Username()) == nil {
		t.Error("GrantApp to the owner itself succeeded")
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := owner.GrantApp(ctx, app); err != nil {
			t.Fatalf("GrantApp: %v", err)
		}
	}

	// The server starts as the app role: Migrate finds nothing to do and
	// needs no CREATE privilege for that.
	db := openAs(t, appURL, keys)
	if n, err := db.Migrate(ctx); err != nil || n == 0 {
		t.Fatalf("migrate as the app role (all applied): %d, %v", n, err)
	}
	if applied, known, err := db.SchemaVersion(ctx); err != nil || applied != known {
		t.Fatalf("SchemaVersion as app: %d/%d, %v", applied, known, err)
	}

	// Ordinary work: every table written, the sequence used, rows updated
	// and deleted where the product does that.
	h := newHolder(t, db, claims.Policyholder{FullName: "App Role", Email: "app@example.com"})
	pol := newPolicy(t, db, h.ID, 100000)
	u := newUser(t, db, "app-user@example.com", claims.RoleClaimsProcessor)
	c := insertClaim(t, db, claimOn(pol, "2026-02-01", time.Now(), "written by the app role", 1000))
	tx(t, db, func(tx *store.Tx) error {
		c, err := tx.ClaimForUpdate(ctx, c.ID)
		if err != nil {
			return err
		}
		tr, err := c.MoveTo(claims.StatusSubmitted, u.ID, "submit", tx.Now())
		if err != nil {
			return err
		}
		if err := tx.UpdateClaim(ctx, &c); err != nil {
			return err
		}
		if err := tx.InsertTransition(ctx, c.HolderID, tr); err != nil { // claim_transitions_id_seq
			return err
		}
		s := store.Session{ID: claims.NewID(), UserID: u.ID, CreatedAt: tx.Now(), LastSeen: tx.Now(), ExpiresAt: tx.Now().Add(time.Hour)}
		if err := tx.InsertSession(ctx, s); err != nil {
			return err
		}
		if err := tx.RevokeSession(ctx, s.ID, "test"); err != nil {
			return err
		}
		if err := tx.SaveIdempotentResult(ctx, u.ID, "k", []byte("h"), c.ID); err != nil {
			return err
		}
		return tx.InsertPayment(ctx, store.Payment{ID: claims.NewID(), ClaimID: c.ID, Amount: usd(1), Reference: "r", PaidBy: u.ID})
	})
	appendAudit(t, db, 3)
	if n, err := db.VerifyAudit(ctx); err != nil || n != 3 {
		t.Fatalf("VerifyAudit as app: %d, %v", n, err)
	}
	if n := rawExec(t, db, `DELETE FROM idempotency_keys WHERE key = 'k'`); n != 1 {
		t.Errorf("app role deleted %d idempotency keys", n)
	}

	// What the app role must not do.
	for _, q := range []string{
		`CREATE TABLE x (id INTEGER)`,
		`CREATE INDEX claims_x ON claims(type)`,
		`ALTER TABLE claims ADD COLUMN x INTEGER`,
		`ALTER TABLE claims DROP COLUMN details`,
		`DROP TABLE payments`,
		`TRUNCATE claims CASCADE`,
		`DELETE FROM audit_log`,
		`UPDATE audit_log SET action = 'x' WHERE seq = 1`,
		`TRUNCATE audit_log`,
		`INSERT INTO schema_migrations (version, applied_at) VALUES ('9999_x', 0)`,
		`DELETE FROM schema_migrations`,
		`CREATE SCHEMA x`,
		`ALTER TABLE claims RENAME TO claims_old`,
		`CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'`,
	} {
		_, err := db.SQL().ExecContext(ctx, q)
		if err == nil {
			t.Errorf("app role may %s", q)
		} else if !strings.Contains(err.Error(), "42501") { // insufficient_privilege
			t.Errorf("%s: %v, want a permission error (SQLSTATE 42501)", q, err)
		}
	}
	if n, err := db.VerifyAudit(ctx); err != nil || n != 3 {
		t.Fatalf("audit log after the refused attempts: %d, %v", n, err)
	}

	// A later migration's table is invisible to the app role until
	// GrantApp runs again.
	if _, err := owner.SQL().ExecContext(ctx, `CREATE TABLE later (id INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `SELECT * FROM later`); err == nil {
		t.Error("app role reads a table created after the grant")
	}
	if err := owner.GrantApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `INSERT INTO later VALUES (1)`); err != nil {
		t.Errorf("after GrantApp again: %v", err)
	}
}

func TestGrantAppSQLite(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	if err := db.GrantApp(ctx, "app"); err == nil {
		t.Fatal("GrantApp on SQLite succeeded")
	}
}
