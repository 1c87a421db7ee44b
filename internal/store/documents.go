package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openclaims/claims/internal/claims"
)

// DocumentStatus is where a document is in scanning.
type DocumentStatus string

// Document statuses. Only a clean document may be downloaded.
const (
	DocumentPendingScan DocumentStatus = "pending_scan"
	DocumentClean       DocumentStatus = "clean"
	DocumentQuarantined DocumentStatus = "quarantined"
	// DocumentErased: the policyholder was erased; the content is deleted
	// (right away, and by the sweeper should that fail or a restore bring
	// the blob back) and only the row's non-personal metadata remains.
	DocumentErased DocumentStatus = "erased"
)

// Document is one file attached to a claim. Its content is in the blob
// store (encrypted) under BlobID; this is the record of it.
type Document struct {
	ID             claims.ID
	ClaimID        claims.ID
	HolderID       claims.ID
	BlobID         string
	OriginalBlobID string // "" unless originals are kept
	Filename       string // sanitised display name; ErasedText once the holder is erased
	ContentType    string
	Size           int64
	SHA256         string // hex, of the stored plaintext
	OriginalSHA256 string // hex, of the upload
	Status         DocumentStatus
	ScanSignature  string
	ScanAttempts   int
	ScanAfter      time.Time
	UploadedBy     claims.ID
	CreatedAt      time.Time
	ScannedAt      time.Time // zero until a verdict
}

const documentColumns = `id, claim_id, holder_id, blob_id, original_blob_id, filename, content_type, size, sha256,
	original_sha256, status, scan_signature, scan_attempts, scan_after, uploaded_by, created_at, scanned_at`

func scanDocument(s scanner) (Document, []byte, error) {
	var (
		d                  Document
		orig               sql.NullString
		name               []byte
		after, created     int64
		scannedAt          sql.NullInt64
		status, uploadedBy string
	)
	err := s.Scan(&d.ID, &d.ClaimID, &d.HolderID, &d.BlobID, &orig, &name, &d.ContentType, &d.Size, &d.SHA256,
		&d.OriginalSHA256, &status, &d.ScanSignature, &d.ScanAttempts, &after, &uploadedBy, &created, &scannedAt)
	if err != nil {
		return d, nil, err
	}
	d.OriginalBlobID, d.Status, d.UploadedBy = orig.String, DocumentStatus(status), claims.ID(uploadedBy)
	d.ScanAfter, d.CreatedAt = fromMicros(after), fromMicros(created)
	if scannedAt.Valid {
		d.ScannedAt = fromMicros(scannedAt.Int64)
	}
	return d, name, nil
}

func (tx *Tx) openFilename(ctx context.Context, d *Document, sealed []byte) error {
	plain, err := tx.openFor(ctx, d.HolderID, "documents", "filename", string(d.ID), sealed)
	switch {
	case errors.Is(err, errErased):
		d.Filename = ErasedText
	case err != nil:
		return err
	default:
		d.Filename = string(plain)
	}
	return nil
}

// InsertDocument records a stored document. The same SHA-256 twice on one
// claim is a Conflict (a unique index makes that race-free).
func (tx *Tx) InsertDocument(ctx context.Context, d Document) error {
	name, err := tx.sealFor(ctx, d.HolderID, "documents", "filename", string(d.ID), []byte(d.Filename))
	if err != nil {
		return fmt.Errorf("seal document filename: %w", err)
	}
	var orig any
	if d.OriginalBlobID != "" {
		orig = d.OriginalBlobID
	}
	if d.Status == "" {
		d.Status = DocumentPendingScan
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = tx.now
	}
	_, err = tx.exec(ctx, `INSERT INTO documents (`+documentColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.ClaimID, d.HolderID, d.BlobID, orig, name, d.ContentType, d.Size, d.SHA256, d.OriginalSHA256,
		string(d.Status), d.ScanSignature, d.ScanAttempts, micros(d.ScanAfter), d.UploadedBy, micros(d.CreatedAt), nil)
	if isUniqueViolation(err) {
		return claims.Errorf(claims.Conflict, "This file was uploaded to this claim before.")
	}
	if err != nil {
		return fmt.Errorf("insert document: %w", err)
	}
	return nil
}

// Document returns document id of claim claimID, filename opened. A
// document of another claim is NotFound.
func (tx *Tx) Document(ctx context.Context, claimID, id claims.ID) (Document, error) {
	d, name, err := scanDocument(tx.queryRow(ctx, `SELECT `+documentColumns+` FROM documents WHERE id = ? AND claim_id = ?`, id, claimID))
	if errors.Is(err, sql.ErrNoRows) {
		return d, claims.Errorf(claims.NotFound, "Document not found.")
	}
	if err != nil {
		return d, fmt.Errorf("select document %s: %w", id, err)
	}
	return d, tx.openFilename(ctx, &d, name)
}

// DocumentByID returns document id without opening its filename (for the
// scan worker, which has no use for it).
func (tx *Tx) DocumentByID(ctx context.Context, id claims.ID) (Document, error) {
	d, _, err := scanDocument(tx.queryRow(ctx, `SELECT `+documentColumns+` FROM documents WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, claims.Errorf(claims.NotFound, "Document not found.")
	}
	if err != nil {
		return d, fmt.Errorf("select document %s: %w", id, err)
	}
	return d, nil
}

// ClaimDocuments lists a claim's documents, oldest first, filenames opened.
func (tx *Tx) ClaimDocuments(ctx context.Context, claimID claims.ID) ([]Document, error) {
	rows, err := tx.query(ctx, `SELECT `+documentColumns+` FROM documents WHERE claim_id = ? ORDER BY created_at, id`, claimID)
	if err != nil {
		return nil, fmt.Errorf("list documents of %s: %w", claimID, err)
	}
	type raw struct {
		d    Document
		name []byte
	}
	var list []raw
	for rows.Next() {
		d, name, err := scanDocument(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		list = append(list, raw{d, name})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]Document, 0, len(list))
	for _, r := range list {
		if err := tx.openFilename(ctx, &r.d, r.name); err != nil {
			return nil, err
		}
		out = append(out, r.d)
	}
	return out, nil
}

// ClaimDocumentUsage returns how many documents a claim has and their
// total stored size.
func (tx *Tx) ClaimDocumentUsage(ctx context.Context, claimID claims.ID) (count int, bytes int64, err error) {
	err = tx.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM documents WHERE claim_id = ?`, claimID).Scan(&count, &bytes)
	if err != nil {
		return 0, 0, fmt.Errorf("document usage of %s: %w", claimID, err)
	}
	return count, bytes, nil
}

// DocumentRef locates a document without its content or name.
type DocumentRef struct {
	ID       claims.ID
	ClaimID  claims.ID
	HolderID claims.ID
}

// DocumentsBySHA256 returns every document whose stored content has the
// given hex SHA-256, on any claim.
func (tx *Tx) DocumentsBySHA256(ctx context.Context, sha string) ([]DocumentRef, error) {
	rows, err := tx.query(ctx, `SELECT id, claim_id, holder_id FROM documents WHERE sha256 = ? ORDER BY created_at, id`, sha)
	if err != nil {
		return nil, fmt.Errorf("documents by hash: %w", err)
	}
	defer rows.Close()
	var out []DocumentRef
	for rows.Next() {
		var r DocumentRef
		if err := rows.Scan(&r.ID, &r.ClaimID, &r.HolderID); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SetDocumentVerdict records a scan verdict (clean or quarantined) for a
// document still pending. It reports false, changing nothing, when the
// document is no longer pending (another worker got there first).
func (tx *Tx) SetDocumentVerdict(ctx context.Context, id claims.ID, status DocumentStatus, signature string) (bool, error) {
	if status != DocumentClean && status != DocumentQuarantined {
		return false, fmt.Errorf("store: %q is not a scan verdict", status)
	}
	res, err := tx.exec(ctx, `UPDATE documents SET status = ?, scan_signature = ?, scan_attempts = scan_attempts + 1,
		scanned_at = ? WHERE id = ? AND status = ?`, string(status), signature, micros(tx.now), id, string(DocumentPendingScan))
	if err != nil {
		return false, fmt.Errorf("record verdict of %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// RecordScanFailure counts a failed scan attempt of a pending document and
// postpones the next one until after.
func (tx *Tx) RecordScanFailure(ctx context.Context, id claims.ID, after time.Time) error {
	if _, err := tx.exec(ctx, `UPDATE documents SET scan_attempts = scan_attempts + 1, scan_after = ?
		WHERE id = ? AND status = ?`, micros(after), id, string(DocumentPendingScan)); err != nil {
		return fmt.Errorf("record scan failure of %s: %w", id, err)
	}
	return nil
}

// PendingDocuments returns up to limit documents waiting for a scan whose
// backoff has passed, oldest first (filenames not opened).
func (tx *Tx) PendingDocuments(ctx context.Context, now time.Time, limit int) ([]Document, error) {
	rows, err := tx.query(ctx, `SELECT `+documentColumns+` FROM documents WHERE status = ? AND scan_after <= ?
		ORDER BY scan_after, created_at LIMIT ?`, string(DocumentPendingScan), micros(now), limitOr(limit))
	if err != nil {
		return nil, fmt.Errorf("pending documents: %w", err)
	}
	defer rows.Close()
	var out []Document
	for rows.Next() {
		d, _, err := scanDocument(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// BlobRecorded reports whether a document row refers to blobID (as its
// content or its kept original): the sweeper's test for orphans.
func (tx *Tx) BlobRecorded(ctx context.Context, blobID string) (bool, error) {
	var n int
	// An erased subject's blobs count as unknown, so the sweeper removes
	// them.
	err := tx.queryRow(ctx, `SELECT COUNT(*) FROM documents WHERE (blob_id = ? OR original_blob_id = ?) AND status <> ?`,
		blobID, blobID, string(DocumentErased)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("blob lookup: %w", err)
	}
	return n > 0, nil
}

// EraseDocuments marks every document of holder erased and returns the
// blobs to delete.
func (tx *Tx) EraseDocuments(ctx context.Context, holder claims.ID) ([]string, error) {
	rows, err := tx.query(ctx, `SELECT blob_id, original_blob_id FROM documents WHERE holder_id = ? AND status <> ?`,
		holder, string(DocumentErased))
	if err != nil {
		return nil, fmt.Errorf("documents of %s: %w", holder, err)
	}
	var blobs []string
	for rows.Next() {
		var b string
		var orig sql.NullString
		if err := rows.Scan(&b, &orig); err != nil {
			rows.Close()
			return nil, err
		}
		blobs = append(blobs, b)
		if orig.Valid {
			blobs = append(blobs, orig.String)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if _, err := tx.exec(ctx, `UPDATE documents SET status = ? WHERE holder_id = ?`, string(DocumentErased), holder); err != nil {
		return nil, fmt.Errorf("erase documents of %s: %w", holder, err)
	}
	return blobs, nil
}

// HolderBlobs returns every blob of holder's documents.
func (tx *Tx) HolderBlobs(ctx context.Context, holder claims.ID) ([]string, error) {
	rows, err := tx.query(ctx, `SELECT blob_id, original_blob_id FROM documents WHERE holder_id = ?`, holder)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var blobs []string
	for rows.Next() {
		var b string
		var orig sql.NullString
		if err := rows.Scan(&b, &orig); err != nil {
			return nil, err
		}
		blobs = append(blobs, b)
		if orig.Valid {
			blobs = append(blobs, orig.String)
		}
	}
	return blobs, rows.Err()
}

// ErasedBlobs returns the blobs of every erased document (for a restore,
// which must not bring their content back).
func (db *DB) ErasedBlobs(ctx context.Context) ([]string, error) {
	rows, err := db.ro.QueryContext(ctx, db.rebind(`SELECT blob_id, original_blob_id FROM documents WHERE status = ?`), string(DocumentErased))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var blobs []string
	for rows.Next() {
		var b string
		var orig sql.NullString
		if err := rows.Scan(&b, &orig); err != nil {
			return nil, err
		}
		blobs = append(blobs, b)
		if orig.Valid {
			blobs = append(blobs, orig.String)
		}
	}
	return blobs, rows.Err()
}
