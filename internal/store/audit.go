package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/openclaims/claims/internal/audit"
	"github.com/openclaims/claims/internal/claims"
)

// AppendAudit appends e to the hash-chained audit log in this transaction:
// the change and its audit entry commit together or not at all. The chain
// head row serializes appenders (a row lock on PostgreSQL; SQLite has one
// writer).
func (tx *Tx) AppendAudit(ctx context.Context, e claims.AuditEntry) error {
	var (
		seq  int64
		prev []byte
	)
	err := tx.queryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`+tx.forUpdate()).Scan(&seq, &prev)
	if errors.Is(err, sql.ErrNoRows) {
		// The first appenders on a fresh database race to create the head:
		// the losers wait for the winner's row, then lock and read it.
		if _, err := tx.exec(ctx, `INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, ?) ON CONFLICT (id) DO NOTHING`, audit.Genesis); err != nil {
			return fmt.Errorf("init audit head: %w", err)
		}
		err = tx.queryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`+tx.forUpdate()).Scan(&seq, &prev)
	}
	if err != nil {
		return fmt.Errorf("read audit head: %w", err)
	}
	e.Seq, e.PrevHash = seq+1, prev
	if e.At.IsZero() {
		e.At = tx.now
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	if e.Outcome == "" {
		e.Outcome = "ok"
	}
	e.Hash = audit.Hash(prev, e)
	details, _ := json.Marshal(e.Details)
	if e.Details == nil {
		details = []byte("{}")
	}
	if _, err := tx.exec(ctx, `INSERT INTO audit_log (seq, at, actor_id, on_behalf_of, action, object_type, object_id,
		outcome, ip, request_id, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, micros(e.At), e.ActorID, e.OnBehalfOf, e.Action, e.ObjectType, e.ObjectID, e.Outcome, e.IP,
		e.RequestID, string(details), e.PrevHash, e.Hash); err != nil {
		return fmt.Errorf("insert audit entry: %w", err)
	}
	if _, err := tx.exec(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, e.Seq, e.Hash); err != nil {
		return fmt.Errorf("advance audit head: %w", err)
	}
	return nil
}

// AuditFilter selects audit entries.
type AuditFilter struct {
	ActorID    claims.ID
	ObjectType string
	ObjectID   string
	Action     string
	From, To   time.Time
	AfterSeq   int64
	Limit      int
}

// AuditEntries returns entries in sequence order.
func (tx *Tx) AuditEntries(ctx context.Context, f AuditFilter) ([]claims.AuditEntry, error) {
	q := `SELECT seq, at, actor_id, on_behalf_of, action, object_type, object_id, outcome, ip, request_id, details,
		prev_hash, hash FROM audit_log WHERE seq > ?`
	args := []any{f.AfterSeq}
	if f.ActorID != "" {
		q += ` AND actor_id = ?`
		args = append(args, f.ActorID)
	}
	if f.ObjectType != "" {
		q += ` AND object_type = ?`
		args = append(args, f.ObjectType)
	}
	if f.ObjectID != "" {
		q += ` AND object_id = ?`
		args = append(args, f.ObjectID)
	}
	if f.Action != "" {
		q += ` AND action = ?`
		args = append(args, f.Action)
	}
	if !f.From.IsZero() {
		q += ` AND at >= ?`
		args = append(args, micros(f.From))
	}
	if !f.To.IsZero() {
		q += ` AND at <= ?`
		args = append(args, micros(f.To))
	}
	q += ` ORDER BY seq LIMIT ?`
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit)
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("select audit: %w", err)
	}
	defer rows.Close()
	var out []claims.AuditEntry
	for rows.Next() {
		var (
			e       claims.AuditEntry
			at      int64
			details string
		)
		if err := rows.Scan(&e.Seq, &at, &e.ActorID, &e.OnBehalfOf, &e.Action, &e.ObjectType, &e.ObjectID, &e.Outcome,
			&e.IP, &e.RequestID, &details, &e.PrevHash, &e.Hash); err != nil {
			return nil, err
		}
		e.At = fromMicros(at)
		if details != "" && details != "{}" {
			_ = json.Unmarshal([]byte(details), &e.Details)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// VerifyAudit walks the whole chain in pages and checks it against the head
// row. It returns the number of entries checked, or an *audit.Problem at the
// first break.
func (db *DB) VerifyAudit(ctx context.Context) (int64, error) {
	return db.VerifyAuditSigned(ctx, nil)
}

// VerifyAuditSigned is VerifyAudit that also checks every signed checkpoint
// against pub: each must be validly signed and match the recomputed chain
// at its length, and the chain must reach the last one.
func (db *DB) VerifyAuditSigned(ctx context.Context, pub ed25519.PublicKey) (int64, error) {
	var cps []Checkpoint
	if pub != nil {
		var err error
		if cps, err = db.Checkpoints(ctx); err != nil {
			return 0, err
		}
		for _, c := range cps {
			if !audit.VerifyCheckpoint(pub, c.Seq, c.HeadHash, c.At, c.Signature) {
				return 0, &audit.Problem{Seq: c.Seq, Reason: "checkpoint signature invalid (checkpoint forged or altered)"}
			}
		}
	}
	want := map[int64][]byte{}
	for _, c := range cps {
		want[c.Seq] = c.HeadHash
	}
	v := audit.NewVerifier()
	var after int64
	for {
		var page []claims.AuditEntry
		err := db.InTx(ctx, func(tx *Tx) error {
			var err error
			page, err = tx.AuditEntries(ctx, AuditFilter{AfterSeq: after, Limit: 1000})
			return err
		})
		if err != nil {
			return v.Count, err
		}
		for _, e := range page {
			if err := v.Add(e); err != nil {
				return v.Count, err
			}
			after = e.Seq
			if h, ok := want[e.Seq]; ok && !bytes.Equal(h, e.Hash) {
				return v.Count, &audit.Problem{Seq: e.Seq, Reason: "chain differs from the signed checkpoint at this entry (history rewritten)"}
			}
		}
		if len(page) < 1000 {
			break
		}
	}
	var (
		seq  int64
		head []byte
	)
	err := db.sql.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&seq, &head)
	if errors.Is(err, sql.ErrNoRows) {
		if v.Count == 0 {
			return 0, nil
		}
		return v.Count, &audit.Problem{Seq: 0, Reason: "audit head row missing"}
	}
	if err != nil {
		return v.Count, err
	}
	if n := len(cps); n > 0 && cps[n-1].Seq > after {
		return v.Count, &audit.Problem{Seq: after + 1, Reason: fmt.Sprintf("chain ends at %d but a signed checkpoint covers %d entries (entries deleted from the end)", after, cps[n-1].Seq)}
	}
	if seq != after || !bytes.Equal(head, v.Head()) {
		return v.Count, &audit.Problem{Seq: after + 1, Reason: fmt.Sprintf("chain ends at %d but the head says %d (entries deleted from the end)", after, seq)}
	}
	return v.Count, nil
}
