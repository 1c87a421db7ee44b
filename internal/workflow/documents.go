package workflow

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/openclaims/claims/internal/access"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/files"
	"github.com/openclaims/claims/internal/scan"
	"github.com/openclaims/claims/internal/store"
)

// Claim documents: upload (stream → files.Pipeline → one transaction with
// the row and its audit entry), scanning (a background worker; fail
// closed), download (object-level check, only clean documents, audited) and
// the sweeper that removes blobs no row refers to. See docs/documents.md.

// Defaults of DocumentLimits.
const (
	DefaultMaxClaimDocuments = 20
	DefaultMaxClaimBytes     = 200 << 20
	// MultipartOverhead is what a request may carry beyond the file itself
	// (boundaries, part headers, small extra fields).
	MultipartOverhead = 64 << 10
	// SweepGrace is how old a blob without a row must be before the
	// sweeper removes it.
	SweepGrace = time.Hour
)

// DocumentLimits bound what a claim may hold. Zero fields take defaults.
type DocumentLimits struct {
	MaxFileBytes      int64 // per file; must equal the pipeline's; default files.DefaultMaxFileBytes
	MaxClaimDocuments int   // documents per claim
	MaxClaimBytes     int64 // total stored bytes per claim
}

// MaxRequestBytes is the per-request limit: one file plus multipart framing.
func (l DocumentLimits) MaxRequestBytes() int64 { return l.MaxFileBytes + MultipartOverhead }

func (l DocumentLimits) withDefaults() DocumentLimits {
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = files.DefaultMaxFileBytes
	}
	if l.MaxClaimDocuments <= 0 {
		l.MaxClaimDocuments = DefaultMaxClaimDocuments
	}
	if l.MaxClaimBytes <= 0 {
		l.MaxClaimBytes = DefaultMaxClaimBytes
	}
	return l
}

type documents struct {
	pipe    *files.Pipeline
	scanner scan.Scanner
	limits  DocumentLimits
	kick    chan claims.ID // documents to scan now; read by the worker
}

func newDocuments(c Config) documents {
	return documents{pipe: c.Documents, scanner: c.Scanner, limits: c.DocumentLimits.withDefaults(),
		kick: make(chan claims.ID, 256)}
}

// DocumentLimits reports the effective limits.
func (s *Service) DocumentLimits() DocumentLimits { return s.docs.limits }

// ScanRequests delivers the ids of documents just uploaded, for the scan
// worker to scan right away. Requests are dropped when nobody reads them
// (the worker's periodic pass picks those documents up).
func (s *Service) ScanRequests() <-chan claims.ID { return s.docs.kick }

// Scanner returns the configured scanner (nil if none).
func (s *Service) Scanner() scan.Scanner { return s.docs.scanner }

var (
	errDocumentNotFound = claims.Errorf(claims.NotFound, "Document not found.")
	errDocumentsOff     = claims.Errorf(claims.NotFound, "Documents are not enabled on this server.")
)

// UploadSource opens the upload. It is called only after the access check
// and the claim's limits passed, so that nothing of the body is read for a
// request that will be refused anyway.
type UploadSource func() (r io.Reader, filename string, err error)

// readableClaim loads claim id for p, answering a claim p may not read as
// missing.
func readableClaim(ctx context.Context, tx *store.Tx, p claims.Principal, id claims.ID, lock bool, notFound error) (claims.Claim, error) {
	if !claims.ValidID(string(id)) {
		return claims.Claim{}, notFound
	}
	var (
		c   claims.Claim
		err error
	)
	if lock {
		c, err = tx.ClaimForUpdate(ctx, id)
	} else {
		c, err = tx.Claim(ctx, id)
	}
	if claims.KindOf(err) == claims.NotFound {
		return c, notFound
	}
	if err != nil {
		return c, err
	}
	if !access.CanReadClaim(p, c) {
		return c, notFound
	}
	return c, nil
}

// mayUpload decides whether p may add a document to c (which p may read):
// staff who may read it may, and so may the policyholder while the claim is
// not in a final status.
func mayUpload(p claims.Principal, c claims.Claim) error {
	staff := access.Has(p, access.ClaimsReadAny) ||
		access.Has(p, access.ClaimsReadAssigned) && (c.AssigneeID == p.UserID || c.AssigneeID == "")
	if !staff && c.Status.Final() {
		return &claims.Error{Kind: claims.Conflict, Message: fmt.Sprintf("This claim is %s; documents can no longer be added.", c.Status),
			Extra: map[string]any{"status": string(c.Status)}}
	}
	if !staff && !access.Has(p, access.ClaimsCreate) {
		return claims.Errorf(claims.Forbidden, "You do not have permission to add documents to this claim.")
	}
	return nil
}

func (s *Service) tooManyDocuments() error {
	return &claims.Error{Kind: claims.Conflict,
		Message: fmt.Sprintf("This claim already has the maximum of %d documents.", s.docs.limits.MaxClaimDocuments),
		Fields:  []claims.FieldError{{Field: "file", Rule: "max_documents", Message: "The claim has too many documents."}}}
}

func (s *Service) claimTooLarge() error {
	return &claims.Error{Kind: claims.TooLarge,
		Message: fmt.Sprintf("The documents of this claim would exceed the limit of %s in total.", mib(s.docs.limits.MaxClaimBytes)),
		Fields:  []claims.FieldError{{Field: "file", Rule: "max_claim_bytes", Message: "The claim's documents are too large in total."}}}
}

func mib(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// quotaReader fails with err once more than max bytes were read.
type quotaReader struct {
	r   io.Reader
	n   int64
	max int64
	err error
}

func (q *quotaReader) Read(b []byte) (int, error) {
	if q.n > q.max {
		return 0, q.err
	}
	n, err := q.r.Read(b)
	q.n += int64(n)
	if q.n > q.max {
		return n, q.err
	}
	return n, err
}

// UploadDocument checks that p may add a document to claim claimID and
// that the claim has room, then (only then) opens the upload with src,
// stores it through the pipeline and records it, with its audit entry, in
// one transaction. If that transaction fails the stored blob is deleted;
// if the process dies in between, the sweeper removes it later.
//
// The same content twice on one claim is a Conflict naming the existing
// document. The same content on a claim of another policyholder is
// accepted, and both claims are flagged claims.FlagSharedDocument.
func (s *Service) UploadDocument(ctx context.Context, p claims.Principal, claimID claims.ID, src UploadSource) (store.Document, error) {
	var d store.Document
	if p.IsZero() {
		return d, claims.Errorf(claims.Unauthenticated, "Sign in first.")
	}
	if s.docs.pipe == nil {
		return d, errDocumentsOff
	}
	lim := s.docs.limits
	var used int64
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		c, err := readableClaim(ctx, tx, p, claimID, false, errClaimNotFound)
		if err != nil {
			return err
		}
		if err := mayUpload(p, c); err != nil {
			return err
		}
		n, b, err := tx.ClaimDocumentUsage(ctx, c.ID)
		if err != nil {
			return err
		}
		switch {
		case n >= lim.MaxClaimDocuments:
			return s.tooManyDocuments()
		case b >= lim.MaxClaimBytes:
			return s.claimTooLarge()
		}
		used = b
		return nil
	})
	if err != nil {
		return d, err
	}

	r, name, err := src()
	if err != nil {
		return d, err
	}
	// The claim's remaining room bounds this upload as it streams (the
	// pipeline bounds each file); the check in the transaction below is
	// the exact one, on the stored size.
	qr := &quotaReader{r: r, max: lim.MaxClaimBytes - used, err: s.claimTooLarge()}
	st, err := s.docs.pipe.Ingest(ctx, qr, name)
	if err != nil {
		return d, err
	}
	committed := false
	defer func() {
		if !committed {
			cctx := context.WithoutCancel(ctx)
			for _, id := range []string{st.BlobID, st.OriginalBlobID} {
				if id == "" {
					continue
				}
				if err := s.docs.pipe.Delete(cctx, id); err != nil {
					s.log.ErrorContext(ctx, "deleting the blob of a failed upload (the sweeper will retry)", "blob", id, "err", err)
				}
			}
		}
	}()

	sha := hex.EncodeToString(st.SHA256)
	var flagged []claims.Claim
	var c claims.Claim
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		flagged = flagged[:0]
		var err error
		// Lock the claim: concurrent uploads to one claim queue here, so
		// the limits below hold exactly.
		c, err = readableClaim(ctx, tx, p, claimID, true, errClaimNotFound)
		if err != nil {
			return err
		}
		if err := mayUpload(p, c); err != nil {
			return err
		}
		n, b, err := tx.ClaimDocumentUsage(ctx, c.ID)
		if err != nil {
			return err
		}
		switch {
		case n >= lim.MaxClaimDocuments:
			return s.tooManyDocuments()
		case b+st.Size > lim.MaxClaimBytes:
			return s.claimTooLarge()
		}
		same, err := tx.DocumentsBySHA256(ctx, sha)
		if err != nil {
			return err
		}
		shared := map[claims.ID]store.DocumentRef{} // other holders' claims with this content
		for _, o := range same {
			if o.ClaimID == c.ID {
				return &claims.Error{Kind: claims.Conflict,
					Message: fmt.Sprintf("This file was uploaded to this claim before, as document %s.", o.ID),
					Fields:  []claims.FieldError{{Field: "file", Rule: "duplicate", Message: "Document " + string(o.ID) + " has the same content."}},
					Extra:   map[string]any{"document": string(o.ID)}}
			}
			if o.HolderID != c.HolderID {
				if _, ok := shared[o.ClaimID]; !ok {
					shared[o.ClaimID] = o
				}
			}
		}
		d = store.Document{ID: claims.NewID(), ClaimID: c.ID, HolderID: c.HolderID, BlobID: st.BlobID,
			OriginalBlobID: st.OriginalBlobID, Filename: st.Filename, ContentType: st.ContentType, Size: st.Size,
			SHA256: sha, OriginalSHA256: hex.EncodeToString(st.OriginalSHA256), Status: store.DocumentPendingScan,
			UploadedBy: p.UserID, CreatedAt: tx.Now()}
		if err := tx.InsertDocument(ctx, d); err != nil {
			return err
		}
		if err := audit(ctx, tx, p.UserID, "document.uploaded", "claim", string(c.ID), "ok", map[string]string{
			"document": string(d.ID), "size": strconv.FormatInt(d.Size, 10), "type": d.ContentType, "sha256": sha,
			"reencoded": strconv.FormatBool(st.Reencoded)}); err != nil {
			return err
		}
		if len(shared) > 0 {
			// The same evidence on another policyholder's claim: a fraud
			// signal on both sides, for a human to look at.
			if err := s.flagShared(ctx, tx, &c, d.ID, sha); err != nil {
				return err
			}
			flagged = append(flagged, c)
			for otherID, o := range shared {
				oc, err := tx.ClaimForUpdate(ctx, otherID)
				if err != nil {
					return err
				}
				if err := s.flagShared(ctx, tx, &oc, o.ID, sha); err != nil {
					return err
				}
				flagged = append(flagged, oc)
			}
		}
		return nil
	})
	if err != nil {
		return store.Document{}, err
	}
	committed = true
	s.publish(claims.Event{Type: "document.uploaded", ClaimID: c.ID, HolderID: c.HolderID, AssigneeID: c.AssigneeID, Status: c.Status, At: d.CreatedAt})
	for _, fc := range flagged {
		s.publish(claims.Event{Type: "claim.flagged", ClaimID: fc.ID, HolderID: fc.HolderID, AssigneeID: fc.AssigneeID, Status: fc.Status, At: d.CreatedAt})
	}
	select {
	case s.docs.kick <- d.ID:
	default: // the worker's periodic pass will find it
	}
	return d, nil
}

// flagShared marks c with FlagSharedDocument (if not yet) and audits why.
func (s *Service) flagShared(ctx context.Context, tx *store.Tx, c *claims.Claim, doc claims.ID, sha string) error {
	if !c.HasFlag(claims.FlagSharedDocument) {
		c.AddFlag(claims.FlagSharedDocument)
		c.UpdatedAt = tx.Now()
		if err := tx.UpdateClaim(ctx, c); err != nil {
			return err
		}
	}
	return audit(ctx, tx, "system", "claim.flagged", "claim", string(c.ID), "ok", map[string]string{
		"flag": string(claims.FlagSharedDocument), "document": string(doc), "sha256": sha,
		"reason": "the same document is on a claim of another policyholder"})
}

// Documents lists the documents of a claim p may read.
func (s *Service) Documents(ctx context.Context, p claims.Principal, claimID claims.ID) ([]store.Document, error) {
	if p.IsZero() {
		return nil, claims.Errorf(claims.Unauthenticated, "Sign in first.")
	}
	if s.docs.pipe == nil {
		return nil, errDocumentsOff
	}
	var out []store.Document
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		c, err := readableClaim(ctx, tx, p, claimID, false, errClaimNotFound)
		if err != nil {
			return err
		}
		out, err = tx.ClaimDocuments(ctx, c.ID)
		return err
	})
	return out, err
}

// Document returns one document's record. A missing document and one on a
// claim p may not read answer the same.
func (s *Service) Document(ctx context.Context, p claims.Principal, claimID, docID claims.ID) (store.Document, error) {
	var d store.Document
	if p.IsZero() {
		return d, claims.Errorf(claims.Unauthenticated, "Sign in first.")
	}
	if s.docs.pipe == nil {
		return d, errDocumentsOff
	}
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		var err error
		d, err = s.readableDocument(ctx, tx, p, claimID, docID)
		return err
	})
	return d, err
}

func (s *Service) readableDocument(ctx context.Context, tx *store.Tx, p claims.Principal, claimID, docID claims.ID) (store.Document, error) {
	if !claims.ValidID(string(docID)) {
		return store.Document{}, errDocumentNotFound
	}
	c, err := readableClaim(ctx, tx, p, claimID, false, errDocumentNotFound)
	if err != nil {
		return store.Document{}, err
	}
	d, err := tx.Document(ctx, c.ID, docID)
	if claims.KindOf(err) == claims.NotFound {
		return d, errDocumentNotFound
	}
	return d, err
}

// OpenDocument returns a clean document's record and its decrypted content
// as a stream, and records the download in the audit log. Documents pending
// a scan or quarantined are refused (Conflict). The caller must close the
// stream, and must treat a Read error as fatal to the response (see
// files.Pipeline.Open).
func (s *Service) OpenDocument(ctx context.Context, p claims.Principal, claimID, docID claims.ID) (store.Document, io.ReadCloser, error) {
	var (
		d  store.Document
		rc io.ReadCloser
	)
	if p.IsZero() {
		return d, nil, claims.Errorf(claims.Unauthenticated, "Sign in first.")
	}
	if s.docs.pipe == nil {
		return d, nil, errDocumentsOff
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if d, err = s.readableDocument(ctx, tx, p, claimID, docID); err != nil {
			return err
		}
		// Staff download documents only with documents.read; the
		// policyholder always may download their own.
		if p.HolderID == "" || d.HolderID != p.HolderID {
			if err := access.Require(p, access.DocumentsRead); err != nil {
				return err
			}
		}
		switch d.Status {
		case store.DocumentClean:
		case store.DocumentErased:
			return claims.Errorf(claims.NotFound, "This document was erased with its policyholder's personal data.")
		case store.DocumentQuarantined:
			return &claims.Error{Kind: claims.Conflict, Message: "This document was quarantined by the virus scanner and cannot be downloaded.",
				Extra: map[string]any{"status": string(d.Status)}}
		default:
			return &claims.Error{Kind: claims.Conflict, Message: "This document has not been scanned for viruses yet; try again shortly.",
				Extra: map[string]any{"status": string(d.Status)}}
		}
		if rc != nil {
			rc.Close() // a retried transaction
		}
		if rc, err = s.docs.pipe.Open(ctx, d.BlobID); err != nil {
			return fmt.Errorf("open document %s: %w", d.ID, err)
		}
		return audit(ctx, tx, p.UserID, "document.downloaded", "claim", string(d.ClaimID), "ok", map[string]string{
			"document": string(d.ID), "claim": string(d.ClaimID), "size": strconv.FormatInt(d.Size, 10)})
	})
	if err != nil {
		if rc != nil {
			rc.Close()
		}
		return store.Document{}, nil, err
	}
	return d, rc, nil
}

// scanBackoff is the wait before scan attempt n+1 after n failures.
func scanBackoff(failures int) time.Duration {
	d := 5 * time.Second
	for i := 1; i < failures && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// PendingDocuments returns the ids of up to limit documents due for a scan.
func (s *Service) PendingDocuments(ctx context.Context, limit int) ([]claims.ID, error) {
	var ids []claims.ID
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		list, err := tx.PendingDocuments(ctx, s.now(), limit)
		for _, d := range list {
			ids = append(ids, d.ID)
		}
		return err
	})
	return ids, err
}

// ScanDocument scans a pending document and records the verdict: clean, or
// quarantined with an audit note on the claim and a security event. When
// the scanner cannot decide (clamd down, a timeout, a storage error) the
// document stays pending_scan, the failure is counted and the next attempt
// postponed: fail closed. It returns the document's status afterwards.
func (s *Service) ScanDocument(ctx context.Context, docID claims.ID) (store.DocumentStatus, error) {
	if s.docs.pipe == nil || s.docs.scanner == nil {
		return "", errors.New("workflow: no document pipeline or scanner configured")
	}
	var d store.Document
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		var err error
		d, err = tx.DocumentByID(ctx, docID)
		return err
	})
	if err != nil {
		return "", err
	}
	if d.Status != store.DocumentPendingScan {
		return d.Status, nil
	}
	res, scanErr := s.docs.pipe.Scan(ctx, s.docs.scanner, d.BlobID)
	if scanErr != nil {
		if ctx.Err() != nil {
			return d.Status, scanErr // shutting down: not the document's fault
		}
		after := s.now().Add(scanBackoff(d.ScanAttempts + 1))
		if err := s.db.InTx(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			return tx.RecordScanFailure(ctx, d.ID, after)
		}); err != nil {
			return d.Status, errors.Join(scanErr, err)
		}
		s.log.WarnContext(ctx, "document scan failed; it stays pending_scan and will be retried", "document", d.ID,
			"scanner", s.docs.scanner.Name(), "attempt", d.ScanAttempts+1, "retry_after", after.Format(time.RFC3339), "err", scanErr)
		return d.Status, scanErr
	}
	status := store.DocumentClean
	if res.Infected {
		status = store.DocumentQuarantined
	}
	var (
		c       claims.Claim
		changed bool
	)
	err = s.db.InTx(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		var err error
		if changed, err = tx.SetDocumentVerdict(ctx, d.ID, status, res.Signature); err != nil || !changed {
			return err
		}
		if c, err = tx.Claim(ctx, d.ClaimID); err != nil {
			return err
		}
		if !res.Infected {
			return audit(ctx, tx, "system", "document.scanned", "claim", string(d.ClaimID), "ok", map[string]string{
				"document": string(d.ID), "status": string(status), "scanner": s.docs.scanner.Name()})
		}
		details := map[string]string{"document": string(d.ID), "claim": string(d.ClaimID), "signature": res.Signature,
			"scanner": s.docs.scanner.Name(), "sha256": d.SHA256, "uploaded_by": string(d.UploadedBy)}
		if err := audit(ctx, tx, "system", "document.quarantined", "claim", string(d.ClaimID), "ok", details); err != nil {
			return err
		}
		return audit(ctx, tx, "system", "security.malware_detected", "document", string(d.ID), "ok", details)
	})
	if err != nil {
		return d.Status, err
	}
	if !changed {
		return d.Status, nil // someone else recorded a verdict first
	}
	if res.Infected {
		s.log.WarnContext(ctx, "malware detected in an uploaded document; quarantined", "document", d.ID, "claim", d.ClaimID,
			"signature", res.Signature, "scanner", s.docs.scanner.Name(), "uploaded_by", d.UploadedBy)
	}
	s.publish(claims.Event{Type: "document.scanned", ClaimID: c.ID, HolderID: c.HolderID, AssigneeID: c.AssigneeID,
		Status: c.Status, At: s.now().UTC()})
	return status, nil
}

// SweepDocuments removes blobs older than grace that no document refers
// to: left by a crash between storing an upload and committing its row.
func (s *Service) SweepDocuments(ctx context.Context, grace time.Duration) (int, error) {
	if s.docs.pipe == nil {
		return 0, nil
	}
	return s.docs.pipe.Sweep(ctx, grace, func(id string) (bool, error) {
		var known bool
		err := s.db.Read(ctx, func(tx *store.Tx) error {
			var err error
			known, err = tx.BlobRecorded(ctx, id)
			return err
		})
		return known, err
	})
}
