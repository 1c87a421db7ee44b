package store_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
)

func TestDocumentRows(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		db := storetest.Open(t, d)
		h := newHolder(t, db, claims.Policyholder{FullName: "Jane Roe"})
		pol := newPolicy(t, db, h.ID, 100000)
		c := insertClaim(t, db, claimOn(pol, "2026-03-01", time.Now(), "hail", 50000))
		u := newUser(t, db, "docs-"+string(d)+"@example.com", claims.RoleCustomer)
		doc := store.Document{ID: claims.NewID(), ClaimID: c.ID, HolderID: h.ID, BlobID: "0123456789abcdef0123456789abcdef",
			Filename: "jane-roe-mri-scan.pdf", ContentType: "application/pdf", Size: 1234, SHA256: "aa", OriginalSHA256: "aa",
			UploadedBy: u.ID}
		tx(t, db, func(tx *store.Tx) error { return tx.InsertDocument(ctx, doc) })

		// The file name is sealed at rest.
		var raw []byte
		if err := db.SQL().QueryRow(map[store.Dialect]string{store.SQLite: `SELECT filename FROM documents WHERE id = ?`,
			store.Postgres: `SELECT filename FROM documents WHERE id = $1`}[d], doc.ID).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("jane-roe")) {
			t.Fatal("filename stored in plaintext")
		}
		tx(t, db, func(tx *store.Tx) error {
			got, err := tx.Document(ctx, c.ID, doc.ID)
			if err != nil {
				return err
			}
			if got.Filename != doc.Filename || got.Status != store.DocumentPendingScan || got.UploadedBy != u.ID {
				t.Errorf("read back %+v", got)
			}
			if _, err := tx.Document(ctx, claims.NewID(), doc.ID); claims.KindOf(err) != claims.NotFound {
				t.Errorf("document through another claim: %v", err)
			}
			n, size, err := tx.ClaimDocumentUsage(ctx, c.ID)
			if err != nil || n != 1 || size != 1234 {
				t.Errorf("usage %d %d %v", n, size, err)
			}
			refs, err := tx.DocumentsBySHA256(ctx, "aa")
			if err != nil || len(refs) != 1 || refs[0].HolderID != h.ID {
				t.Errorf("by hash %v %v", refs, err)
			}
			known, err := tx.BlobRecorded(ctx, doc.BlobID)
			if err != nil || !known {
				t.Errorf("blob not known: %v", err)
			}
			if known, _ := tx.BlobRecorded(ctx, "ffffffffffffffffffffffffffffffff"); known {
				t.Error("unknown blob known")
			}
			return nil
		})
		// Same content twice on one claim: Conflict, from the unique index.
		dup := doc
		dup.ID, dup.BlobID = claims.NewID(), "1123456789abcdef0123456789abcdef"
		err := db.InTx(ctx, func(tx *store.Tx) error { return tx.InsertDocument(ctx, dup) })
		if claims.KindOf(err) != claims.Conflict {
			t.Errorf("duplicate insert: %v", err)
		}

		// Scan bookkeeping: a failure postpones, a verdict is recorded once.
		tx(t, db, func(tx *store.Tx) error {
			if list, err := tx.PendingDocuments(ctx, time.Now(), 10); err != nil || len(list) != 1 {
				t.Errorf("pending %v %v", list, err)
			}
			return tx.RecordScanFailure(ctx, doc.ID, time.Now().Add(time.Minute))
		})
		tx(t, db, func(tx *store.Tx) error {
			if list, _ := tx.PendingDocuments(ctx, time.Now(), 10); len(list) != 0 {
				t.Errorf("backoff ignored: %v", list)
			}
			ok, err := tx.SetDocumentVerdict(ctx, doc.ID, store.DocumentQuarantined, "Eicar-Test-Signature")
			if err != nil || !ok {
				t.Errorf("verdict %v %v", ok, err)
			}
			if ok, _ := tx.SetDocumentVerdict(ctx, doc.ID, store.DocumentClean, ""); ok {
				t.Error("a second verdict overwrote the first")
			}
			got, err := tx.DocumentByID(ctx, doc.ID)
			if err != nil || got.Status != store.DocumentQuarantined || got.ScanAttempts != 2 || got.ScannedAt.IsZero() {
				t.Errorf("after verdict %+v %v", got, err)
			}
			return nil
		})
	})
}
