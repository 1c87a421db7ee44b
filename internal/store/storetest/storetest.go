// Package storetest opens real, migrated databases for tests: a SQLite file
// in a temporary folder, and a fresh PostgreSQL database on the server named
// by CLAIMS_TEST_DATABASE_URL. Each call gets its own database, dropped when
// the test ends, so tests stay independent and may run in parallel.
//
// It is test support: it registers both database drivers, which only main
// and tests otherwise do.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // drivers for tests
	_ "modernc.org/sqlite"

	"github.com/openclaims/claims/internal/seal"
	"github.com/openclaims/claims/internal/store"
)

// Engines lists the engines a test should run on.
var Engines = []store.Dialect{store.SQLite, store.Postgres}

// URL returns a database URL of engine d for a fresh, empty database, or
// skips the test when PostgreSQL is not configured (failing instead under
// CI=true, where it must be).
func URL(t testing.TB, d store.Dialect) string {
	t.Helper()
	if d == store.SQLite {
		return filepath.Join(t.TempDir(), "claims.db")
	}
	admin := os.Getenv("CLAIMS_TEST_DATABASE_URL")
	if admin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CLAIMS_TEST_DATABASE_URL is not set; CI must run the PostgreSQL half (see .ci/run)")
		}
		t.Skip("PostgreSQL half skipped: CLAIMS_TEST_DATABASE_URL not set (scripts/test-services start prints it)")
	}
	var b [6]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// Keys returns a fresh key ring and index key.
func Keys(t testing.TB) seal.Keys {
	t.Helper()
	k, err := seal.LoadOrCreate(filepath.Join(t.TempDir(), "keys"), false)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Open returns a migrated database of engine d with fresh keys.
func Open(t testing.TB, d store.Dialect) *store.DB {
	t.Helper()
	keys := Keys(t)
	return OpenWith(t, URL(t, d), keys)
}

// OpenWith opens and migrates the database at url with keys.
func OpenWith(t testing.TB, url string, keys seal.Keys) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, url, store.Options{Keys: keys.Ring, Index: keys.Index})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// ForEach runs fn as a subtest per engine.
func ForEach(t *testing.T, fn func(t *testing.T, d store.Dialect)) {
	for _, d := range Engines {
		t.Run(string(d), func(t *testing.T) { fn(t, d) })
	}
}

// IsPostgres reports whether url names PostgreSQL.
func IsPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}
