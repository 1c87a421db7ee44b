package backup

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/store"
)

// The PostgreSQL export: every table of the current schema, as JSON lines,
// read in ONE repeatable-read, read-only transaction (a consistent snapshot
// while the server keeps writing). The first line of a file names the
// table and its columns; each further line is one row as a JSON array, with
// bytea values as {"b": "<base64>"}. Files are numbered in foreign-key
// order so a restore inserts parents first.

type tableHeader struct {
	Table   string   `json:"table"`
	Columns []string `json:"columns"`
}

// tablesInOrder lists the schema's tables, parents before children.
func tablesInOrder(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, t)
	}
	rows.Close()
	deps := map[string][]string{}
	rows, err = q.QueryContext(ctx, `SELECT ch.relname, pa.relname FROM pg_constraint k
		JOIN pg_class ch ON ch.oid = k.conrelid JOIN pg_class pa ON pa.oid = k.confrelid
		JOIN pg_namespace n ON n.oid = ch.relnamespace WHERE k.contype = 'f' AND n.nspname = current_schema()`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var child, parent string
		if err := rows.Scan(&child, &parent); err != nil {
			rows.Close()
			return nil, err
		}
		if child != parent {
			deps[child] = append(deps[child], parent)
		}
	}
	rows.Close()
	var order []string
	done := map[string]bool{}
	var visit func(t string, depth int) error
	visit = func(t string, depth int) error {
		if done[t] {
			return nil
		}
		if depth > len(tables) {
			return fmt.Errorf("backup: foreign-key cycle at %s", t)
		}
		for _, p := range deps[t] {
			if err := visit(p, depth+1); err != nil {
				return err
			}
		}
		done[t] = true
		order = append(order, t)
		return nil
	}
	for _, t := range tables {
		if err := visit(t, 0); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func exportPostgres(ctx context.Context, db *store.DB, dir string, prog io.Writer) ([]string, error) {
	tx, err := db.SQL().BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	tables, err := tablesInOrder(ctx, tx)
	if err != nil {
		return nil, err
	}
	var names []string
	for i, t := range tables {
		name := fmt.Sprintf("%03d-%s.jsonl", i+1, t)
		n, err := exportTable(ctx, tx, t, filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("backup: export %s: %w", t, err)
		}
		progress(prog, "table %s: %d rows", t, n)
		names = append(names, name)
	}
	return names, tx.Commit()
}

func exportTable(ctx context.Context, tx *sql.Tx, table, file string) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT * FROM `+quoteIdent(table))
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 256<<10)
	enc := json.NewEncoder(w)
	if err := enc.Encode(tableHeader{Table: table, Columns: cols}); err != nil {
		return 0, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		out := make([]any, len(cols))
		for i, v := range vals {
			switch x := v.(type) {
			case []byte:
				out[i] = map[string]string{"b": base64.StdEncoding.EncodeToString(x)}
			case time.Time:
				out[i] = map[string]string{"t": x.UTC().Format(time.RFC3339Nano)}
			default:
				out[i] = x
			}
		}
		if err := enc.Encode(out); err != nil {
			return n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	if err := w.Flush(); err != nil {
		return n, err
	}
	return n, f.Sync()
}

func decodeValue(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		return x.Float64()
	case map[string]any:
		if b, ok := x["b"].(string); ok {
			return base64.StdEncoding.DecodeString(b)
		}
		if t, ok := x["t"].(string); ok {
			return time.Parse(time.RFC3339Nano, t)
		}
		return nil, errors.New("unknown value object")
	}
	return v, nil
}

// importPostgres loads the exported tables into db's (empty, migrated)
// schema in one transaction, skipping schema_migrations, and moves serial
// sequences past the restored ids.
func importPostgres(ctx context.Context, db *store.DB, dir string, files []string, prog io.Writer) error {
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	slices.Sort(files)
	for _, name := range files {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		dec := json.NewDecoder(bufio.NewReaderSize(f, 256<<10))
		dec.UseNumber()
		var h tableHeader
		if err := dec.Decode(&h); err != nil {
			f.Close()
			return fmt.Errorf("restore %s: %w", name, err)
		}
		if h.Table == "schema_migrations" {
			f.Close()
			continue
		}
		cols := make([]string, len(h.Columns))
		ph := make([]string, len(h.Columns))
		for i, c := range h.Columns {
			cols[i], ph[i] = quoteIdent(c), "$"+strconv.Itoa(i+1)
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO `+quoteIdent(h.Table)+` (`+strings.Join(cols, ", ")+`) VALUES (`+strings.Join(ph, ", ")+`)`)
		if err != nil {
			f.Close()
			return fmt.Errorf("restore %s: %w", h.Table, err)
		}
		n := 0
		for {
			var row []any
			if err := dec.Decode(&row); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				f.Close()
				return fmt.Errorf("restore %s: %w", h.Table, err)
			}
			for i := range row {
				if row[i], err = decodeValue(row[i]); err != nil {
					f.Close()
					return fmt.Errorf("restore %s: %w", h.Table, err)
				}
			}
			if _, err := stmt.ExecContext(ctx, row...); err != nil {
				f.Close()
				return fmt.Errorf("restore %s: %w", h.Table, err)
			}
			n++
		}
		stmt.Close()
		f.Close()
		progress(prog, "restored table %s: %d rows", h.Table, n)
	}
	rows, err := tx.QueryContext(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND column_default LIKE 'nextval(%'`)
	if err != nil {
		return err
	}
	var serials [][2]string
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			rows.Close()
			return err
		}
		serials = append(serials, [2]string{t, c})
	}
	rows.Close()
	for _, s := range serials {
		if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), COALESCE((SELECT MAX(`+quoteIdent(s[1])+`) FROM `+quoteIdent(s[0])+`), 0) + 1, false)`,
			s[0], s[1]); err != nil {
			return fmt.Errorf("restore sequence of %s.%s: %w", s[0], s[1], err)
		}
	}
	return tx.Commit()
}

// postgresEmpty reports whether every table of db's schema (except
// schema_migrations) is empty.
func postgresEmpty(ctx context.Context, db *store.DB) (bool, error) {
	tables, err := tablesInOrder(ctx, db.SQL())
	if err != nil {
		return false, err
	}
	for _, t := range tables {
		if t == "schema_migrations" {
			continue
		}
		var any bool
		if err := db.SQL().QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+quoteIdent(t)+`)`).Scan(&any); err != nil {
			return false, err
		}
		if any {
			return false, nil
		}
	}
	return true, nil
}
