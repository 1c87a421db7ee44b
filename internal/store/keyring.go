package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/seal"
)

// Key management over the stored data (docs/data-protection.md):
//
//   - KeyUsage counts, per KEK id, every value that names a KEK: values the
//     key ring sealed directly (kekColumns) and the wrapped subject keys.
//   - RewrapAll moves all of them to the ring's primary KEK in ONE
//     transaction, without touching data bodies (`claims keys rotate`).
//   - Reencrypt gives every policyholder a new subject key and re-seals
//     everything sealed under the old one, one holder per transaction, with
//     progress kept in policyholders.subject_key_version and key_reencrypt so
//     that an interrupted run resumes (`claims keys reencrypt`).
//
// Every column holding sealed data must be listed below; the tests plant
// values in each and check they stay readable through rotation and
// re-encryption.

// kekColumn is a column whose values were sealed (or wrapped) by the key
// ring itself, so their header names a KEK.
type kekColumn struct {
	table, column string // where the value lives
	aadColumn     string // the column name in its AAD (users.email_sealed is bound as users.email)
	wrappedDEK    bool   // a wrapped subject key (KeyRing.NewDEK) rather than a field (KeyRing.Seal)
}

var kekColumns = []kekColumn{
	{table: "users", column: "email_sealed", aadColumn: "email"},
	{table: "users", column: "mfa_secret", aadColumn: "mfa_secret"},
	{table: "outbox", column: "recipient", aadColumn: "recipient"},
	{table: "outbox", column: "body", aadColumn: "body"},
	{table: "policyholders", column: "subject_key", aadColumn: "subject_key", wrappedDEK: true},
}

func (c kekColumn) name() string { return c.table + "." + c.column }

// subjectColumn is a column sealed under a policyholder's subject key.
// query selects (row key, aad row id, sealed value) of one holder's rows;
// update writes the re-sealed value by row key.
type subjectColumn struct {
	name          string // table.column, for reports
	table, column string // AAD table and column
	query         string
	update        string
	intKey        bool // the row key is an integer id
}

var subjectColumns = []subjectColumn{
	{name: "policyholders.pii", table: "policyholders", column: "pii",
		query:  `SELECT id, id, pii FROM policyholders WHERE id = ? AND pii IS NOT NULL`,
		update: `UPDATE policyholders SET pii = ? WHERE id = ?`},
	{name: "claims.details", table: "claims", column: "details",
		query:  `SELECT id, id, details FROM claims WHERE holder_id = ?`,
		update: `UPDATE claims SET details = ? WHERE id = ?`},
	{name: "claims.decision_reason", table: "claims", column: "decision_reason",
		query:  `SELECT id, id, decision_reason FROM claims WHERE holder_id = ? AND decision_reason IS NOT NULL`,
		update: `UPDATE claims SET decision_reason = ? WHERE id = ?`},
	{name: "claim_lines.description", table: "claim_lines", column: "description",
		query: `SELECT l.id, l.id, l.description FROM claim_lines l JOIN claims c ON c.id = l.claim_id
			WHERE c.holder_id = ?`,
		update: `UPDATE claim_lines SET description = ? WHERE id = ?`},
	// A transition's reason is bound to claim@instant@status (see InsertTransition).
	{name: "claim_transitions.reason", table: "claim_transitions", column: "reason",
		query: `SELECT ` + castText("t.id") + `, t.claim_id || '@' || ` + castText("t.at") + ` || '@' || t.to_status, t.reason
			FROM claim_transitions t JOIN claims c ON c.id = t.claim_id WHERE c.holder_id = ? AND t.reason IS NOT NULL`,
		update: `UPDATE claim_transitions SET reason = ? WHERE id = ?`, intKey: true},
	{name: "claim_messages.body", table: "claim_messages", column: "body",
		query:  `SELECT id, id, body FROM claim_messages WHERE holder_id = ?`,
		update: `UPDATE claim_messages SET body = ? WHERE id = ?`},
	{name: "documents.filename", table: "documents", column: "filename",
		query:  `SELECT id, id, filename FROM documents WHERE holder_id = ?`,
		update: `UPDATE documents SET filename = ? WHERE id = ?`},
}

// castText is a portable cast (both engines accept CAST).
func castText(expr string) string { return "CAST(" + expr + " AS TEXT)" }

// KeyUsage is what `claims keys status` reports about the database.
type KeyUsage struct {
	// ByKEK counts values per KEK id and column ("users.email_sealed").
	ByKEK map[string]map[string]int
	// SubjectKeys counts live (not erased) subject keys per KEK id.
	SubjectKeys map[string]int
	// Malformed counts values whose header could not be parsed.
	Malformed int
	// Generations counts live holders per subject_key_version.
	Generations map[int64]int
	Erased      int
	// Reencrypt is the last re-encryption run, if any.
	Reencrypt *ReencryptState
}

// Total returns how many values KEK kid protects.
func (u KeyUsage) Total(kid string) int {
	n := 0
	for _, c := range u.ByKEK[kid] {
		n += c
	}
	return n
}

// KEKIDs returns the KEK ids found in the data, sorted.
func (u KeyUsage) KEKIDs() []string {
	ids := make([]string, 0, len(u.ByKEK))
	for id := range u.ByKEK {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if len(ids[i]) != len(ids[j]) {
			return len(ids[i]) < len(ids[j])
		}
		return ids[i] < ids[j]
	})
	return ids
}

// ReencryptState is the row of key_reencrypt.
type ReencryptState struct {
	Target     int64
	StartedAt  int64
	FinishedAt int64 // 0 while running or interrupted
}

const pageSize = 500

// eachSealed calls fn for every non-NULL value of column c, in pages by id,
// inside tx. fn must not query tx (rows of a page are read first).
func (tx *Tx) eachSealed(ctx context.Context, c kekColumn, fn func(id string, v []byte) error) error {
	after := ""
	for {
		rows, err := tx.query(ctx, `SELECT id, `+c.column+` FROM `+c.table+` WHERE id > ? AND `+c.column+
			` IS NOT NULL ORDER BY id LIMIT ?`, after, pageSize)
		if err != nil {
			return fmt.Errorf("scan %s: %w", c.name(), err)
		}
		type kv struct {
			id string
			v  []byte
		}
		var page []kv
		for rows.Next() {
			var r kv
			if err := rows.Scan(&r.id, &r.v); err != nil {
				rows.Close()
				return err
			}
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r.id, r.v); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		after = page[len(page)-1].id
	}
}

// KeyUsage counts what each KEK protects, from the (unauthenticated) key id
// in each value's header.
func (db *DB) KeyUsage(ctx context.Context) (KeyUsage, error) {
	u := KeyUsage{ByKEK: map[string]map[string]int{}, SubjectKeys: map[string]int{}, Generations: map[int64]int{}}
	err := db.Read(ctx, func(tx *Tx) error {
		for _, c := range kekColumns {
			err := tx.eachSealed(ctx, c, func(id string, v []byte) error {
				kid, err := seal.KEKIDOf(v)
				if err != nil {
					u.Malformed++
					return nil
				}
				if u.ByKEK[kid] == nil {
					u.ByKEK[kid] = map[string]int{}
				}
				u.ByKEK[kid][c.name()]++
				if c.wrappedDEK {
					u.SubjectKeys[kid]++
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		rows, err := tx.query(ctx, `SELECT subject_key_version, COUNT(*) FROM policyholders
			WHERE subject_key IS NOT NULL GROUP BY subject_key_version`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var v int64
			var n int
			if err := rows.Scan(&v, &n); err != nil {
				rows.Close()
				return err
			}
			u.Generations[v] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM policyholders WHERE subject_key IS NULL`).Scan(&u.Erased); err != nil {
			return err
		}
		st, err := tx.reencryptState(ctx)
		u.Reencrypt = st
		return err
	})
	return u, err
}

// RewrapAll re-wraps, in one transaction, every value in kekColumns that is
// not under the ring's primary KEK. Data bodies are not decrypted or
// changed; only the wrapped data keys in the headers are. It returns how
// many values it re-wrapped per column.
func (db *DB) RewrapAll(ctx context.Context) (map[string]int, error) {
	var done map[string]int
	err := db.InTx(ctx, func(tx *Tx) error {
		done = map[string]int{}
		primary := db.keys.Primary()
		for _, c := range kekColumns {
			type upd struct {
				id string
				v  []byte
			}
			var todo []upd
			err := tx.eachSealed(ctx, c, func(id string, v []byte) error {
				if kid, err := seal.KEKIDOf(v); err == nil && kid == primary {
					return nil
				}
				aad := seal.AAD(c.table, c.aadColumn, id)
				var nv []byte
				var err error
				if c.wrappedDEK {
					nv, err = db.keys.RewrapDEK(v, aad)
				} else {
					nv, err = db.keys.Rewrap(v, aad)
				}
				if err != nil {
					return fmt.Errorf("rewrap %s of %s: %w", c.name(), id, err)
				}
				todo = append(todo, upd{id, nv})
				return nil
			})
			if err != nil {
				return err
			}
			for _, u := range todo {
				if _, err := tx.exec(ctx, `UPDATE `+c.table+` SET `+c.column+` = ? WHERE id = ?`, u.v, u.id); err != nil {
					return fmt.Errorf("update %s: %w", c.name(), err)
				}
			}
			done[c.name()] = len(todo)
		}
		return nil
	})
	return done, err
}

func (tx *Tx) reencryptState(ctx context.Context) (*ReencryptState, error) {
	var st ReencryptState
	var fin sql.NullInt64
	err := tx.queryRow(ctx, `SELECT target, started_at, finished_at FROM key_reencrypt WHERE id = 1`).
		Scan(&st.Target, &st.StartedAt, &fin)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read key_reencrypt: %w", err)
	}
	st.FinishedAt = fin.Int64
	return &st, nil
}

// ReencryptOptions tune Reencrypt.
type ReencryptOptions struct {
	Batch int // holders fetched per query (default 200)
	// Progress, if set, is called after each holder with how many of the
	// live holders are on the target generation.
	Progress func(done, total int)
}

// ReencryptResult reports a run.
type ReencryptResult struct {
	Target   int64
	Holders  int // holders moved by this call
	Values   int // values re-sealed by this call
	Total    int // live holders
	Finished bool
}

// Reencrypt moves every live policyholder to a new subject key: it unwraps
// the old key, draws a new one (wrapped under the primary KEK), re-seals
// every value in subjectColumns, and bumps subject_key_version, all in one
// short transaction per holder, so the server keeps serving. A run started
// earlier and interrupted (crash, cancelled context) is resumed: the target
// generation is kept in key_reencrypt until every holder has reached it.
// A cancelled ctx stops between holders and returns ctx.Err().
func (db *DB) Reencrypt(ctx context.Context, opt ReencryptOptions) (ReencryptResult, error) {
	var res ReencryptResult
	if opt.Batch <= 0 {
		opt.Batch = 200
	}
	err := db.InTx(ctx, func(tx *Tx) error {
		st, err := tx.reencryptState(ctx)
		if err != nil {
			return err
		}
		if st != nil && st.FinishedAt == 0 {
			res.Target = st.Target // resume
			return nil
		}
		var maxV sql.NullInt64
		if err := tx.queryRow(ctx, `SELECT MAX(subject_key_version) FROM policyholders`).Scan(&maxV); err != nil {
			return err
		}
		res.Target = max(maxV.Int64, 1) + 1
		if st != nil && st.Target >= res.Target {
			res.Target = st.Target + 1
		}
		if _, err := tx.exec(ctx, `DELETE FROM key_reencrypt WHERE id = 1`); err != nil {
			return err
		}
		_, err = tx.exec(ctx, `INSERT INTO key_reencrypt (id, target, started_at) VALUES (1, ?, ?)`, res.Target, micros(tx.now))
		return err
	})
	if err != nil {
		return res, fmt.Errorf("start re-encryption: %w", err)
	}
	// Columns of tables this schema has (a table added by a later migration
	// of another feature may not exist yet on an older database).
	var cols []subjectColumn
	for _, c := range subjectColumns {
		if db.Read(ctx, func(tx *Tx) error {
			_, err := tx.exec(ctx, `SELECT 1 FROM `+c.table+` WHERE 1 = 0`)
			return err
		}) == nil {
			cols = append(cols, c)
		}
	}
	var done int
	err = db.Read(ctx, func(tx *Tx) error {
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM policyholders WHERE subject_key IS NOT NULL`).Scan(&res.Total); err != nil {
			return err
		}
		return tx.queryRow(ctx, `SELECT COUNT(*) FROM policyholders WHERE subject_key IS NOT NULL AND subject_key_version >= ?`,
			res.Target).Scan(&done)
	})
	if err != nil {
		return res, err
	}
	after := ""
	for {
		var ids []string
		err := db.Read(ctx, func(tx *Tx) error {
			rows, err := tx.query(ctx, `SELECT id FROM policyholders WHERE id > ? AND subject_key IS NOT NULL
				AND subject_key_version < ? ORDER BY id LIMIT ?`, after, res.Target, opt.Batch)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return rows.Err()
		})
		if err != nil {
			return res, err
		}
		for _, id := range ids {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			n, moved, err := db.reencryptHolder(ctx, cols, claims.ID(id), res.Target)
			if err != nil {
				return res, err
			}
			if moved {
				res.Holders++
				res.Values += n
				done++
			}
			if opt.Progress != nil {
				opt.Progress(done, res.Total)
			}
		}
		if len(ids) < opt.Batch {
			break
		}
		after = ids[len(ids)-1]
	}
	err = db.InTx(ctx, func(tx *Tx) error {
		var left int
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM policyholders WHERE subject_key IS NOT NULL AND subject_key_version < ?`,
			res.Target).Scan(&left); err != nil {
			return err
		}
		if left > 0 {
			return nil // holders created by an older server meanwhile; the next run takes them
		}
		res.Finished = true
		_, err := tx.exec(ctx, `UPDATE key_reencrypt SET finished_at = ? WHERE id = 1 AND target = ?`, micros(tx.now), res.Target)
		return err
	})
	return res, err
}

// reencryptHolder moves one holder to generation target in one
// transaction. The holder row is locked first (FOR UPDATE on PostgreSQL),
// and writers take a share lock on it before sealing (holderKey), so no
// value can be sealed under the old key after this commits.
func (db *DB) reencryptHolder(ctx context.Context, cols []subjectColumn, id claims.ID, target int64) (values int, moved bool, err error) {
	err = db.InTx(ctx, func(tx *Tx) error {
		values, moved = 0, false
		var wrapped []byte
		var version int64
		err := tx.queryRow(ctx, `SELECT subject_key, subject_key_version FROM policyholders WHERE id = ?`+tx.forUpdate(), id).
			Scan(&wrapped, &version)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if wrapped == nil || version >= target {
			return nil // erased, or done meanwhile
		}
		oldKey, err := db.keys.UnwrapDEK(wrapped, subjectKeyAAD(id))
		if err != nil {
			return fmt.Errorf("unwrap subject key of %s: %w", id, err)
		}
		newKey, newWrapped, err := db.keys.NewDEK(subjectKeyAAD(id))
		if err != nil {
			return err
		}
		for _, c := range cols {
			type row struct {
				key, aadID string
				v          []byte
			}
			rows, err := tx.query(ctx, c.query, id)
			if err != nil {
				return fmt.Errorf("reencrypt %s: %w", c.name, err)
			}
			var list []row
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.key, &r.aadID, &r.v); err != nil {
					rows.Close()
					return err
				}
				list = append(list, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, r := range list {
				aad := seal.AAD(c.table, c.column, r.aadID)
				plain, err := oldKey.Open(r.v, aad)
				if err != nil {
					return fmt.Errorf("reencrypt: open %s of %s (row %s): %w", c.name, id, r.key, err)
				}
				nv, err := newKey.Seal(plain, aad)
				clear(plain)
				if err != nil {
					return err
				}
				var key any = r.key
				if c.intKey {
					if key, err = strconv.ParseInt(r.key, 10, 64); err != nil {
						return err
					}
				}
				if _, err := tx.exec(ctx, c.update, nv, key); err != nil {
					return fmt.Errorf("reencrypt: update %s: %w", c.name, err)
				}
				values++
			}
		}
		if _, err := tx.exec(ctx, `UPDATE policyholders SET subject_key = ?, subject_key_version = ? WHERE id = ?`,
			newWrapped, target, id); err != nil {
			return err
		}
		delete(tx.keyCache(), id)
		moved = true
		return nil
	})
	return values, moved, err
}

// SubjectColumnNames lists the columns sealed under subject keys, for docs
// and tests.
func SubjectColumnNames() []string {
	out := make([]string, len(subjectColumns))
	for i, c := range subjectColumns {
		out[i] = c.name
	}
	return out
}

// KEKColumnNames lists the columns sealed or wrapped by the key ring.
func KEKColumnNames() []string {
	out := make([]string, len(kekColumns))
	for i, c := range kekColumns {
		out[i] = c.name()
	}
	return out
}
