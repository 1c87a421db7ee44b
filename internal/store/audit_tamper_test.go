package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/audit"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
)

// TestAuditTamper edits the audit log behind the application's back, the
// way someone with database access would, and checks that VerifyAudit
// names the first entry that no longer holds.
func TestAuditTamper(t *testing.T) {
	const n = 10
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, db *store.DB)
		wantSeq int64
	}{
		{"altered action", func(t *testing.T, db *store.DB) {
			rawExec(t, db, `UPDATE audit_log SET action = 'claim.nothing_happened' WHERE seq = 4`)
		}, 4},
		{"altered details", func(t *testing.T, db *store.DB) {
			rawExec(t, db, `UPDATE audit_log SET details = '{"n":"z"}' WHERE seq = 8`)
		}, 8},
		{"middle row deleted", func(t *testing.T, db *store.DB) {
			rawExec(t, db, `DELETE FROM audit_log WHERE seq = 5`)
		}, 5},
		{"middle row deleted and later ones renumbered", func(t *testing.T, db *store.DB) {
			rawExec(t, db, `DELETE FROM audit_log WHERE seq = 5`)
			renumber(t, db, 5, -1)
			rawExec(t, db, `UPDATE audit_head SET seq = seq - 1`)
		}, 5},
		{"forged row inserted with a valid hash", func(t *testing.T, db *store.DB) {
			// The forger knows the hash function and links the forged entry
			// to entry 5 correctly; entry 6 (now 7) still points at 5.
			renumber(t, db, 5, +1)
			forgeAt(t, db, 6, true)
			rawExec(t, db, `UPDATE audit_head SET seq = seq + 1`)
		}, 7},
		{"forged row inserted with a made-up hash", func(t *testing.T, db *store.DB) {
			renumber(t, db, 5, +1)
			forgeAt(t, db, 6, false)
			rawExec(t, db, `UPDATE audit_head SET seq = seq + 1`)
		}, 6},
		{"last row deleted", func(t *testing.T, db *store.DB) {
			rawExec(t, db, `DELETE FROM audit_log WHERE seq = ?`, n)
		}, n},
		{"last row deleted and head rewound", func(t *testing.T, db *store.DB) {
			// Rewinding the head's seq is not enough: its hash is entry 10's.
			rawExec(t, db, `DELETE FROM audit_log WHERE seq = ?`, n)
			rawExec(t, db, `UPDATE audit_head SET seq = ?`, n-1)
		}, n},
		{"head row deleted", func(t *testing.T, db *store.DB) {
			rawExec(t, db, `DELETE FROM audit_head`)
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
				t.Parallel()
				db := storetest.Open(t, d)
				appendAudit(t, db, n)
				if got, err := db.VerifyAudit(ctx); err != nil || got != n {
					t.Fatalf("before tampering: %d, %v", got, err)
				}
				tc.tamper(t, db)
				_, err := db.VerifyAudit(ctx)
				var p *audit.Problem
				if !errors.As(err, &p) {
					t.Fatalf("VerifyAudit after tampering: %v, want an *audit.Problem", err)
				}
				if p.Seq != tc.wantSeq {
					t.Fatalf("problem at %d (%s), want %d", p.Seq, p.Reason, tc.wantSeq)
				}
			})
		})
	}
}

// renumber shifts the sequence numbers of every entry after seq by delta,
// through a high range so the primary key never collides midway.
func renumber(t *testing.T, db *store.DB, after, delta int64) {
	t.Helper()
	rawExec(t, db, `UPDATE audit_log SET seq = seq + 1000000 WHERE seq > ?`, after)
	rawExec(t, db, `UPDATE audit_log SET seq = seq - 1000000 + ? WHERE seq > 1000000`, delta)
}

// forgeAt inserts a forged entry at seq, linked to the entry before it.
func forgeAt(t *testing.T, db *store.DB, seq int64, validHash bool) {
	t.Helper()
	var prev []byte
	if err := db.SQL().QueryRowContext(ctx, rebind(db.Dialect(), `SELECT hash FROM audit_log WHERE seq = ?`), seq-1).Scan(&prev); err != nil {
		t.Fatal(err)
	}
	e := claims.AuditEntry{Seq: seq, At: time.Now().UTC().Truncate(time.Microsecond), ActorID: "forger",
		Action: "claim.paid", ObjectType: "claim", ObjectID: string(claims.NewID()), Outcome: "ok", PrevHash: prev}
	e.Hash = audit.Hash(prev, e)
	if !validHash {
		e.Hash = make([]byte, 32)
	}
	rawExec(t, db, `INSERT INTO audit_log (seq, at, actor_id, on_behalf_of, action, object_type, object_id, outcome, ip,
		request_id, details, prev_hash, hash) VALUES (?, ?, ?, '', ?, ?, ?, ?, '', '', '{}', ?, ?)`,
		e.Seq, e.At.UnixMicro(), e.ActorID, e.Action, e.ObjectType, e.ObjectID, e.Outcome, e.PrevHash, e.Hash)
}
