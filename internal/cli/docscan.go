package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/files"
	"github.com/openclaims/claims/internal/scan"
	"github.com/openclaims/claims/internal/workflow"
)

// Claim documents: the wiring of the blob store, the pipeline and the
// scanner, and the background worker that scans pending documents and
// sweeps orphaned blobs (docs/documents.md).

// devScannerNotice is how the development scanner is announced at startup.
const devScannerNotice = "development scanner — not a substitute for ClamAV"

// openDocuments builds the blob store (S3-compatible object storage when
// CLAIMS_BLOB_URL is set, else <data-dir>/documents), the pipeline and the
// scanner: clamd when an address is configured, else the development
// scanner.
func (a *app) openDocuments() error {
	var err error
	var blobs files.Blobs
	if a.cfg.BlobURL != "" {
		s3cfg, err := files.ParseS3URL(a.cfg.BlobURL)
		if err != nil {
			return fmt.Errorf("CLAIMS_BLOB_URL: %w", err)
		}
		s3cfg.AccessKey, s3cfg.SecretKey, s3cfg.Log = a.cfg.S3AccessKey, a.cfg.S3SecretKey, a.log
		s3, err := files.NewS3Blobs(s3cfg)
		if err != nil {
			return err
		}
		a.log.Debug("document blobs in S3-compatible storage", "location", s3.String())
		blobs = s3 // a.blobs stays nil: it is the local directory only
	} else {
		if a.blobs, err = files.NewLocalBlobs(filepath.Join(a.cfg.DataDir, "documents")); err != nil {
			return err
		}
		blobs = a.blobs
	}
	a.docs = files.NewPipeline(blobs, a.keys.Ring, files.Limits{MaxFileBytes: a.cfg.MaxUploadBytes})
	if a.cfg.ClamdAddress != "" {
		if a.scanner, err = scan.NewClamd(a.cfg.ClamdAddress, scan.WithDialTimeout(5*time.Second)); err != nil {
			return err
		}
	} else {
		a.scanner = scan.NewDevScanner(a.cfg.ScanBlocklist)
	}
	return nil
}

func (a *app) documentLimits() workflow.DocumentLimits {
	return workflow.DocumentLimits{MaxFileBytes: a.cfg.MaxUploadBytes, MaxClaimDocuments: a.cfg.MaxClaimDocuments,
		MaxClaimBytes: a.cfg.MaxClaimBytes}
}

// scannerBanner describes the scanner for the startup output, and logs a
// warning for the development scanner.
func (a *app) scannerBanner() string {
	if _, dev := a.scanner.(*scan.DevScanner); dev {
		a.log.Warn("documents are scanned by the " + devScannerNotice + "; set CLAIMS_CLAMD_ADDRESS or --clamd-address")
		return devScannerNotice
	}
	return a.scanner.Name()
}

// Worker timing.
const (
	scanInterval    = 3 * time.Second  // how often pending documents are looked for
	scanTimeout     = 2 * time.Minute  // one scan
	scanConcurrency = 2                // scans at once
	sweepInterval   = 15 * time.Minute // how often orphaned blobs are looked for
)

// startDocumentWorker scans documents as they are uploaded and, every
// scanInterval, those still pending whose backoff has passed (clamd was
// down, a scan timed out); and sweeps orphaned blobs every sweepInterval.
// It runs until ctx ends; the returned function waits for it to finish.
func startDocumentWorker(ctx context.Context, a *app) (wait func()) {
	w := &docWorker{flow: a.flow, app: a, inflight: map[claims.ID]bool{}}
	var wg sync.WaitGroup
	jobs := make(chan claims.ID)
	for range scanConcurrency {
		wg.Go(func() {
			for id := range jobs {
				w.scan(ctx, id)
			}
		})
	}
	wg.Go(func() {
		defer close(jobs)
		tick := time.NewTicker(scanInterval)
		defer tick.Stop()
		sweep := time.NewTicker(sweepInterval)
		defer sweep.Stop()
		w.sweep(ctx)
		for {
			var ids []claims.ID
			select {
			case <-ctx.Done():
				return
			case id := <-a.flow.ScanRequests():
				ids = []claims.ID{id}
			case <-tick.C:
				var err error
				if ids, err = a.flow.PendingDocuments(ctx, 100); err != nil && ctx.Err() == nil {
					a.log.Error("listing documents to scan", "err", err)
				}
			case <-sweep.C:
				w.sweep(ctx)
			}
			for _, id := range ids {
				if !w.claim(id) {
					continue
				}
				select {
				case jobs <- id:
				case <-ctx.Done():
					return
				}
			}
		}
	})
	return wg.Wait
}

type docWorker struct {
	flow     *workflow.Service
	app      *app
	mu       sync.Mutex
	inflight map[claims.ID]bool
}

// claim marks id as being scanned; false if it already is.
func (w *docWorker) claim(id claims.ID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inflight[id] {
		return false
	}
	w.inflight[id] = true
	return true
}

func (w *docWorker) scan(ctx context.Context, id claims.ID) {
	defer func() {
		w.mu.Lock()
		delete(w.inflight, id)
		w.mu.Unlock()
	}()
	sctx, cancel := context.WithTimeout(ctx, scanTimeout)
	defer cancel()
	// Failures are logged and counted by ScanDocument; the document stays
	// pending_scan and comes back after its backoff.
	_, _ = w.flow.ScanDocument(sctx, id)
}

func (w *docWorker) sweep(ctx context.Context) {
	n, err := w.flow.SweepDocuments(ctx, workflow.SweepGrace)
	switch {
	case err != nil && ctx.Err() == nil:
		w.app.log.Error("sweeping orphaned document blobs", "removed", n, "err", err)
	case n > 0:
		w.app.log.Info("swept orphaned document blobs", "removed", n, "grace", workflow.SweepGrace.String())
	}
}
