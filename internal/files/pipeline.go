package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/gabriel-vasile/mimetype"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/scan"
	"github.com/openclaims/claims/internal/seal"
)

// Defaults for Limits.
const (
	DefaultMaxFileBytes   = 25 << 20
	DefaultMaxImagePixels = 40_000_000
	DefaultMaxImageSide   = 12000
	DefaultMaxDecodes     = 1 // a 40-megapixel decode and re-encode holds a few hundred MB
)

// MinSweepGrace is the smallest grace period Sweep accepts. It must exceed
// the time between a blob's creation and the commit of the caller's
// transaction that records it.
const MinSweepGrace = 15 * time.Minute

// sniffLen is how many leading bytes mimetype looks at (its default limit).
const sniffLen = 4096

// Limits bounds what Ingest accepts. Zero fields take the defaults.
type Limits struct {
	MaxFileBytes   int64 // uploaded bytes; default 25 MiB
	MaxImagePixels int   // width × height; default 40 megapixels
	MaxImageSide   int   // width and height each; default 12000
	// KeepOriginal keeps the uploaded bytes of a re-encoded image as a second
	// (encrypted) blob, Stored.OriginalBlobID. Such a blob still holds the
	// metadata and anything appended: never serve it to a browser.
	KeepOriginal bool
	// MaxDecodes bounds concurrent image decodes per Pipeline, since a
	// decoded image can take MaxImagePixels × 4 bytes and more; default 2.
	MaxDecodes int
}

func (l Limits) withDefaults() Limits {
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	if l.MaxImagePixels <= 0 {
		l.MaxImagePixels = DefaultMaxImagePixels
	}
	if l.MaxImageSide <= 0 {
		l.MaxImageSide = DefaultMaxImageSide
	}
	if l.MaxDecodes <= 0 {
		l.MaxDecodes = DefaultMaxDecodes
	}
	return l
}

// Pipeline ingests, opens, scans and deletes documents. It is safe for
// concurrent use.
type Pipeline struct {
	blobs   Blobs
	keys    *seal.KeyRing
	lim     Limits
	decodes chan struct{} // semaphore for image decodes
}

// NewPipeline returns a Pipeline storing into blobs, encrypting with keys.
func NewPipeline(blobs Blobs, keys *seal.KeyRing, lim Limits) *Pipeline {
	if blobs == nil || keys == nil {
		panic("files: NewPipeline needs blobs and keys")
	}
	lim = lim.withDefaults()
	return &Pipeline{blobs: blobs, keys: keys, lim: lim, decodes: make(chan struct{}, lim.MaxDecodes)}
}

// Stored describes a stored document, for the caller to record.
type Stored struct {
	BlobID         string // server-generated
	Filename       string // sanitised display name, extension matching ContentType
	ContentType    string // decided from the bytes; one of Allowed, without parameters (text may be in any charset)
	Size           int64  // stored (plaintext) size
	SHA256         []byte // of the stored plaintext (after re-encoding for images)
	OriginalSHA256 []byte // of the bytes as uploaded
	Reencoded      bool
	// OriginalBlobID is the blob holding the bytes as uploaded, when
	// Limits.KeepOriginal is set and the document was re-encoded; "" else.
	// The caller must record (and later delete) it too.
	OriginalBlobID string
}

// Allowed lists the content types Ingest accepts.
var Allowed = []string{"application/pdf", "image/jpeg", "image/png", "image/webp", "image/tiff", "text/plain"}

// allowedText is the human list of Allowed for messages.
const allowedText = "PDF, JPEG, PNG, WebP, TIFF and plain text"

// typeExts lists the extensions accepted for each allowed type; the first
// is the one added or substituted.
var typeExts = map[string][]string{
	"application/pdf": {".pdf"},
	"image/jpeg":      {".jpg", ".jpeg", ".jpe", ".jfif"},
	"image/png":       {".png"},
	"image/webp":      {".webp"},
	"image/tiff":      {".tif", ".tiff"},
	"text/plain":      {".txt", ".text", ".log", ".asc"},
}

// otherExts are extensions that name some other type. A name with one of
// them (or with an extension of another allowed type) contradicts the bytes
// and is refused; an extension we do not know is kept and the right one
// appended ("report.final" → "report.final.pdf").
var otherExts = map[string]bool{}

func init() {
	for _, e := range strings.Fields(`htm html xhtml shtml mht mhtml svg svgz xml xsl xslt js mjs cjs css json
		exe dll com scr pif cpl bat cmd ps1 psm1 vbs vbe js jse wsf wsh hta msi msp msix appx apk jar
		sh bash zsh py pl rb php phtml asp aspx jsp cgi lnk url reg inf scf desktop
		zip zipx rar 7z gz tgz bz2 xz zst tar cab iso img vhd vhdx dmg
		doc docx docm dot dotm xls xlsx xlsm xlsb ppt pptx pptm odt ods odp rtf csv tsv md eml msg
		gif bmp ico heic heif avif jxl psd eps ps swf`) {
		otherExts["."+e] = true
	}
	for _, exts := range typeExts {
		for _, e := range exts {
			otherExts[e] = true
		}
	}
}

// BlobAAD is the associated data binding a document blob to its id:
// seal.AAD("documents", "content", blobID).
func BlobAAD(blobID string) []byte { return seal.AAD("documents", "content", blobID) }

var errTooLarge = errors.New("files: upload exceeds the size limit")

func (p *Pipeline) tooLarge() error {
	return &claims.Error{
		Kind:    claims.TooLarge,
		Message: fmt.Sprintf("The file is larger than the limit of %s.", formatBytes(p.lim.MaxFileBytes)),
		Fields:  []claims.FieldError{{Field: "file", Rule: "max_size", Message: "The file is too large."}},
		Extra:   map[string]any{"max_bytes": p.lim.MaxFileBytes},
	}
}

func unsupported(msg string, cause error) error {
	return &claims.Error{
		Kind:    claims.UnsupportedMedia,
		Message: msg,
		Fields:  []claims.FieldError{{Field: "file", Rule: "media_type", Message: msg}},
		Extra:   map[string]any{"allowed": slices.Clone(Allowed)},
		Err:     cause,
	}
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// limitedReader reads from r, checks ctx before every read, and fails with
// errTooLarge as soon as more than max bytes have arrived. It never asks r
// for more than max+1 bytes in total.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	n   int64 // bytes read so far
	max int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if err := l.ctx.Err(); err != nil {
		return 0, err
	}
	if l.n > l.max {
		return 0, errTooLarge
	}
	if rem := l.max + 1 - l.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		return 0, errTooLarge
	}
	return n, err
}

// Ingest reads an upload from r and stores it; see the package
// documentation. declaredName is only used, sanitised, for Filename, and to
// refuse a file whose extension contradicts its bytes.
//
// Errors are *claims.Error of kind UnsupportedMedia (type not in Allowed,
// or name contradicting the bytes), TooLarge (more than MaxFileBytes, or
// image dimensions over the limits) or Invalid (empty file, damaged image);
// anything else (storage, context) is an internal error. On error nothing
// stays stored.
func (p *Pipeline) Ingest(ctx context.Context, r io.Reader, declaredName string) (st Stored, err error) {
	src := &limitedReader{ctx: ctx, r: r, max: p.lim.MaxFileBytes}
	head := make([]byte, sniffLen)
	n, err := io.ReadFull(src, head)
	switch {
	case errors.Is(err, errTooLarge):
		return Stored{}, p.tooLarge()
	case err != nil && err != io.EOF && err != io.ErrUnexpectedEOF:
		return Stored{}, fmt.Errorf("files: reading upload: %w", err)
	}
	head = head[:n]
	if n == 0 {
		return Stored{}, claims.InvalidField("file", "required", "The file is empty.")
	}
	mt := mimetype.Detect(head)
	ct := allowedType(mt)
	if ct == "" {
		return Stored{}, unsupported(fmt.Sprintf("Files of type %s are not accepted; allowed are %s.",
			describe(mt), allowedText), nil)
	}
	name, err := fileName(declaredName, ct)
	if err != nil {
		return Stored{}, err
	}
	body := io.MultiReader(bytes.NewReader(head), src)

	var created []string
	defer func() {
		if err != nil {
			// Clean up even if ctx was cancelled.
			cctx := context.WithoutCancel(ctx)
			for _, id := range created {
				p.blobs.Delete(cctx, id)
			}
			st = Stored{}
		}
		if errors.Is(err, errTooLarge) {
			err = p.tooLarge()
		}
	}()

	origHash := sha256.New()
	id, size, err := p.store(ctx, origHash, func(w io.Writer) error {
		_, err := io.Copy(w, body)
		return err
	})
	if id != "" {
		created = append(created, id)
	}
	if err != nil {
		return Stored{}, err
	}
	st = Stored{
		BlobID:         id,
		Filename:       name,
		ContentType:    ct,
		Size:           size,
		OriginalSHA256: origHash.Sum(nil),
	}
	if !strings.HasPrefix(ct, "image/") {
		st.SHA256 = st.OriginalSHA256
		return st, nil
	}

	// Images: the blob just written is the encrypted spool of the upload.
	// Check, decode and re-encode it into a new blob.
	spool := id
	img, release, err := p.decodeImage(ctx, spool, ct)
	if err != nil {
		return Stored{}, err
	}
	outType := "image/png"
	if ct == "image/jpeg" {
		outType = "image/jpeg"
	}
	h := sha256.New()
	id, size, err = p.store(ctx, h, func(w io.Writer) error { return encodeImage(w, img, outType) })
	img = nil
	release()
	if id != "" {
		created = append(created, id)
	}
	if err != nil {
		return Stored{}, err
	}
	st.BlobID, st.ContentType, st.Size, st.SHA256, st.Reencoded = id, outType, size, h.Sum(nil), true
	if outType != ct {
		stem, _ := splitExt(name)
		st.Filename = joinLimited(stem, typeExts[outType][0])
	}
	if p.lim.KeepOriginal {
		st.OriginalBlobID = spool
	} else if err := p.blobs.Delete(context.WithoutCancel(ctx), spool); err != nil {
		return Stored{}, fmt.Errorf("files: deleting image spool: %w", err)
	}
	return st, nil
}

// allowedType maps a detection result to its Allowed entry, or "". Only an
// exact match counts (plus APNG as PNG): text/html, text/csv,
// image/svg+xml and the like are children of text/plain in mimetype's tree
// and are refused.
func allowedType(mt *mimetype.MIME) string {
	for _, a := range Allowed {
		if mt.Is(a) {
			return a
		}
	}
	if mt.Is("image/apng") {
		// Animated PNG is a PNG with extra chunks; re-encoding keeps the
		// default image only.
		return "image/png"
	}
	return ""
}

// describe names a detected type for a user message.
func describe(mt *mimetype.MIME) string {
	s := mt.String()
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	if s == "application/octet-stream" {
		return "unknown binary data"
	}
	return s
}

// fileName sanitises declared and checks its extension against ct.
func fileName(declared, ct string) (string, error) {
	name := SanitizeFilename(declared)
	_, ext := splitExt(name)
	want := typeExts[ct]
	switch {
	case ext == "":
		return joinLimited(name, want[0]), nil
	case slices.Contains(want, strings.ToLower(ext)):
		return name, nil
	case otherExts[strings.ToLower(ext)]:
		return "", unsupported(fmt.Sprintf("The file name ends in %s but the content is %s; rename the file or send the right one.",
			ext, ct), nil)
	default:
		return joinLimited(name, want[0]), nil
	}
}

// store writes a new encrypted blob with whatever fill writes, hashing the
// plaintext into h. It returns the blob id ("" if nothing was created).
// On error the blob is discarded; the id is still returned so the caller
// can make sure (Delete is idempotent).
func (p *Pipeline) store(ctx context.Context, h hash.Hash, fill func(io.Writer) error) (id string, size int64, err error) {
	id = NewBlobID()
	bw, err := p.blobs.Create(ctx, id)
	if err != nil {
		return "", 0, err
	}
	defer func() {
		if err != nil {
			if a, ok := bw.(Aborter); ok {
				a.Abort()
			} else {
				bw.Close()
			}
			p.blobs.Delete(context.WithoutCancel(ctx), id)
		}
	}()
	sw, err := p.keys.NewWriter(bw, BlobAAD(id))
	if err != nil {
		return id, 0, err
	}
	cw := &countWriter{w: io.MultiWriter(sw, h)}
	if err := fill(cw); err != nil {
		return id, 0, err
	}
	if err := sw.Close(); err != nil {
		return id, 0, err
	}
	if err := bw.Close(); err != nil {
		return id, 0, err
	}
	return id, cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// Open returns the decrypted content of a stored blob as a stream.
//
// The stream is authenticated segment by segment (64 KiB): Read never
// returns bytes that failed authentication, but if the blob was truncated or
// tampered with further on, Read returns an error (seal.ErrOpen) only after
// earlier, genuine segments were returned. A caller streaming to an HTTP
// client must therefore abort the connection on a Read error (in net/http:
// panic(http.ErrAbortHandler)) rather than end the response normally, so
// the client sees a broken download, not a shorter document; or call Verify
// first. Content-Length may be set from Stored.Size.
//
// Do not use the data read before an error for anything else.
func (p *Pipeline) Open(ctx context.Context, blobID string) (io.ReadCloser, error) {
	if err := checkID(blobID); err != nil {
		return nil, err
	}
	f, err := p.blobs.Open(ctx, blobID)
	if err != nil {
		return nil, err
	}
	r, err := p.keys.NewReader(f, BlobAAD(blobID))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("files: opening blob %s: %w", blobID, err)
	}
	return &openBlob{ctx: ctx, r: r, c: f}, nil
}

type openBlob struct {
	ctx context.Context
	r   io.Reader
	c   io.Closer
}

func (o *openBlob) Read(b []byte) (int, error) {
	if err := o.ctx.Err(); err != nil {
		return 0, err
	}
	return o.r.Read(b)
}

func (o *openBlob) Close() error { return o.c.Close() }

// Verify reads a whole blob through the decrypting reader and discards it;
// it returns an error (wrapping seal.ErrOpen) if anything fails to
// authenticate: wrong id, truncation, reordered or modified segments.
func (p *Pipeline) Verify(ctx context.Context, blobID string) error {
	rc, err := p.Open(ctx, blobID)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("files: verifying blob %s: %w", blobID, err)
	}
	return nil
}

// Delete removes a stored blob. Deleting an unknown id is not an error.
func (p *Pipeline) Delete(ctx context.Context, blobID string) error {
	return p.blobs.Delete(ctx, blobID)
}

// Scan runs s over the decrypted content of a blob. It fails closed: if the
// content cannot be read and authenticated to the end, or the scanner
// reports clean without having read to the end, it returns an error.
func (p *Pipeline) Scan(ctx context.Context, s scan.Scanner, blobID string) (scan.Result, error) {
	rc, err := p.Open(ctx, blobID)
	if err != nil {
		return scan.Result{}, err
	}
	defer rc.Close()
	tr := &trackReader{r: rc}
	res, err := s.Scan(ctx, tr)
	switch {
	case err != nil:
		return scan.Result{}, err
	case tr.err != nil && tr.err != io.EOF:
		return scan.Result{}, fmt.Errorf("files: scanning blob %s: %w", blobID, tr.err)
	case !res.Infected && tr.err != io.EOF:
		return scan.Result{}, fmt.Errorf("files: scanning blob %s: scanner %s reported clean without reading the whole document", blobID, s.Name())
	}
	return res, nil
}

// trackReader remembers the first error (including io.EOF) of r.
type trackReader struct {
	r   io.Reader
	err error
}

func (t *trackReader) Read(b []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	n, err := t.r.Read(b)
	if err != nil {
		t.err = err
	}
	return n, err
}

// Sweep deletes blobs last modified more than grace ago for which known
// reports false: orphans of crashes between Ingest and the caller's commit,
// and image spools of interrupted ingests. It also removes stale temporary
// files if blobs supports it (LocalBlobs does). It returns how many blobs
// and temporary files it removed. grace must be at least MinSweepGrace.
// It stops at the first error, returning the count so far.
func (p *Pipeline) Sweep(ctx context.Context, grace time.Duration, known func(id string) (bool, error)) (int, error) {
	if grace < MinSweepGrace {
		return 0, fmt.Errorf("files: sweep grace %v is shorter than %v", grace, MinSweepGrace)
	}
	cutoff := time.Now().Add(-grace)
	var old []string
	if err := p.blobs.List(ctx, func(id string, mod time.Time) error {
		if mod.Before(cutoff) {
			old = append(old, id)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range old {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		ok, err := known(id)
		if err != nil {
			return n, fmt.Errorf("files: sweep: %w", err)
		}
		if ok {
			continue
		}
		if err := p.blobs.Delete(ctx, id); err != nil {
			return n, err
		}
		n++
	}
	if t, ok := p.blobs.(interface {
		RemoveStaleTemp(context.Context, time.Time) (int, error)
	}); ok {
		m, err := t.RemoveStaleTemp(ctx, cutoff)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
