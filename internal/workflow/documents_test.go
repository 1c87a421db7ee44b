package workflow_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/auth"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/files"
	"github.com/openclaims/claims/internal/scan"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
	"github.com/openclaims/claims/internal/workflow"
)

// switchScanner delegates to the development scanner, or fails like an
// unreachable clamd while down is set.
type switchScanner struct {
	mu   sync.Mutex
	down bool
	dev  *scan.DevScanner
}

func (s *switchScanner) setDown(v bool) { s.mu.Lock(); s.down = v; s.mu.Unlock() }

func (s *switchScanner) Scan(ctx context.Context, r io.Reader) (scan.Result, error) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		return scan.Result{}, errors.New("dial unix /run/clamd.sock: connect: no such file or directory")
	}
	return s.dev.Scan(ctx, r)
}

func (s *switchScanner) Name() string { return "switch(" + s.dev.Name() + ")" }

type recordedEvents struct {
	mu  sync.Mutex
	evs []claims.Event
}

func (r *recordedEvents) Publish(ev claims.Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

func (r *recordedEvents) has(typ string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.evs {
		if e.Type == typ {
			return true
		}
	}
	return false
}

var docEICAR = []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)

func source(name string, b []byte) workflow.UploadSource {
	return func() (io.Reader, string, error) { return bytes.NewReader(b), name, nil }
}

func TestDocumentWorkflow(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		bg := context.Background()
		keys := storetest.Keys(t)
		db := storetest.OpenWith(t, storetest.URL(t, d), keys)
		blobDir := filepath.Join(t.TempDir(), "documents")
		blobs, err := files.NewLocalBlobs(blobDir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { blobs.Close() })
		pipe := files.NewPipeline(blobs, keys.Ring, files.Limits{})
		sc := &switchScanner{dev: scan.NewDevScanner(nil)}
		ev := &recordedEvents{}
		s := workflow.New(workflow.Config{DB: db, Hasher: auth.NewHasher([]byte("pepper"), 10, 0), Events: ev,
			Documents: pipe, Scanner: sc, DocumentLimits: workflow.DocumentLimits{MaxClaimDocuments: 5}})

		customer := func(email string) (claims.Principal, claims.Claim) {
			u, err := s.Register(bg, workflow.Registration{Email: email, Password: pw, FullName: "T"})
			if err != nil {
				t.Fatal(err)
			}
			p := claims.Principal{UserID: u.ID, Role: claims.RoleCustomer, HolderID: u.HolderID}
			today := claims.DateOf(time.Now().UTC())
			pol := claims.Policy{ID: claims.NewID(), Number: claims.NormalizePolicyNumber("DOC-" + string(claims.NewID()[:8])), HolderID: u.HolderID,
				ProductLine: claims.LineAuto, Status: claims.PolicyActive, EffectiveDate: today.AddDays(-100), ExpiryDate: today.AddDays(100),
				CoverageLimit: claims.Money{Minor: 100000, Currency: "USD"}, Deductible: claims.Money{Currency: "USD"},
				Premium: claims.Money{Minor: 1000, Currency: "USD"}, CoinsuranceBP: 10000}
			if err := db.InTx(bg, func(tx *store.Tx) error { return tx.InsertPolicy(bg, pol) }); err != nil {
				t.Fatal(err)
			}
			c, _, err := s.FileClaim(bg, p, workflow.FileRequest{Submit: true, Input: claims.NewClaimInput{PolicyNumber: pol.Number,
				Type: "collision", IncidentDate: today.AddDays(-3), Description: "dent", Currency: "USD",
				Lines: []claims.NewLineInput{{Category: "vehicle", Description: "door", Amount: claims.Money{Minor: 5000, Currency: "USD"}}}}})
			if err != nil {
				t.Fatal(err)
			}
			return p, c
		}
		alice, ac := customer("alice-" + string(d) + "@example.com")
		bob, bc := customer("bob-" + string(d) + "@example.com")
		countBlobs := func() int {
			n := 0
			blobs.List(bg, func(string, time.Time) error { n++; return nil })
			return n
		}

		// clamd down: the document stays pending, the failure is counted
		// and the next attempt postponed.
		sc.setDown(true)
		doc, err := s.UploadDocument(bg, alice, ac.ID, source("notes.txt", []byte("claim notes\n")))
		if err != nil {
			t.Fatal(err)
		}
		if st, err := s.ScanDocument(bg, doc.ID); err == nil || st != store.DocumentPendingScan {
			t.Fatalf("scan with the scanner down: %v %v", st, err)
		}
		if ids, _ := s.PendingDocuments(bg, 10); len(ids) != 0 {
			t.Errorf("document due again at once despite backoff: %v", ids)
		}
		if _, _, err := s.OpenDocument(bg, alice, ac.ID, doc.ID); claims.KindOf(err) != claims.Conflict {
			t.Errorf("open while pending: %v", err)
		}
		sc.setDown(false)
		if st, err := s.ScanDocument(bg, doc.ID); err != nil || st != store.DocumentClean {
			t.Fatalf("scan: %v %v", st, err)
		}
		if !ev.has("document.scanned") {
			t.Error("no document.scanned event")
		}
		_, rc, err := s.OpenDocument(bg, alice, ac.ID, doc.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != "claim notes\n" {
			t.Errorf("content %q", got)
		}
		// Bob: the same answer for Alice's document as for a missing one.
		_, _, e1 := s.OpenDocument(bg, bob, ac.ID, doc.ID)
		_, _, e2 := s.OpenDocument(bg, bob, bc.ID, doc.ID)
		_, _, e3 := s.OpenDocument(bg, bob, bc.ID, claims.NewID())
		if claims.KindOf(e1) != claims.NotFound || claims.MessageOf(e1) != claims.MessageOf(e2) || claims.MessageOf(e2) != claims.MessageOf(e3) {
			t.Errorf("foreign/missing answers differ: %v / %v / %v", e1, e2, e3)
		}
		if _, err := s.UploadDocument(bg, bob, ac.ID, func() (io.Reader, string, error) {
			t.Error("the body of a refused upload was opened")
			return nil, "", errors.New("unreachable")
		}); claims.KindOf(err) != claims.NotFound {
			t.Errorf("bob uploading to alice's claim: %v", err)
		}

		// Infected: quarantined, never opened.
		inf, err := s.UploadDocument(bg, alice, ac.ID, source("eicar.txt", docEICAR))
		if err != nil {
			t.Fatal(err)
		}
		if st, err := s.ScanDocument(bg, inf.ID); err != nil || st != store.DocumentQuarantined {
			t.Fatalf("infected scan: %v %v", st, err)
		}
		if _, _, err := s.OpenDocument(bg, alice, ac.ID, inf.ID); claims.KindOf(err) != claims.Conflict {
			t.Errorf("open quarantined: %v", err)
		}

		// A failed transaction leaves no blob behind.
		before := countBlobs()
		if _, err := s.UploadDocument(bg, alice, ac.ID, source("again.txt", []byte("claim notes\n"))); claims.KindOf(err) != claims.Conflict ||
			!strings.Contains(claims.MessageOf(err), string(doc.ID)) {
			t.Errorf("duplicate: %v", err)
		}
		if n := countBlobs(); n != before {
			t.Errorf("%d blobs after a refused duplicate, want %d", n, before)
		}

		// The sweeper removes an old blob no row refers to, and only that.
		st, err := pipe.Ingest(bg, strings.NewReader("crashed before commit\n"), "orphan.txt")
		if err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-2 * workflow.SweepGrace)
		for _, id := range []string{st.BlobID, doc.BlobID} {
			if err := os.Chtimes(filepath.Join(blobDir, id[:2], id), old, old); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.SweepDocuments(bg, workflow.SweepGrace); err != nil || n != 1 {
			t.Errorf("sweep removed %d (%v), want 1", n, err)
		}
		if err := pipe.Verify(bg, doc.BlobID); err != nil {
			t.Errorf("recorded blob swept: %v", err)
		}
		if err := pipe.Verify(bg, st.BlobID); err == nil {
			t.Error("orphan survived the sweep")
		}

		// Per-claim count limit (5): 409.
		for i := 0; ; i++ {
			_, err := s.UploadDocument(bg, alice, ac.ID, source(fmt.Sprintf("n%d.txt", i), fmt.Appendf(nil, "note %d\n", i)))
			if err != nil {
				if claims.KindOf(err) != claims.Conflict || i != 3 {
					t.Errorf("upload %d: %v", i, err)
				}
				break
			}
		}
	})
}

// BenchmarkDocumentScan measures scanning apart from uploading: the
// pipeline decrypts a stored 8 MiB PDF and streams it to the scanner (the
// development scanner, and clamd when CLAIMS_TEST_CLAMD is set).
func BenchmarkDocumentScan(b *testing.B) {
	keys := storetest.Keys(b)
	blobs, err := files.NewLocalBlobs(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer blobs.Close()
	pipe := files.NewPipeline(blobs, keys.Ring, files.Limits{})
	content := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("0123456789 abcdef\n"), (8<<20)/18)...)
	st, err := pipe.Ingest(context.Background(), bytes.NewReader(content), "bench.pdf")
	if err != nil {
		b.Fatal(err)
	}
	scanners := map[string]scan.Scanner{"dev": scan.NewDevScanner(nil)}
	if a := os.Getenv("CLAIMS_TEST_CLAMD"); a != "" {
		c, err := scan.NewClamd(a)
		if err != nil {
			b.Fatal(err)
		}
		scanners["clamd"] = c
	}
	for name, sc := range scanners {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(content)))
			for b.Loop() {
				if res, err := pipe.Scan(context.Background(), sc, st.BlobID); err != nil || res.Infected {
					b.Fatal(res, err)
				}
			}
		})
	}
}
