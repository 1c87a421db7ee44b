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
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// wq queues SQLite writers in arrival order: a one-slot channel taken
	// before BeginTx (blocked senders are served first come, first served),
	// where database/sql would hand the one write connection to a random
	// waiter. nil on PostgreSQL.
	wq chan struct{}
	// stmts and roStmts keep the prepared statements of the write and read
	// pools (SQLite only; nil on PostgreSQL, where pgx already caches
	// prepared statements per connection).
	stmts, roStmts *stmtCache
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
		// failing later with SQLITE_BUSY on lock upgrade. cache_size: the one
		// write connection keeps up to 16 MB of pages (the default is 2 MB),
		// so large writes such as an import batch re-read fewer index pages
		// from the file (-9 % on the 12,336-row import).
		dsn := "file:" + url + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
			"&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_pragma=cache_size(-16000)&_txlock=immediate"
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
		db.wq = make(chan struct{}, 1)
		db.stmts, db.roStmts = newStmtCache(db.sql), newStmtCache(db.ro)
	}
	if db.ro == nil {
		db.ro = db.sql
	}
	if err := db.sql.PingContext(ctx); err != nil {
		db.sql.Close()
		return nil, fmt.Errorf("connect %s: %w", db.dialect, err)
	}
	if db.dialect == SQLite {
		// The database holds sealed data only, but its metadata (amounts,
		// statuses) is still nobody else's business: owner-only, like the
		// keys. The WAL and shared-memory files take the database's mode.
		for _, f := range []string{url, url + "-wal", url + "-shm"} {
			if err := os.Chmod(f, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("restrict %s: %w", f, err)
			}
		}
	}
	return db, nil
}

// Close closes the cached statements and the connection pools.
func (db *DB) Close() error {
	db.stmts.close()
	db.roStmts.close()
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
	stmts    *stmtCache // the pool's prepared statements (nil: none)
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
	err := db.run(ctx, db.ro, &sql.TxOptions{ReadOnly: db.dialect == Postgres}, db.roStmts, fn)
	db.roStmts.fill(ctx)
	return err
}

func (db *DB) inTx(ctx context.Context, fn func(tx *Tx) error) error {
	if db.wq != nil {
		select {
		case db.wq <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("begin: %w", ctx.Err())
		}
		defer func() { <-db.wq }()
	}
	err := db.run(ctx, db.sql, nil, db.stmts, fn)
	// Still holding the writer's turn, so preparing on the one write
	// connection does not wait behind another writer.
	db.stmts.fill(ctx)
	return err
}

func (db *DB) run(ctx context.Context, pool *sql.DB, opts *sql.TxOptions, stmts *stmtCache, fn func(tx *Tx) error) error {
	sqlTx, err := pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer sqlTx.Rollback() // no-op after Commit
	if err := fn(&Tx{tx: sqlTx, db: db, now: db.now().UTC().Truncate(time.Microsecond), readOnly: opts != nil && opts.ReadOnly, stmts: stmts}); err != nil {
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
	q = tx.db.rebind(q)
	if s := tx.stmt(ctx, q); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return tx.tx.ExecContext(ctx, q, args...)
}

func (tx *Tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	q = tx.db.rebind(q)
	if s := tx.stmt(ctx, q); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return tx.tx.QueryContext(ctx, q, args...)
}

func (tx *Tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	q = tx.db.rebind(q)
	if s := tx.stmt(ctx, q); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return tx.tx.QueryRowContext(ctx, q, args...)
}

// stmt returns the cached prepared statement for q bound to this
// transaction, or nil (q is then run unprepared and, if cacheable, prepared
// after the transaction).
func (tx *Tx) stmt(ctx context.Context, q string) *sql.Stmt {
	if ps := tx.stmts.get(q); ps != nil {
		return tx.tx.StmtContext(ctx, ps)
	}
	return nil
}

// maxCachedStmts bounds a pool's statement cache: queries are constants of
// this package, but some are assembled from filters (lists, IN lists), and
// those beyond the bound simply run unprepared.
const maxCachedStmts = 256

// stmtCache prepares each query once per pool instead of on every call
// (SQLite spends a sixth of a claim creation parsing SQL otherwise). A query
// first seen inside a transaction runs unprepared and is prepared after the
// transaction: preparing on the pool inside it would wait for a connection,
// which on SQLite's one-connection write pool is the one the transaction
// holds. Transactions use the statements through Tx.StmtContext, which
// reuses the statement already prepared on their connection.
type stmtCache struct {
	pool   *sql.DB
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	want   map[string]bool
	closed bool
}

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, m: map[string]*sql.Stmt{}, want: map[string]bool{}}
}

// cacheable: single DML/SELECT statements of a reasonable size.
func cacheable(q string) bool {
	if len(q) > 4096 || strings.Contains(q, ";") {
		return false
	}
	q = strings.TrimSpace(q)
	for _, p := range []string{"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"} {
		if len(q) >= len(p) && strings.EqualFold(q[:len(p)], p) {
			return true
		}
	}
	return false
}

func (c *stmtCache) get(q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[q]; ok {
		return s
	}
	if !c.closed && len(c.m)+len(c.want) < maxCachedStmts && cacheable(q) {
		c.want[q] = true
	}
	return nil
}

// fill prepares the queries seen since the last fill. Call it outside any
// transaction of the pool. A query that fails to prepare is not retried.
func (c *stmtCache) fill(ctx context.Context) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if len(c.want) == 0 || c.closed {
		c.mu.Unlock()
		return
	}
	qs := make([]string, 0, len(c.want))
	for q := range c.want {
		qs = append(qs, q)
	}
	c.mu.Unlock()
	for _, q := range qs {
		s, err := c.pool.PrepareContext(ctx, q)
		c.mu.Lock()
		delete(c.want, q)
		switch {
		case err != nil && ctx.Err() != nil:
			// cancelled: seen again, prepared again
		case err != nil:
			c.m[q] = nil // run unprepared from now on
		case c.closed || c.m[q] != nil:
			s.Close()
		default:
			c.m[q] = s
		}
		c.mu.Unlock()
	}
}

func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for q, s := range c.m {
		if s != nil {
			s.Close()
		}
		delete(c.m, q)
	}
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
