package cli_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
)

func TestMigrateCommand(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		t.Parallel()
		env := newEnv(t, d)
		first := mustRun(t, env, "", "migrate")
		if !strings.HasPrefix(first, string(d)+" schema at version ") {
			t.Fatalf("migrate: %q", first)
		}
		if again := mustRun(t, env, "", "migrate"); again != first {
			t.Fatalf("second migrate reported %q, first %q", again, first)
		}
		if _, err := run(t, env, "", "migrate", "extra"); err == nil {
			t.Error("migrate accepted an argument")
		}
		if d == store.SQLite {
			if _, err := run(t, env, "", "migrate", "--grant-to", "app"); err == nil || !strings.Contains(err.Error(), "PostgreSQL") {
				t.Errorf("--grant-to on SQLite: %v", err)
			}
		}
	})
}

// TestMigrateGrantTo walks the documented PostgreSQL set-up: an owner role
// owns the database and runs `claims migrate --grant-to APP`; the server
// then runs as APP, which works with the data but cannot change the schema.
func TestMigrateGrantTo(t *testing.T) {
	t.Parallel()
	dbURL := storetest.URL(t, store.Postgres)
	admin, err := sql.Open("pgx", os.Getenv("CLAIMS_TEST_DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var b [4]byte
	rand.Read(b[:])
	owner, app := "owner_x_"+hex.EncodeToString(b[:]), "app_x_"+hex.EncodeToString(b[:])
	u, _ := url.Parse(dbURL)
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
	ownerURL, appURL := as(owner, "owner-pw"), as(app, "app-pw")

	env := newEnv(t, store.SQLite) // a data dir with keys; the URL comes next
	env["CLAIMS_DATABASE_URL"] = appURL
	if _, err := run(t, env, "", "migrate"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("migrate as the app role on an empty database: %v, want permission denied", err)
	}
	if _, err := run(t, env, "", "migrate", "--database-url", ownerURL, "--grant-to", "Bad-Name"); err == nil {
		t.Error("--grant-to accepted an invalid role name")
	}
	out := mustRun(t, env, "", "migrate", "--database-url", ownerURL, "--grant-to", app)
	if !strings.Contains(out, "postgres schema at version") || !strings.Contains(out, "granted "+app) {
		t.Fatalf("migrate --grant-to: %q", out)
	}

	// Everything else runs as the app role.
	mustRun(t, env, pw+"\n", "user", "create", "--email", "admin@example.com", "--role", "admin", "--password-stdin")
	s := startServer(t, env)
	s.expect(s.do("GET", "/readyz", "", nil), 200)
	s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "alice@example.com", "password": pw, "fullName": "Alice"}), 202)
	s.verifyEmail("alice@example.com")
	if out := mustRun(t, env, "", "audit", "verify"); !strings.Contains(out, "intact") {
		t.Errorf("audit verify as the app role: %s", out)
	}

	appDB, err := sql.Open("pgx", appURL)
	if err != nil {
		t.Fatal(err)
	}
	defer appDB.Close()
	for _, q := range []string{`CREATE TABLE x (id INTEGER)`, `ALTER TABLE claims ADD COLUMN x INTEGER`, `DELETE FROM audit_log`, `DROP TABLE users`} {
		if _, err := appDB.ExecContext(context.Background(), q); err == nil || !strings.Contains(err.Error(), "42501") {
			t.Errorf("app role: %s: %v, want permission denied", q, err)
		}
	}
	var n int
	if err := appDB.QueryRow(`SELECT COUNT(*) FROM users`).Scan(&n); err != nil || n != 2 {
		t.Errorf("users as the app role: %d, %v", n, err)
	}
}
