// Package store keeps claims data in SQLite (the embedded default) or
// PostgreSQL, behind one API. It owns the SQL, the migrations of both
// engines and the sealing of sensitive columns: personal, medical and
// financial values are encrypted here, with the row's table, column and ID as
// additional data, before they reach the database.
//
// It applies no business rule: workflow decides, store records. Every read
// and write runs in a transaction through DB.InTx.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/seal"
)

// Dialect names a database engine.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is the claims database.
type DB struct {
	sql     *sql.DB // writes (and reads inside write transactions)
	ro      *sql.DB // read-only transactions: a separate pool on SQLite
	dialect Dialect
	keys    *seal.KeyRing
	index   seal.IndexKey
	now     func() time.Time
}

// Options configure Open.
type Options struct {
	Keys  *seal.KeyRing
	Index seal.IndexKey
	Now   func() time.Time // nil = time.Now
	// MaxOpenConns bounds the PostgreSQL pool (default 20).
	MaxOpenConns int
}

// Open connects to the database named by url: "postgres://..." (or
// "postgresql://...") selects PostgreSQL, anything else is a SQLite file path.
// It does not migrate; call Migrate.
func Open(ctx context.Context, url string, opt Options) (*DB, error) {
	db := &DB{keys: opt.Keys, index: opt.Index, now: opt.Now}
	if db.now == nil {
		db.now = time.Now
	}
	if db.keys == nil {
		return nil, errors.New("store: a key ring is required")
	}
	var err error
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		db.dialect = Postgres
		db.sql, err = sql.Open("pgx", url)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		n := opt.MaxOpenConns
		if n <= 0 {
			n = 20
		}
		db.sql.SetMaxOpenConns(n)
		db.sql.SetMaxIdleConns(n)
		db.sql.SetConnMaxIdleTime(5 * time.Minute)
	} else {
		db.dialect = SQLite
		// Pragmas go in the DSN so every pooled connection gets them.
		// busy_timeout first: the journal_mode change itself may need to wait
		// for another connection's lock. WAL lets readers run beside the one
		// writer; synchronous=NORMAL is durable across application crashes in
		// WAL mode (only an OS crash can lose the last transactions);
		// foreign_keys is off by default in SQLite and must be turned on per
		// connection. _txlock=immediate makes every transaction take the write
		// lock at BEGIN, so two writers queue on busy_timeout instead of
		// failing later with SQLITE_BUSY on lock upgrade.
		dsn := "file:" + url + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
			"&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_txlock=immediate"
		db.sql, err = sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", url, err)
		}
		// One writer at a time is SQLite's model: the write pool has one
		// connection, so writers queue in Go rather than spin on the lock,
		// and a separate pool of deferred, query-only connections lets reads
		// run beside the writer (WAL).
		db.sql.SetMaxOpenConns(1)
		db.ro, err = sql.Open("sqlite", "file:"+url+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_pragma=query_only(1)")
		if err != nil {
			db.sql.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", url, err)
		}
		db.ro.SetMaxOpenConns(8)
	}
	if db.ro == nil {
		db.ro = db.sql
	}
	if err := db.sql.PingContext(ctx); err != nil {
		db.sql.Close()
		return nil, fmt.Errorf("connect %s: %w", db.dialect, err)
	}
	return db, nil
}

// Close closes the connection pools.
func (db *DB) Close() error {
	if db.ro != db.sql {
		db.ro.Close()
	}
	return db.sql.Close()
}

// Dialect reports the engine.
func (db *DB) Dialect() Dialect { return db.dialect }

// SQL returns the underlying pool, for tests and tools that inspect raw
// rows (tamper tests, backups).
func (db *DB) SQL() *sql.DB { return db.sql }

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.sql.PingContext(ctx) }

// Tx is one transaction. It is valid only inside the InTx callback.
type Tx struct {
	tx   *sql.Tx
	db   *DB
	now  time.Time
	keys keyCache // subject keys unwrapped in this transaction
	// readOnly is set for DB.Read transactions (PostgreSQL refuses row
	// locks in them).
	readOnly bool
}

// Now is the transaction's timestamp: every row a transaction writes shares it.
func (tx *Tx) Now() time.Time { return tx.now }

// InTx runs fn in a transaction, committing if fn returns nil and rolling
// back otherwise. A transaction that loses a serialization race on
// PostgreSQL is retried a few times, so callers see a clean answer instead of
// a transient error.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := db.inTx(ctx, fn)
		if err != nil && attempt < 4 && db.retryable(err) {
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
			continue
		}
		return err
	}
}

// Read runs fn in a read-only transaction. On SQLite it does not take the
// write lock, so reads proceed while a write is in progress.
func (db *DB) Read(ctx context.Context, fn func(tx *Tx) error) error {
	return db.run(ctx, db.ro, &sql.TxOptions{ReadOnly: db.dialect == Postgres}, fn)
}

func (db *DB) inTx(ctx context.Context, fn func(tx *Tx) error) error {
	return db.run(ctx, db.sql, nil, fn)
}

func (db *DB) run(ctx context.Context, pool *sql.DB, opts *sql.TxOptions, fn func(tx *Tx) error) error {
	sqlTx, err := pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer sqlTx.Rollback() // no-op after Commit
	if err := fn(&Tx{tx: sqlTx, db: db, now: db.now().UTC().Truncate(time.Microsecond), readOnly: opts != nil && opts.ReadOnly}); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// retryable reports PostgreSQL serialization failures and deadlocks.
func (db *DB) retryable(err error) bool {
	if db.dialect != Postgres {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "SQLSTATE 40001") || strings.Contains(s, "SQLSTATE 40P01")
}

func (tx *Tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return tx.tx.ExecContext(ctx, tx.db.rebind(q), args...)
}

func (tx *Tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return tx.tx.QueryContext(ctx, tx.db.rebind(q), args...)
}

func (tx *Tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return tx.tx.QueryRowContext(ctx, tx.db.rebind(q), args...)
}

// forUpdate returns " FOR UPDATE" on PostgreSQL, where a row lock serializes
// writers of one policy or claim; SQLite already admits one writer at a time.
func (tx *Tx) forUpdate() string {
	if tx.db.dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// forShare returns " FOR SHARE" in PostgreSQL write transactions: a writer
// that seals under a holder's subject key holds the holder row against a
// concurrent re-encryption or erasure (which lock it FOR UPDATE), so no value
// is sealed under a key that is being replaced.
func (tx *Tx) forShare() string {
	if tx.db.dialect == Postgres && !tx.readOnly {
		return " FOR SHARE"
	}
	return ""
}

// rebind rewrites ? placeholders as $1, $2, ... for PostgreSQL. Queries are
// constants in this package, so skipping quoted literals is enough.
func (db *DB) rebind(q string) string {
	if db.dialect != Postgres {
		return q
	}
	var b strings.Builder
	n, quoted := 0, false
	for _, r := range q {
		switch {
		case r == '\'':
			quoted = !quoted
		case r == '?' && !quoted:
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// isUniqueViolation reports whether err is a unique-constraint failure on
// either engine.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "SQLSTATE 23505")
}

// micros and fromMicros convert times to the on-disk form.
func micros(t time.Time) int64 { return t.UTC().UnixMicro() }

func fromMicros(n int64) time.Time { return time.UnixMicro(n).UTC() }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

//go:embed migrations
var migrations embed.FS

// Migrate applies, in order and each in its own transaction, every migration
// for db's engine that schema_migrations does not list yet, and returns the
// resulting version.
func (db *DB) Migrate(ctx context.Context) (int, error) {
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    TEXT PRIMARY KEY,
		applied_at BIGINT NOT NULL
	)`
	err := db.InTx(ctx, func(tx *Tx) error {
		if db.dialect == Postgres {
			// Nodes starting at once on a fresh database would race on the
			// catalog (duplicate pg_type row) without the lock. A table that
			// exists is not created again: CREATE ... IF NOT EXISTS needs the
			// CREATE privilege even then, which the app role does not have.
			if _, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock(727274)`); err != nil {
				return err
			}
			var exists bool
			if err := tx.queryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil || exists {
				return err
			}
		}
		_, err := tx.exec(ctx, create)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/"+string(db.dialect)+"/*.sql")
	if err != nil {
		return 0, err
	}
	slices.Sort(names)
	for _, name := range names {
		if err := db.migrateOne(ctx, name); err != nil {
			return 0, fmt.Errorf("migration %s: %w", path.Base(name), err)
		}
	}
	return len(names), nil
}

func (db *DB) migrateOne(ctx context.Context, name string) error {
	version := strings.TrimSuffix(path.Base(name), ".sql")
	body, err := migrations.ReadFile(name)
	if err != nil {
		return err
	}
	return db.InTx(ctx, func(tx *Tx) error {
		if db.dialect == Postgres {
			// Two nodes starting at once must not both apply a migration.
			if _, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock(727274)`); err != nil {
				return err
			}
		}
		var n int
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.tx.ExecContext(ctx, string(body)); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, micros(tx.now))
		return err
	})
}

// SchemaVersion returns how many migrations are applied and how many the
// binary knows, for /readyz and `claims migrate`.
func (db *DB) SchemaVersion(ctx context.Context) (applied, known int, err error) {
	names, _ := fs.Glob(migrations, "migrations/"+string(db.dialect)+"/*.sql")
	err = db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&applied)
	return applied, len(names), err
}
