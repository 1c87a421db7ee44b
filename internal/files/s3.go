package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3PartSize is the default multipart part size of S3Blobs. Each blob being
// written holds one part in memory (minio-go's buffer), so it bounds the
// memory of an upload; it also bounds the largest blob to 10,000 parts
// (about 78 GiB).
const S3PartSize = 8 << 20

// S3Config configures S3Blobs. ParseS3URL fills everything but the
// credentials, the transport and the logger.
type S3Config struct {
	Endpoint  string // host[:port], no scheme; default s3.amazonaws.com
	Bucket    string
	Prefix    string // "" or a key prefix ending in "/"
	Region    string // "" lets the client ask the server
	PlainHTTP bool   // tls=false: speak plain HTTP (a warning is logged)
	AccessKey string
	SecretKey string
	PartSize  uint64            // default S3PartSize; at least 5 MiB (the S3 minimum)
	Transport http.RoundTripper // nil: minio-go's default (system CA roots, TLS 1.2+)
	Log       *slog.Logger      // nil: slog.Default()
}

// ParseS3URL reads a blob store URL of the form
//
//	s3://bucket/optional/prefix?endpoint=host:port&region=us-east-1&tls=true
//
// endpoint defaults to s3.amazonaws.com, tls to true. Plain HTTP needs an
// explicit tls=false; an endpoint with a scheme (http://...) is refused, as
// are credentials in the URL, unknown parameters and odd prefixes.
func ParseS3URL(raw string) (S3Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return S3Config{}, fmt.Errorf("files: blob URL: %w", err)
	}
	if u.Scheme != "s3" {
		return S3Config{}, fmt.Errorf("files: blob URL %q: want s3://bucket/prefix?endpoint=host:port", redactS3URL(raw))
	}
	if u.User != nil {
		return S3Config{}, errors.New("files: blob URL: credentials do not belong in the URL; use CLAIMS_S3_ACCESS_KEY and CLAIMS_S3_SECRET_KEY(_FILE)")
	}
	if u.Fragment != "" || u.Opaque != "" {
		return S3Config{}, fmt.Errorf("files: blob URL %q: want s3://bucket/prefix?endpoint=host:port", raw)
	}
	c := S3Config{Bucket: u.Host, Endpoint: "s3.amazonaws.com"}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		return S3Config{}, fmt.Errorf("files: blob URL: bucket %q: %w", c.Bucket, err)
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.Trim(seg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" {
				return S3Config{}, fmt.Errorf("files: blob URL: prefix %q: use letters, digits, '-', '_' and '.' between single slashes", p)
			}
		}
		c.Prefix = p + "/"
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return S3Config{}, fmt.Errorf("files: blob URL: %w", err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return S3Config{}, fmt.Errorf("files: blob URL: parameter %s given %d times", k, len(v))
		}
		switch val := v[0]; k {
		case "endpoint":
			if val == "" || strings.Contains(val, "/") || strings.ContainsAny(val, "@?# ") {
				return S3Config{}, fmt.Errorf("files: blob URL: endpoint %q: want host[:port] without a scheme (plain HTTP is tls=false)", val)
			}
			c.Endpoint = val
		case "region":
			c.Region = val
		case "tls":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return S3Config{}, fmt.Errorf("files: blob URL: tls=%q: want true or false", val)
			}
			c.PlainHTTP = !b
		default:
			return S3Config{}, fmt.Errorf("files: blob URL: unknown parameter %q (known: endpoint, region, tls)", k)
		}
	}
	return c, nil
}

func redactS3URL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = url.User("[redacted]")
		return u.String()
	}
	return raw
}

// S3Blobs stores blobs in an S3-compatible object store (AWS S3, MinIO,
// Ceph RGW, Garage, ...) under keys
//
//	<prefix>ab/ab12...ef
//
// the same two-hex-digit fan-out as LocalBlobs. Ids are validated exactly as
// LocalBlobs does (ValidBlobID), so no key outside the prefix is ever
// formed. Blobs are written with a multipart upload of unknown size: the
// stream is cut into parts of PartSize bytes (one part in memory at a time),
// and S3 makes the object visible under its key only when the upload is
// completed, at Close. Abort, a failed write or a cancelled context abort the
// upload instead, so no object appears; parts of uploads that could not be
// aborted (a crash, the store unreachable) are removed by RemoveStaleTemp
// (called by Pipeline.Sweep), and a bucket lifecycle rule should abort
// incomplete multipart uploads after a day as well.
//
// An S3Blobs is safe for concurrent use.
type S3Blobs struct {
	c        *minio.Client
	bucket   string
	prefix   string
	partSize uint64
	desc     string
	listPage int // keys per ListObjectsV2 page; 0 = the server's (1000); tests page small
}

var _ Blobs = (*S3Blobs)(nil)

// NewS3Blobs returns a store for cfg. It does not contact the server (see
// Check). Plain HTTP is refused unless cfg.PlainHTTP is set, and then logged
// as a warning.
func NewS3Blobs(cfg S3Config) (*S3Blobs, error) {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	if err := s3utils.CheckValidBucketNameStrict(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("files: S3 bucket %q: %w", cfg.Bucket, err)
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = "s3.amazonaws.com"
	}
	if strings.Contains(cfg.Endpoint, "://") {
		return nil, fmt.Errorf("files: S3 endpoint %q: want host[:port] without a scheme (plain HTTP is tls=false)", cfg.Endpoint)
	}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("files: S3 blob store needs an access key and a secret key (CLAIMS_S3_ACCESS_KEY, CLAIMS_S3_SECRET_KEY or CLAIMS_S3_SECRET_KEY_FILE)")
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = S3PartSize
	}
	if cfg.PartSize < 5<<20 {
		return nil, fmt.Errorf("files: S3 part size %d: at least 5 MiB", cfg.PartSize)
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    !cfg.PlainHTTP,
		Region:    cfg.Region,
		Transport: cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("files: S3 client: %w", err)
	}
	scheme := "https"
	if cfg.PlainHTTP {
		scheme = "http"
		log.Warn("document blobs go to S3 over plain HTTP (tls=false): requests and the (encrypted) blobs cross the network unprotected; use only on loopback or a trusted network",
			"endpoint", cfg.Endpoint, "bucket", cfg.Bucket)
	}
	return &S3Blobs{c: c, bucket: cfg.Bucket, prefix: cfg.Prefix, partSize: cfg.PartSize,
		desc: fmt.Sprintf("s3://%s/%s at %s://%s", cfg.Bucket, cfg.Prefix, scheme, cfg.Endpoint)}, nil
}

// String describes where the blobs are, without credentials.
func (sb *S3Blobs) String() string { return sb.desc }

// Check asks the server whether the bucket exists and the credentials may
// see it.
func (sb *S3Blobs) Check(ctx context.Context) error {
	ok, err := sb.c.BucketExists(ctx, sb.bucket)
	if err != nil {
		return fmt.Errorf("files: checking S3 bucket %s: %w", sb.bucket, err)
	}
	if !ok {
		return fmt.Errorf("files: S3 bucket %s does not exist", sb.bucket)
	}
	return nil
}

func (sb *S3Blobs) key(id string) string { return sb.prefix + id[:2] + "/" + id }

// idOf returns the blob id of a key, or "" if the key is not one of ours.
func (sb *S3Blobs) idOf(key string) string {
	rest, ok := strings.CutPrefix(key, sb.prefix)
	if !ok || len(rest) != 35 || rest[2] != '/' {
		return ""
	}
	id := rest[3:]
	if !ValidBlobID(id) || id[:2] != rest[:2] {
		return ""
	}
	return id
}

func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == minio.NoSuchKey || r.StatusCode == http.StatusNotFound && r.Code != minio.NoSuchBucket
}

// Create starts a multipart upload for a new blob. See Blobs.Create; the
// writer implements Aborter. The upload is tied to ctx: cancelling it
// aborts the upload.
func (sb *S3Blobs) Create(ctx context.Context, id string) (io.WriteCloser, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := sb.key(id)
	// Like LocalBlobs: refuse an existing id. (Ids are random; this is a
	// check, not a lock.)
	if _, err := sb.c.StatObject(ctx, sb.bucket, key, minio.StatObjectOptions{}); err == nil {
		return nil, fmt.Errorf("files: creating blob %s: %w", id, fs.ErrExist)
	} else if !isNotFound(err) {
		return nil, fmt.Errorf("files: creating blob: %w", err)
	}
	pr, pw := io.Pipe()
	uctx, cancel := context.WithCancel(ctx)
	w := &s3Writer{pw: pw, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		// Size -1: a multipart upload of unknown length, read part by part
		// from the pipe; completed only when the pipe ends with EOF
		// (Close). On any error minio-go aborts the multipart upload (with
		// a context of its own, so after a cancel too).
		_, err := sb.c.PutObject(uctx, sb.bucket, key, pr, -1, minio.PutObjectOptions{
			PartSize:    sb.partSize,
			ContentType: "application/octet-stream",
		})
		w.err = err
		if err == nil {
			err = errors.New("files: upload already finished")
		}
		pr.CloseWithError(err) // unblock a writer if PutObject stopped reading
	}()
	return w, nil
}

var errAborted = errors.New("files: blob aborted")

type s3Writer struct {
	pw     *io.PipeWriter
	cancel context.CancelFunc
	done   chan struct{}
	err    error // PutObject's result, set before done is closed

	werr     error // first write error (sticky)
	finished bool
	result   error
}

func (w *s3Writer) Write(p []byte) (int, error) {
	if w.finished {
		return 0, errors.New("files: write to closed blob")
	}
	if w.werr != nil {
		return 0, w.werr
	}
	n, err := w.pw.Write(p)
	if err != nil {
		w.werr = fmt.Errorf("files: writing blob: %w", err)
	}
	return n, w.werr
}

// Abort ends the upload without completing it: the pipe fails, the context
// is cancelled and minio-go aborts the multipart upload. Nothing appears
// under the key, since only Close's EOF lets the upload complete.
func (w *s3Writer) Abort() error {
	if w.finished {
		return nil
	}
	w.finished = true
	w.result = errAborted
	w.pw.CloseWithError(errAborted)
	w.cancel()
	<-w.done
	return nil
}

// Close completes the upload, which makes the blob visible. After a write
// error it aborts and returns that error.
func (w *s3Writer) Close() error {
	if w.finished {
		return w.result
	}
	if w.werr != nil {
		w.Abort()
		w.result = w.werr
		return w.werr
	}
	w.finished = true
	w.pw.Close()
	<-w.done
	w.cancel()
	if w.err != nil {
		w.result = fmt.Errorf("files: committing blob: %w", w.err)
	}
	return w.result
}

// Open streams a committed blob. An unknown id gives an error wrapping
// fs.ErrNotExist.
func (sb *S3Blobs) Open(ctx context.Context, id string) (io.ReadCloser, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	obj, err := sb.c.GetObject(ctx, sb.bucket, sb.key(id), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("files: opening blob: %w", err)
	}
	// Stat sends the GET and reports a missing object.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if isNotFound(err) {
			return nil, fmt.Errorf("files: opening blob %s: %w", id, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("files: opening blob: %w", err)
	}
	return obj, nil
}

// Delete removes a blob; an unknown id is not an error. (In a bucket with
// versioning the data stays as a noncurrent version: see
// docs/deployment.md.)
func (sb *S3Blobs) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := sb.c.RemoveObject(ctx, sb.bucket, sb.key(id), minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("files: deleting blob: %w", err)
	}
	return nil
}

// List calls fn for every committed blob under the prefix, with the
// object's LastModified, paging through ListObjectsV2. Keys that are not
// blob keys are skipped.
func (sb *S3Blobs) List(ctx context.Context, fn func(id string, modTime time.Time) error) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when fn stops early
	for obj := range sb.c.ListObjectsIter(lctx, sb.bucket, minio.ListObjectsOptions{Prefix: sb.prefix, Recursive: true, MaxKeys: sb.listPage}) {
		if obj.Err != nil {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("files: listing blobs: %w", obj.Err)
		}
		id := sb.idOf(obj.Key)
		if id == "" {
			continue
		}
		if err := fn(id, obj.LastModified); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// RemoveStaleTemp aborts multipart uploads of blobs started before cutoff
// and never completed or aborted (a crash, or the store unreachable when
// the upload failed), which would otherwise keep their parts (and the
// bill) forever. It returns how many it aborted. Pipeline.Sweep calls it.
func (sb *S3Blobs) RemoveStaleTemp(ctx context.Context, cutoff time.Time) (int, error) {
	core := minio.Core{Client: sb.c}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := 0
	for up := range sb.c.ListIncompleteUploads(lctx, sb.bucket, sb.prefix, true) {
		if up.Err != nil {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			if minio.ToErrorResponse(up.Err).Code == "NoSuchUpload" {
				// gofakes3 (the tests' stand-in) answers a listing of a
				// bucket that never had an upload so; S3 lists nothing.
				return n, nil
			}
			return n, fmt.Errorf("files: listing incomplete uploads: %w", up.Err)
		}
		if sb.idOf(up.Key) == "" || !up.Initiated.Before(cutoff) {
			continue
		}
		if err := core.AbortMultipartUpload(ctx, sb.bucket, up.Key, up.UploadID); err != nil {
			if r := minio.ToErrorResponse(err); r.Code == "NoSuchUpload" {
				continue // finished or aborted meanwhile
			}
			return n, fmt.Errorf("files: aborting stale upload: %w", err)
		}
		n++
	}
	return n, ctx.Err()
}
