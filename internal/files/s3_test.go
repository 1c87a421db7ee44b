package files

// S3Blobs is tested against gofakes3, an in-process S3 protocol server
// (github.com/johannesboyne/gofakes3 with its in-memory backend) served over
// TLS by httptest: a stand-in for a real S3-compatible server, which could
// not be installed here (Debian has no minio, seaweedfs or garage package).
// It speaks the same HTTP protocol minio-go uses (multipart uploads,
// ListObjectsV2 paging, ListMultipartUploads), but it does not check request
// signatures or enforce the 5 MiB minimum part size, so credentials and part
// sizing are only exercised against a real server. Nor does it decode the
// aws-chunked bodies (streaming SigV4) that minio-go sends for parts over
// plain HTTP: decodeAWSChunked does that for the plain-HTTP test.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/seal"
)

const testBucket = "claims-docs"

// s3Clock is the fake server's clock, shifted to make objects old.
type s3Clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *s3Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off).UTC()
}
func (c *s3Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c *s3Clock) set(off time.Duration) {
	c.mu.Lock()
	c.off = off
	c.mu.Unlock()
}

type s3Env struct {
	clock *s3Clock
	blobs *S3Blobs
	raw   *minio.Client // direct access to the bucket, past S3Blobs
	p     *Pipeline
}

// newS3Env starts gofakes3 over TLS with an empty bucket and returns an
// S3Blobs on it under prefix.
func newS3Env(t testing.TB, lim Limits, prefix string) *s3Env {
	t.Helper()
	clock := &s3Clock{}
	backend := s3mem.New(s3mem.WithTimeSource(clock))
	if err := backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	// No skew limit: the clock is moved back to age objects.
	fake := gofakes3.New(backend, gofakes3.WithTimeSource(clock), gofakes3.WithTimeSkewLimit(0))
	srv := httptest.NewTLSServer(fake.Server())
	t.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	cfg, err := ParseS3URL("s3://" + testBucket + "/" + prefix + "?endpoint=" + srv.Listener.Addr().String() + "&region=us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	cfg.AccessKey, cfg.SecretKey, cfg.Transport = "test-access", "test-secret", tr
	sb, err := NewS3Blobs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := minio.New(cfg.Endpoint, &minio.Options{Creds: credentials.NewStaticV4("a", "b", ""), Secure: true,
		Region: "us-east-1", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyRing(seal.GenerateKEK("k1"))
	if err != nil {
		t.Fatal(err)
	}
	return &s3Env{clock: clock, blobs: sb, raw: raw, p: NewPipeline(sb, kr, lim)}
}

// ids lists the blobs through S3Blobs.List.
func (e *s3Env) ids(t testing.TB) []string {
	t.Helper()
	var ids []string
	if err := e.blobs.List(ctx(t), func(id string, _ time.Time) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// keys lists every object key in the bucket, whatever the prefix.
func (e *s3Env) keys(t testing.TB) []string {
	t.Helper()
	var keys []string
	for o := range e.raw.ListObjectsIter(ctx(t), testBucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// uploads lists the multipart uploads in progress in the bucket.
func (e *s3Env) uploads(t testing.TB) []string {
	t.Helper()
	var keys []string
	for u := range e.raw.ListIncompleteUploads(ctx(t), testBucket, "", true) {
		if minio.ToErrorResponse(u.Err).Code == "NoSuchUpload" {
			break // gofakes3: the bucket never had an upload
		}
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		keys = append(keys, u.Key)
	}
	return keys
}

// empty fails unless the bucket holds no object and no upload.
func (e *s3Env) empty(t testing.TB) {
	t.Helper()
	if k := e.keys(t); len(k) != 0 {
		t.Errorf("objects left behind: %v", k)
	}
	if u := e.uploads(t); len(u) != 0 {
		t.Errorf("multipart uploads left behind: %v", u)
	}
}

func (e *s3Env) rawObject(t testing.TB, key string) []byte {
	t.Helper()
	o, err := e.raw.GetObject(ctx(t), testBucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return b
}

func (e *s3Env) read(t testing.TB, id string) []byte {
	t.Helper()
	rc, err := e.p.Open(ctx(t), id)
	if err != nil {
		t.Fatalf("Open(%s): %v", id, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", id, err)
	}
	return b
}

func TestS3PipelineRoundTrip(t *testing.T) {
	e := newS3Env(t, Limits{MaxFileBytes: 40 << 20}, "claims/documents")
	// 20 MB: three parts of 8 MiB, the last one short.
	big := &countingReader{limit: 20_000_000}
	var bigData bytes.Buffer
	if _, err := io.Copy(&bigData, &countingReader{limit: 20_000_000}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file string
		r          io.Reader
		want       []byte // nil: not compared (re-encoded image)
		wantType   string
	}{
		{"small PDF", "a.pdf", bytes.NewReader(minimalPDF("Windscreen claim 4711")), minimalPDF("Windscreen claim 4711"), "application/pdf"},
		{"text", "notes.txt", strings.NewReader("plain text notes\n"), []byte("plain text notes\n"), "text/plain"},
		{"20 MB PDF", "big.pdf", big, bigData.Bytes(), "application/pdf"},
		{"PNG (spooled and re-encoded)", "photo.png", bytes.NewReader(pngBytes(t, 32, 16)), nil, "image/png"},
	}
	var want []string
	for _, tt := range tests {
		st, err := e.p.Ingest(ctx(t), tt.r, tt.file)
		if err != nil {
			t.Fatalf("%s: Ingest: %v", tt.name, err)
		}
		want = append(want, st.BlobID)
		if st.ContentType != tt.wantType {
			t.Errorf("%s: type %s", tt.name, st.ContentType)
		}
		if err := e.p.Verify(ctx(t), st.BlobID); err != nil {
			t.Errorf("%s: Verify: %v", tt.name, err)
		}
		got := e.read(t, st.BlobID)
		if tt.want != nil && !bytes.Equal(got, tt.want) {
			t.Errorf("%s: content differs (%d bytes, want %d)", tt.name, len(got), len(tt.want))
		}
		if h := sha256.Sum256(got); !bytes.Equal(h[:], st.SHA256) || int64(len(got)) != st.Size {
			t.Errorf("%s: Stored = %+v does not describe the content", tt.name, st)
		}
		// Stored under the prefix with the two-digit fan-out.
		key := "claims/documents/" + st.BlobID[:2] + "/" + st.BlobID
		if raw := e.rawObject(t, key); len(raw) <= int(st.Size) {
			t.Errorf("%s: object %s has %d bytes for %d of content", tt.name, key, len(raw), st.Size)
		}
	}
	slices.Sort(want)
	if got := e.ids(t); !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v (the image spool must be gone)", got, want)
	}
	if u := e.uploads(t); len(u) != 0 {
		t.Errorf("multipart uploads left: %v", u)
	}
	// Delete; deleting again or an unknown id is fine; Open then says
	// fs.ErrNotExist.
	for _, id := range append(want, NewBlobID()) {
		if err := e.p.Delete(ctx(t), id); err != nil {
			t.Fatalf("Delete(%s): %v", id, err)
		}
		if err := e.p.Delete(ctx(t), id); err != nil {
			t.Fatalf("second Delete(%s): %v", id, err)
		}
		if _, err := e.p.Open(ctx(t), id); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%s) after Delete: %v", id, err)
		}
	}
	e.empty(t)
}

func TestS3FailedIngestLeavesNothing(t *testing.T) {
	t.Run("too large, after a part was uploaded", func(t *testing.T) {
		e := newS3Env(t, Limits{MaxFileBytes: 12 << 20}, "")
		r := &countingReader{limit: 60_000_000}
		_, err := e.p.Ingest(ctx(t), r, "big.pdf")
		wantKind(t, err, claims.TooLarge)
		if r.n > 12<<20+64<<10 {
			t.Errorf("read %d bytes of a 60 MB stream", r.n)
		}
		e.empty(t)
	})
	t.Run("cancelled context mid-upload", func(t *testing.T) {
		e := newS3Env(t, Limits{MaxFileBytes: 40 << 20}, "p")
		c, cancel := context.WithCancel(ctx(t))
		r := &cancelAfter{r: &countingReader{limit: 30 << 20}, n: 10 << 20, cancel: cancel}
		if _, err := e.p.Ingest(c, r, "a.pdf"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Ingest: %v", err)
		}
		e.empty(t)
	})
	t.Run("damaged image after its spool was written", func(t *testing.T) {
		e := newS3Env(t, Limits{}, "")
		png := pngBytes(t, 64, 64)
		_, err := e.p.Ingest(ctx(t), bytes.NewReader(png[:len(png)-40]), "a.png")
		wantKind(t, err, claims.Invalid)
		e.empty(t)
	})
	t.Run("reader error", func(t *testing.T) {
		e := newS3Env(t, Limits{}, "")
		r := io.MultiReader(bytes.NewReader(minimalPDF(strings.Repeat("x", 9<<20))), &errReader{errors.New("connection reset")})
		if _, err := e.p.Ingest(ctx(t), r, "a.pdf"); err == nil || !strings.Contains(err.Error(), "connection reset") {
			t.Fatalf("Ingest: %v", err)
		}
		e.empty(t)
	})
}

func TestS3WriterSemantics(t *testing.T) {
	e := newS3Env(t, Limits{}, "docs")
	id := NewBlobID()
	w, err := e.blobs.Create(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	// More than one part: parts are on the server, but no object is.
	chunk := bytes.Repeat([]byte("ciphertext"), 1<<20)
	for range 2 {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.blobs.Open(ctx(t), id); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("uncommitted blob visible: %v", err)
	}
	if ids := e.ids(t); len(ids) != 0 {
		t.Errorf("uncommitted blob listed: %v", ids)
	}
	if u := e.uploads(t); len(u) != 1 {
		t.Errorf("uploads in progress: %v", u)
	}
	if err := w.(Aborter).Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil {
		t.Errorf("Close after Abort reported success")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Errorf("Write after Abort succeeded")
	}
	e.empty(t)

	// Close commits; the id is then taken.
	w, err = e.blobs.Create(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("sealed bytes"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := e.rawObject(t, "docs/"+id[:2]+"/"+id); string(got) != "sealed bytes" {
		t.Errorf("object holds %q", got)
	}
	if _, err := e.blobs.Create(ctx(t), id); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create of an existing id: %v", err)
	}

	// A write error (the server gone) fails Close and commits nothing.
	id2 := NewBlobID()
	c, cancel := context.WithCancel(ctx(t))
	w, err = e.blobs.Create(c, id2)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	cancel()
	for i := 0; i < 100; i++ { // the pipe fails once PutObject has noticed
		if _, err = w.Write(chunk); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("writes after cancel kept succeeding")
	}
	if err := w.Close(); err == nil {
		t.Errorf("Close after a write error succeeded")
	}
	if ids := e.ids(t); !slices.Equal(ids, []string{id}) {
		t.Errorf("blobs %v, want just %s", ids, id)
	}
	if u := e.uploads(t); len(u) != 0 {
		t.Errorf("uploads left: %v", u)
	}
}

func TestS3Sweep(t *testing.T) {
	e := newS3Env(t, Limits{}, "claims")
	e.blobs.listPage = 2 // several ListObjectsV2 pages
	store := func(text string) string {
		st, err := e.p.Ingest(ctx(t), bytes.NewReader(minimalPDF(text)), "a.pdf")
		if err != nil {
			t.Fatal(err)
		}
		return st.BlobID
	}
	// Two hours ago: orphans, known blobs, an upload that never finished.
	e.clock.set(-2 * time.Hour)
	oldOrphans := []string{store("orphan 1"), store("orphan 2"), store("orphan 3")}
	known := []string{store("known 1"), store("known 2"), store("known 3")}
	stale, err := e.blobs.Create(ctx(t), NewBlobID())
	if err != nil {
		t.Fatal(err)
	}
	stale.Write([]byte("never finished")) // returns once the upload has started
	// Objects that are not blobs, under the prefix and outside it.
	for _, k := range []string{"claims/README", "claims/ab/not-a-blob", "other/" + NewBlobID()[:2] + "/x", "claims/zz/" + strings.Repeat("a", 32)} {
		if _, err := e.raw.PutObject(ctx(t), testBucket, k, strings.NewReader("foreign"), 7, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Now: a fresh orphan stays within the grace period.
	e.clock.set(0)
	fresh := store("fresh orphan")

	isKnown := func(id string) (bool, error) { return slices.Contains(known, id), nil }
	n, err := e.p.Sweep(ctx(t), time.Hour, isKnown)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(oldOrphans)+1 {
		t.Errorf("Sweep removed %d, want %d orphans and 1 stale upload", n, len(oldOrphans))
	}
	want := append(slices.Clone(known), fresh)
	slices.Sort(want)
	if got := e.ids(t); !slices.Equal(got, want) {
		t.Errorf("after Sweep: %v, want %v", got, want)
	}
	if u := e.uploads(t); len(u) != 0 {
		t.Errorf("stale upload not aborted: %v", u)
	}
	if k := e.keys(t); len(k) != len(want)+4 {
		t.Errorf("objects %v: foreign objects must stay", k)
	}
	for _, id := range known {
		if err := e.p.Verify(ctx(t), id); err != nil {
			t.Errorf("known blob %s: %v", id, err)
		}
	}
	// The writer of the aborted upload cannot commit any more.
	if err := stale.Close(); err == nil {
		t.Errorf("Close of an upload the sweeper aborted succeeded")
	}
	if n, err := e.p.Sweep(ctx(t), 10*time.Minute, isKnown); err == nil {
		t.Errorf("Sweep with a 10 minute grace removed %d", n)
	}
	// fn's error stops List.
	stop := errors.New("stop")
	calls := 0
	if err := e.blobs.List(ctx(t), func(string, time.Time) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("List: %v after %d calls", err, calls)
	}
}

func TestS3RefusesBadIDs(t *testing.T) {
	e := newS3Env(t, Limits{}, "p")
	bad := []string{"", "../../etc/passwd", "..", "ab/" + strings.Repeat("0", 29), strings.Repeat("0", 31),
		strings.Repeat("0", 33), strings.Repeat("A", 32), "../" + strings.Repeat("0", 29), strings.Repeat("0", 30) + "/.",
		strings.Repeat("0", 31) + "\x00", strings.Repeat("g", 32), `ab\` + strings.Repeat("0", 29),
		"00/" + strings.Repeat("0", 29), "?list-type=2" + strings.Repeat("0", 20)}
	for _, id := range bad {
		if _, err := e.blobs.Create(ctx(t), id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Create(%q): %v", id, err)
		}
		if _, err := e.blobs.Open(ctx(t), id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Open(%q): %v", id, err)
		}
		if err := e.blobs.Delete(ctx(t), id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Delete(%q): %v", id, err)
		}
		if _, err := e.p.Open(ctx(t), id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Pipeline.Open(%q): %v", id, err)
		}
	}
	e.empty(t)
	// Keys that are not exactly <prefix><2 hex>/<id> are never listed.
	for _, k := range []string{"p/00/" + strings.Repeat("0", 32), "p/01/" + strings.Repeat("0", 32), "p/00/" + strings.Repeat("0", 32) + "x",
		"p00/" + strings.Repeat("0", 32), "p/00/" + strings.Repeat("A", 32), "00/" + strings.Repeat("0", 32)} {
		if _, err := e.raw.PutObject(ctx(t), testBucket, k, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(k, err)
		}
	}
	if got := e.ids(t); !slices.Equal(got, []string{strings.Repeat("0", 32)}) {
		t.Errorf("List = %v", got)
	}
}

func TestS3StoredEncrypted(t *testing.T) {
	e := newS3Env(t, Limits{}, "enc")
	marker := "PLANTED-MARKER-5d0e7b"
	doc := minimalPDF(marker + " " + strings.Repeat("claim text ", 20000))
	st, err := e.p.Ingest(ctx(t), bytes.NewReader(doc), "a.pdf")
	if err != nil {
		t.Fatal(err)
	}
	raw := e.rawObject(t, "enc/"+st.BlobID[:2]+"/"+st.BlobID)
	for _, s := range []string{marker, "%PDF", "claim text"} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("stored object contains %q", s)
		}
	}
	// An object copied under another id does not open (AAD binds the id).
	other := NewBlobID()
	if _, err := e.raw.PutObject(ctx(t), testBucket, "enc/"+other[:2]+"/"+other, bytes.NewReader(raw), int64(len(raw)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Verify(ctx(t), other); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("Verify of copied blob: %v, want seal.ErrOpen", err)
	}
	// A truncated object fails too.
	if _, err := e.raw.PutObject(ctx(t), testBucket, "enc/"+st.BlobID[:2]+"/"+st.BlobID, bytes.NewReader(raw[:len(raw)-10]), int64(len(raw)-10), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Verify(ctx(t), st.BlobID); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("Verify of truncated blob: %v, want seal.ErrOpen", err)
	}
}

func TestParseS3URL(t *testing.T) {
	good := []struct {
		url  string
		want S3Config
	}{
		{"s3://bucket", S3Config{Bucket: "bucket", Endpoint: "s3.amazonaws.com"}},
		{"s3://claims-docs/prod/documents/?endpoint=127.0.0.1:9000&region=us-east-1&tls=true",
			S3Config{Bucket: "claims-docs", Prefix: "prod/documents/", Endpoint: "127.0.0.1:9000", Region: "us-east-1"}},
		{"s3://bkt/p?endpoint=minio.internal:9000&tls=false", S3Config{Bucket: "bkt", Prefix: "p/", Endpoint: "minio.internal:9000", PlainHTTP: true}},
	}
	for _, tt := range good {
		got, err := ParseS3URL(tt.url)
		if err != nil || got != tt.want {
			t.Errorf("ParseS3URL(%q) = %+v, %v; want %+v", tt.url, got, err, tt.want)
		}
	}
	bad := []string{
		"", "bucket", "http://bucket", "file:///data", "s3://", "s3://UPPER", "s3://b_",
		"s3://key:secret@bucket", "s3://b?endpoint=http://127.0.0.1:9000", "s3://b?endpoint=https://s3.example.com",
		"s3://b?endpoint=", "s3://b?tls=maybe", "s3://b?secure=false", "s3://b?tls=true&tls=false",
		"s3://b/a/../c", "s3://b/a//c", "s3://b/a b", "s3://b#frag",
	}
	for _, u := range bad {
		if c, err := ParseS3URL(u); err == nil {
			t.Errorf("ParseS3URL(%q) = %+v, want an error", u, c)
		} else if strings.Contains(err.Error(), "secret") && !strings.Contains(err.Error(), "CLAIMS_S3_SECRET_KEY") {
			t.Errorf("error repeats the secret: %v", err)
		}
	}
}

func TestNewS3BlobsRefusals(t *testing.T) {
	base := S3Config{Bucket: "bkt", Endpoint: "127.0.0.1:9000", AccessKey: "a", SecretKey: "s"}
	for name, mod := range map[string]func(*S3Config){
		"no access key":    func(c *S3Config) { c.AccessKey = "" },
		"no secret key":    func(c *S3Config) { c.SecretKey = "" },
		"scheme":           func(c *S3Config) { c.Endpoint = "http://127.0.0.1:9000" },
		"bad bucket":       func(c *S3Config) { c.Bucket = "a/b" },
		"part under 5 MiB": func(c *S3Config) { c.PartSize = 1 << 20 },
	} {
		c := base
		mod(&c)
		if _, err := NewS3Blobs(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// TLS by default, quietly; plain HTTP only when asked, with a warning.
	var log bytes.Buffer
	base.Log = slog.New(slog.NewTextHandler(&log, nil))
	sb, err := NewS3Blobs(base)
	if err != nil || !strings.Contains(sb.String(), "https://127.0.0.1:9000") || log.Len() != 0 {
		t.Errorf("TLS: %v, %v, log %q", sb, err, log.String())
	}
	base.PlainHTTP = true
	sb, err = NewS3Blobs(base)
	if err != nil || !strings.Contains(sb.String(), "http://127.0.0.1:9000") || !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "plain HTTP") {
		t.Errorf("plain HTTP: %v, %v, log %q", sb, err, log.String())
	}
	// A TLS client does not talk to a plain HTTP server.
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	defer srv.Close()
	cfg, _ := ParseS3URL("s3://bkt?endpoint=" + srv.Listener.Addr().String())
	cfg.AccessKey, cfg.SecretKey = "a", "s"
	sb, err = NewS3Blobs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(ctx(t), 10*time.Second)
	defer cancel()
	if err := sb.Check(c); err == nil {
		t.Errorf("Check over TLS against a plain HTTP server succeeded")
	}
}

func TestS3Check(t *testing.T) {
	e := newS3Env(t, Limits{}, "")
	if err := e.blobs.Check(ctx(t)); err != nil {
		t.Errorf("Check: %v", err)
	}
	e.blobs.bucket = "missing-bucket"
	if err := e.blobs.Check(ctx(t)); err == nil {
		t.Errorf("Check of a missing bucket succeeded")
	}
}

func BenchmarkS3Ingest(b *testing.B) {
	e := newS3Env(b, Limits{}, "bench")
	const size = 8 << 20
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		st, err := e.p.Ingest(b.Context(), &countingReader{limit: size}, "bench.pdf")
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		e.p.Delete(b.Context(), st.BlobID)
		b.StartTimer()
	}
}

// decodeAWSChunked strips the aws-chunked framing ("<hex size>;chunk-
// signature=...\r\n<data>\r\n", ending with a zero-size chunk) from
// request bodies before gofakes3 sees them; it stores part bodies as they
// come (see the top of this file). Signatures are not checked.
func decodeAWSChunked(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Content-Sha256") == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" {
			n, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
			if err != nil {
				http.Error(w, "no decoded length", http.StatusBadRequest)
				return
			}
			body := bufio.NewReader(r.Body)
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(unchunk(body, pw)) }()
			r.Body, r.ContentLength = pr, n
			r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
			r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		}
		h.ServeHTTP(w, r)
	})
}

func unchunk(br *bufio.Reader, w io.Writer) error {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		size, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, err := strconv.ParseInt(size, 16, 64)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if _, err := io.CopyN(w, br, n); err != nil {
			return err
		}
		if _, err := br.Discard(2); err != nil { // \r\n
			return err
		}
	}
}

func TestS3PlainHTTP(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(decodeAWSChunked(gofakes3.New(backend).Server()))
	t.Cleanup(srv.Close)
	cfg, err := ParseS3URL("s3://" + testBucket + "/plain?tls=false&endpoint=" + srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cfg.AccessKey, cfg.SecretKey, cfg.Log = "a", "b", slog.New(slog.NewTextHandler(&log, nil))
	sb, err := NewS3Blobs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "level=WARN") {
		t.Errorf("no warning for plain HTTP: %q", log.String())
	}
	kr, err := seal.NewKeyRing(seal.GenerateKEK("k1"))
	if err != nil {
		t.Fatal(err)
	}
	p := NewPipeline(sb, kr, Limits{})
	for _, n := range []int64{100, 20_000_000} {
		st, err := p.Ingest(ctx(t), &countingReader{limit: n}, "a.pdf")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(ctx(t), st.BlobID); err != nil {
			t.Errorf("%d bytes: Verify: %v", n, err)
		}
	}
}
