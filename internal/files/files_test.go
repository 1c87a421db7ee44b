package files

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gabriel-vasile/mimetype"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/scan"
	"github.com/openclaims/claims/internal/seal"
)

type env struct {
	dir   string
	blobs *LocalBlobs
	keys  *seal.KeyRing
	p     *Pipeline
}

func newEnv(t testing.TB, lim Limits) *env {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "blobs")
	lb, err := NewLocalBlobs(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lb.Close() })
	kr, err := seal.NewKeyRing(seal.GenerateKEK("k1"))
	if err != nil {
		t.Fatal(err)
	}
	return &env{dir: dir, blobs: lb, keys: kr, p: NewPipeline(lb, kr, lim)}
}

func ctx(t testing.TB) context.Context { return t.Context() }

// read returns the decrypted content of a blob.
func (e *env) read(t testing.TB, id string) []byte {
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

func (e *env) blobFile(id string) string { return filepath.Join(e.dir, id[:2], id) }

// ids lists the stored blobs and fails on any stray file (temporary files
// included).
func (e *env) ids(t testing.TB) []string {
	t.Helper()
	var ids []string
	if err := e.blobs.List(ctx(t), func(id string, _ time.Time) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), tmpPrefix) {
			t.Errorf("stray temporary file %s", p)
		}
		return nil
	})
	return ids
}

func wantKind(t testing.TB, err error, k claims.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", k)
	}
	if got := claims.KindOf(err); got != k {
		t.Fatalf("error %q has kind %v, want %v", err, got, k)
	}
	if _, ok := errors.AsType[*claims.Error](err); !ok {
		t.Fatalf("error %T is not a *claims.Error", err)
	}
}

func TestIngestAcceptAndRefuse(t *testing.T) {
	pdf := minimalPDF("Windscreen claim 4711")
	png16 := pngBytes(t, 16, 8)
	if mt := mimetype.Detect(apngBytes(t)); !mt.Is("image/apng") {
		t.Fatalf("test APNG detected as %s", mt)
	}
	tests := []struct {
		name     string
		data     []byte
		declared string
		kind     claims.Kind // Internal = accepted
		wantType string
		wantName string
	}{
		{"PDF named x.pdf", pdf, "x.pdf", 0, "application/pdf", "x.pdf"},
		{"PDF without extension", pdf, "scan", 0, "application/pdf", "scan.pdf"},
		{"PDF upper-case extension", pdf, "CLAIM.PDF", 0, "application/pdf", "CLAIM.PDF"},
		{"PDF with empty name", pdf, "", 0, "application/pdf", "document.pdf"},
		{"PDF with unknown extension", pdf, "report.final", 0, "application/pdf", "report.final.pdf"},
		{"PDF with date-like name", pdf, "Scan 12.03.2026", 0, "application/pdf", "Scan 12.03.2026.pdf"},
		{"PDF with traversal name", pdf, "../../etc/passwd", 0, "application/pdf", "passwd.pdf"},
		{"APNG as PNG", apngBytes(t), "anim.png", 0, "image/png", "anim.png"},
		{"text", []byte("Policy 4711\nBroken window, kitchen.\n"), "note.txt", 0, "text/plain", "note.txt"},
		{"text without name", []byte("Policy 4711\n"), "", 0, "text/plain", "document.txt"},

		{"HTML named invoice.pdf", []byte("<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"), "invoice.pdf", claims.UnsupportedMedia, "", ""},
		{"HTML without doctype", []byte("<html><head><title>x</title></head></html>"), "x.txt", claims.UnsupportedMedia, "", ""},
		{"SVG", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>`), "a.png", claims.UnsupportedMedia, "", ""},
		{"zip", zipBytes(t), "invoice.pdf", claims.UnsupportedMedia, "", ""},
		{"zip without name", zipBytes(t), "", claims.UnsupportedMedia, "", ""},
		{"gzip", []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00"), "a.pdf", claims.UnsupportedMedia, "", ""},
		{"rar", []byte("Rar!\x1a\x07\x01\x00" + strings.Repeat("\x00", 32)), "a", claims.UnsupportedMedia, "", ""},
		{"7z", []byte("7z\xbc\xaf\x27\x1c\x00\x04" + strings.Repeat("\x00", 32)), "a", claims.UnsupportedMedia, "", ""},
		{"ELF", elfBytes(), "invoice.pdf", claims.UnsupportedMedia, "", ""},
		{"PE exe", peBytes(), "setup.exe", claims.UnsupportedMedia, "", ""},
		{"PDF named .exe", pdf, "evil\u202Egpj.exe", claims.UnsupportedMedia, "", ""},
		{"PDF named .html", pdf, "x.html", claims.UnsupportedMedia, "", ""},
		{"PNG named .pdf", png16, "photo.pdf", claims.UnsupportedMedia, "", ""},
		{"text named .html", []byte("hello <script>alert(1)</script>"), "a.html", claims.UnsupportedMedia, "", ""},
		{"text named .csv", []byte("=cmd|' /C calc'!A0"), "a.csv", claims.UnsupportedMedia, "", ""},
		{"empty", nil, "x.pdf", claims.Invalid, "", ""},
		{"damaged PNG", concat(png16[:40], bytes.Repeat([]byte{0}, 40)), "x.png", claims.Invalid, "", ""},
		{"damaged JPEG", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"), "x.jpg", claims.Invalid, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Limits{})
			st, err := e.p.Ingest(ctx(t), bytes.NewReader(tt.data), tt.declared)
			if tt.kind != claims.Internal {
				wantKind(t, err, tt.kind)
				if ce, _ := errors.AsType[*claims.Error](err); tt.kind == claims.UnsupportedMedia && ce.Extra["allowed"] == nil {
					t.Errorf("error %q does not list the allowed types", err)
				}
				if tt.kind == claims.UnsupportedMedia && !strings.Contains(tt.name, "named") && !strings.Contains(claims.MessageOf(err), "PDF, JPEG") {
					t.Errorf("message %q does not name the allowed types", claims.MessageOf(err))
				}
				if ids := e.ids(t); len(ids) != 0 {
					t.Fatalf("refused upload left blobs %v", ids)
				}
				return
			}
			if err != nil {
				t.Fatalf("Ingest: %v", err)
			}
			if st.ContentType != tt.wantType || st.Filename != tt.wantName {
				t.Errorf("got type %q name %q, want %q %q", st.ContentType, st.Filename, tt.wantType, tt.wantName)
			}
			if strings.HasPrefix(st.ContentType, "image/") {
				if !st.Reencoded || bytes.Contains(e.read(t, st.BlobID), []byte("acTL")) {
					t.Errorf("image not re-encoded: %+v", st)
				}
			} else {
				if st.Size != int64(len(tt.data)) || st.Reencoded || !bytes.Equal(st.SHA256, st.OriginalSHA256) || len(st.SHA256) != 32 {
					t.Errorf("Stored = %+v", st)
				}
				if got := e.read(t, st.BlobID); !bytes.Equal(got, tt.data) {
					t.Errorf("content differs")
				}
			}
			if err := e.p.Verify(ctx(t), st.BlobID); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if ids := e.ids(t); len(ids) != 1 || ids[0] != st.BlobID {
				t.Errorf("blobs %v, want just %s", ids, st.BlobID)
			}
		})
	}
}

// countingReader produces an endless PDF-like stream and counts what was
// read from it.
type countingReader struct {
	n     int64
	limit int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= c.limit {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), c.limit-c.n)]
	for i := range p {
		p[i] = 'a' + byte((c.n+int64(i))%26)
	}
	if c.n == 0 {
		copy(p, "%PDF-1.4\n")
	}
	c.n += int64(len(p))
	return len(p), nil
}

func TestIngestTooLargeStopsEarly(t *testing.T) {
	for _, max := range []int64{0 /* default 25 MiB */, 1000 /* below the sniff length */} {
		e := newEnv(t, Limits{MaxFileBytes: max})
		r := &countingReader{limit: 60_000_000}
		_, err := e.p.Ingest(ctx(t), r, "big.pdf")
		wantKind(t, err, claims.TooLarge)
		limit := e.p.lim.MaxFileBytes
		if r.n > limit+64<<10 {
			t.Errorf("max %d: read %d bytes of a 60 MB stream", limit, r.n)
		}
		t.Logf("max %d: read %d of 60000000 bytes", limit, r.n)
		if ids := e.ids(t); len(ids) != 0 {
			t.Errorf("blobs left behind: %v", ids)
		}
	}
	// Exactly at the limit is fine.
	e := newEnv(t, Limits{MaxFileBytes: 200_000})
	if st, err := e.p.Ingest(ctx(t), &countingReader{limit: 200_000}, "ok.pdf"); err != nil || st.Size != 200_000 {
		t.Fatalf("Ingest at the limit: %+v, %v", st, err)
	}
}

func TestIngestPNGTextChunkRemoved(t *testing.T) {
	e := newEnv(t, Limits{})
	in := pngWithText(t, "Comment", "GPS 52.5200N 13.4050E SECRET-MARKER")
	if !bytes.Contains(in, []byte("SECRET-MARKER")) {
		t.Fatal("test PNG lacks its marker")
	}
	if _, err := png.Decode(bytes.NewReader(in)); err != nil {
		t.Fatalf("test PNG is not valid: %v", err)
	}
	st, err := e.p.Ingest(ctx(t), bytes.NewReader(in), "photo.png")
	if err != nil {
		t.Fatal(err)
	}
	out := e.read(t, st.BlobID)
	if bytes.Contains(out, []byte("SECRET-MARKER")) || bytes.Contains(out, []byte("tEXt")) {
		t.Errorf("text chunk survived")
	}
	for _, c := range pngChunkTypes(t, out) {
		if c != "IHDR" && c != "IDAT" && c != "IEND" {
			t.Errorf("unexpected chunk %q", c)
		}
	}
	if !st.Reencoded || st.ContentType != "image/png" || st.Filename != "photo.png" || st.Size != int64(len(out)) {
		t.Errorf("Stored = %+v", st)
	}
	if bytes.Equal(st.SHA256, st.OriginalSHA256) {
		t.Errorf("SHA256 equals OriginalSHA256 after re-encoding")
	}
	if ids := e.ids(t); len(ids) != 1 {
		t.Errorf("blobs %v: spool not deleted", ids)
	}
}

func TestIngestJPEGExifRemoved(t *testing.T) {
	e := newEnv(t, Limits{})
	in := jpegWithExif(t, 40, 20, 1, "EXIF-MARKER-Camera")
	if _, err := jpeg.Decode(bytes.NewReader(in)); err != nil {
		t.Fatalf("test JPEG is not valid: %v", err)
	}
	if got := jpegOrientation(bytes.NewReader(in)); got != 1 {
		t.Fatalf("orientation %d", got)
	}
	st, err := e.p.Ingest(ctx(t), bytes.NewReader(in), "IMG_0001.JPG")
	if err != nil {
		t.Fatal(err)
	}
	out := e.read(t, st.BlobID)
	for _, m := range jpegMarkers(t, out) {
		if m >= 0xe1 && m <= 0xef {
			t.Errorf("APPn marker %#x survived", m)
		}
	}
	for _, s := range []string{"Exif", "EXIF-MARKER", "II*\x00"} {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("output contains %q", s)
		}
	}
	if st.ContentType != "image/jpeg" || st.Filename != "IMG_0001.JPG" || !st.Reencoded {
		t.Errorf("Stored = %+v", st)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(out))
	if err != nil || cfg.Width != 40 || cfg.Height != 20 {
		t.Errorf("output %+v, %v", cfg, err)
	}
}

func TestIngestJPEGOrientationApplied(t *testing.T) {
	e := newEnv(t, Limits{})
	// Orientation 6: stored landscape, shown rotated 90° clockwise.
	src := image.NewRGBA(image.Rect(0, 0, 40, 20))
	for y := range 20 {
		for x := range 40 {
			c := color.RGBA{0, 0, 255, 255}
			if x < 8 { // left edge red: must end up at the top
				c = color.RGBA{255, 0, 0, 255}
			}
			src.Set(x, y, c)
		}
	}
	var j bytes.Buffer
	jpeg.Encode(&j, src, &jpeg.Options{Quality: 95})
	in := concat(j.Bytes()[:2], exifAPP1(6, "cam"), j.Bytes()[2:])
	st, err := e.p.Ingest(ctx(t), bytes.NewReader(in), "p.jpg")
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(e.read(t, st.BlobID)))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 20 || b.Dy() != 40 {
		t.Fatalf("bounds %v, want 20x40", b)
	}
	r, _, b, _ := img.At(10, 2).RGBA()
	if r < 0xc000 || b > 0x4000 {
		t.Errorf("top is not red: r=%#x b=%#x", r, b)
	}
}

func TestIngestPolyglotCleaned(t *testing.T) {
	payload := "<script>alert(document.cookie)</script><!--"
	tests := []struct {
		name, declared, wantType string
		data                     []byte
	}{
		{"PNG", "a.png", "image/png", concat(pngBytes(t, 8, 8), []byte(payload))},
		{"JPEG", "a.jpg", "image/jpeg", concat(jpegBytes(t, 8, 8), []byte(payload))},
		{"TIFF", "a.tif", "image/png", concat(tiffBytes(t, 8, 8), []byte(payload))},
		{"WebP", "a.webp", "image/png", concat(webpLossless(8, 8, color.NRGBA{200, 100, 50, 255}), []byte(payload))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Limits{})
			st, err := e.p.Ingest(ctx(t), bytes.NewReader(tt.data), tt.declared)
			if err != nil {
				t.Fatal(err)
			}
			out := e.read(t, st.BlobID)
			if bytes.Contains(out, []byte("<script")) {
				t.Errorf("payload survived")
			}
			if st.ContentType != tt.wantType || !st.Reencoded {
				t.Errorf("Stored = %+v", st)
			}
			if _, ext := splitExt(st.Filename); !strings.EqualFold(ext, typeExts[st.ContentType][0]) && !(tt.name == "JPEG" && ext == ".jpg") {
				t.Errorf("Filename %q does not match %s", st.Filename, st.ContentType)
			}
			var dec func(io.Reader) (image.Image, error) = png.Decode
			if tt.wantType == "image/jpeg" {
				dec = jpeg.Decode
			} else if got := pngChunkTypes(t, out); got[len(got)-1] != "IEND" {
				t.Errorf("chunks %v", got)
			}
			img, err := dec(bytes.NewReader(out))
			if err != nil || img.Bounds().Dx() != 8 {
				t.Fatalf("output does not decode: %v", err)
			}
		})
	}
}

func TestIngestWebPColour(t *testing.T) {
	e := newEnv(t, Limits{})
	st, err := e.p.Ingest(ctx(t), bytes.NewReader(webpLossless(3, 2, color.NRGBA{200, 100, 50, 255})), "x.webp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(e.read(t, st.BlobID)))
	if err != nil {
		t.Fatal(err)
	}
	if got := color.NRGBAModel.Convert(img.At(2, 1)).(color.NRGBA); got != (color.NRGBA{200, 100, 50, 255}) {
		t.Errorf("pixel %v", got)
	}
	if st.Filename != "x.png" {
		t.Errorf("Filename %q", st.Filename)
	}
}

func TestIngestImageDimensions(t *testing.T) {
	tests := []struct {
		name string
		lim  Limits
		data []byte
		kind claims.Kind
	}{
		{"PNG 50000x50000", Limits{}, pngHeaderOnly(50000, 50000), claims.TooLarge},
		{"PNG 13000x10", Limits{}, pngHeaderOnly(13000, 10), claims.TooLarge},
		{"PNG 0x10", Limits{}, pngHeaderOnly(0, 10), claims.Invalid},
		{"PNG 100x100 over a 5000 pixel limit", Limits{MaxImagePixels: 5000}, pngBytes(t, 100, 100), claims.TooLarge},
		{"JPEG over a 50 px side limit", Limits{MaxImageSide: 50}, jpegBytes(t, 60, 10), claims.TooLarge},
		{"TIFF over a 50 px side limit", Limits{MaxImageSide: 50}, tiffBytes(t, 10, 60), claims.TooLarge},
		{"WebP 16384x16384", Limits{}, webpLossless(16384, 16384, color.NRGBA{1, 2, 3, 255}), claims.TooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.lim)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := e.p.Ingest(ctx(t), bytes.NewReader(tt.data), "")
			runtime.ReadMemStats(&after)
			wantKind(t, err, tt.kind)
			if d := after.TotalAlloc - before.TotalAlloc; d > 32<<20 {
				t.Errorf("allocated %d MiB before refusing", d>>20)
			}
			if ids := e.ids(t); len(ids) != 0 {
				t.Errorf("blobs left behind: %v", ids)
			}
		})
	}
}

func TestIngestMultiPageTIFFRefused(t *testing.T) {
	e := newEnv(t, Limits{})
	tf := tiffBytes(t, 4, 4)
	if _, err := e.p.Ingest(ctx(t), bytes.NewReader(tf), "scan.tiff"); err != nil {
		t.Fatalf("single page: %v", err)
	}
	// Point IFD0's next-IFD link back at IFD0: a (looping) second page.
	off := int(le32(tf[4:]))
	n := int(tf[off]) | int(tf[off+1])<<8
	multi := bytes.Clone(tf)
	copy(multi[off+2+12*n:], tf[4:8])
	_, err := e.p.Ingest(ctx(t), bytes.NewReader(multi), "scan.tiff")
	wantKind(t, err, claims.UnsupportedMedia)
	if ids := e.ids(t); len(ids) != 1 {
		t.Errorf("blobs %v", ids)
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func TestKeepOriginal(t *testing.T) {
	e := newEnv(t, Limits{KeepOriginal: true})
	in := jpegWithExif(t, 16, 16, 1, "ORIGINAL-MARKER")
	st, err := e.p.Ingest(ctx(t), bytes.NewReader(in), "a.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if st.OriginalBlobID == "" || st.OriginalBlobID == st.BlobID {
		t.Fatalf("Stored = %+v", st)
	}
	if got := e.read(t, st.OriginalBlobID); !bytes.Equal(got, in) {
		t.Errorf("original differs")
	}
	raw, _ := os.ReadFile(e.blobFile(st.OriginalBlobID))
	if bytes.Contains(raw, []byte("ORIGINAL-MARKER")) {
		t.Errorf("original stored in plaintext")
	}
	if ids := e.ids(t); len(ids) != 2 {
		t.Errorf("blobs %v", ids)
	}
	// Without KeepOriginal a PDF has no original blob either way.
	st, err = e.p.Ingest(ctx(t), bytes.NewReader(minimalPDF("x")), "a.pdf")
	if err != nil || st.OriginalBlobID != "" {
		t.Errorf("PDF: %+v %v", st, err)
	}
}

func TestStoredEncryptedAtRest(t *testing.T) {
	e := newEnv(t, Limits{})
	marker := "PLANTED-MARKER-8f3a1c"
	doc := minimalPDF(marker + " " + strings.Repeat("claim text ", 20000))
	st, err := e.p.Ingest(ctx(t), bytes.NewReader(doc), "a.pdf")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(e.blobFile(st.BlobID))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{marker, "%PDF", "claim text"} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("raw blob contains %q", s)
		}
	}
	fi, _ := os.Stat(e.blobFile(st.BlobID))
	di, _ := os.Stat(filepath.Dir(e.blobFile(st.BlobID)))
	ri, _ := os.Stat(e.dir)
	if fi.Mode().Perm()&0o077 != 0 || di.Mode().Perm() != 0o700 || ri.Mode().Perm() != 0o700 {
		t.Errorf("modes: file %v, dir %v, root %v", fi.Mode(), di.Mode(), ri.Mode())
	}
	// A blob copied under another id does not open (AAD binds the id).
	other := NewBlobID()
	os.MkdirAll(filepath.Dir(e.blobFile(other)), 0o700)
	os.WriteFile(e.blobFile(other), raw, 0o600)
	if err := e.p.Verify(ctx(t), other); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("Verify of copied blob: %v, want seal.ErrOpen", err)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	const hdr = 1 + 1 + 2 + 2 + 60 + 7 // format, kidLen, "k1", wLen, wrapped DEK, prefix
	const seg = seal.SegmentSize + 16
	doc := minimalPDF(strings.Repeat("0123456789", 30000)) // ~300 KB: 5 segments
	tests := []struct {
		name   string
		tamper func([]byte) []byte
	}{
		{"truncated by 10 bytes", func(b []byte) []byte { return b[:len(b)-10] }},
		{"truncated at a segment boundary", func(b []byte) []byte { return b[:hdr+2*seg] }},
		{"header only", func(b []byte) []byte { return b[:hdr] }},
		{"segments 0 and 1 swapped", func(b []byte) []byte {
			c := bytes.Clone(b)
			copy(c[hdr:], b[hdr+seg:hdr+2*seg])
			copy(c[hdr+seg:], b[hdr:hdr+seg])
			return c
		}},
		{"segments 1 and 2 swapped", func(b []byte) []byte {
			c := bytes.Clone(b)
			copy(c[hdr+seg:], b[hdr+2*seg:hdr+3*seg])
			copy(c[hdr+2*seg:], b[hdr+seg:hdr+2*seg])
			return c
		}},
		{"segment duplicated", func(b []byte) []byte { return concat(b[:hdr+2*seg], b[hdr+seg:]) }},
		{"bit flipped in last segment", func(b []byte) []byte { c := bytes.Clone(b); c[len(c)-20] ^= 1; return c }},
		{"bit flipped in wrapped key", func(b []byte) []byte { c := bytes.Clone(b); c[10] ^= 1; return c }},
		{"byte appended", func(b []byte) []byte { return append(bytes.Clone(b), 0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Limits{})
			st, err := e.p.Ingest(ctx(t), bytes.NewReader(doc), "a.pdf")
			if err != nil {
				t.Fatal(err)
			}
			if err := e.p.Verify(ctx(t), st.BlobID); err != nil {
				t.Fatalf("Verify before tampering: %v", err)
			}
			raw, _ := os.ReadFile(e.blobFile(st.BlobID))
			if err := os.WriteFile(e.blobFile(st.BlobID), tt.tamper(raw), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := e.p.Verify(ctx(t), st.BlobID); !errors.Is(err, seal.ErrOpen) {
				t.Fatalf("Verify after tampering: %v, want seal.ErrOpen", err)
			}
			if _, err := e.p.Scan(ctx(t), scan.NewDevScanner(nil), st.BlobID); err == nil {
				t.Errorf("Scan of tampered blob reported a verdict")
			}
		})
	}
}

func TestLocalBlobsRefusesBadIDs(t *testing.T) {
	e := newEnv(t, Limits{})
	bad := []string{"", "../../etc/passwd", "..", "ab/" + strings.Repeat("0", 29), strings.Repeat("0", 31),
		strings.Repeat("0", 33), strings.Repeat("A", 32), "../" + strings.Repeat("0", 29), strings.Repeat("0", 30) + "/.",
		strings.Repeat("0", 31) + "\x00", strings.Repeat("g", 32), `ab\` + strings.Repeat("0", 29)}
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
}

func TestLocalBlobsConfinedBySymlink(t *testing.T) {
	e := newEnv(t, Limits{})
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(e.dir, "ab")); err != nil {
		t.Skip("no symlinks:", err)
	}
	id := "ab" + strings.Repeat("0", 30)
	if w, err := e.blobs.Create(ctx(t), id); err == nil {
		w.Write([]byte("x"))
		err = w.Close()
		if err == nil {
			t.Errorf("Create through a symlink leaving the directory succeeded")
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("wrote outside the blob directory: %v", ents)
	}
}

func TestLocalBlobsWriterSemantics(t *testing.T) {
	e := newEnv(t, Limits{})
	id := NewBlobID()
	w, err := e.blobs.Create(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	if _, err := e.blobs.Open(ctx(t), id); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("uncommitted blob visible: %v", err)
	}
	if err := w.(Aborter).Abort(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if ids := e.ids(t); len(ids) != 0 {
		t.Errorf("aborted blob left %v", ids)
	}
	w, _ = e.blobs.Create(ctx(t), id)
	w.Write([]byte("whole"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.blobs.Create(ctx(t), id); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create of an existing id: %v", err)
	}
	if err := e.blobs.Delete(ctx(t), id); err != nil {
		t.Fatal(err)
	}
	if err := e.blobs.Delete(ctx(t), id); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

func TestSweep(t *testing.T) {
	e := newEnv(t, Limits{})
	var ids []string
	for i := range 4 {
		st, err := e.p.Ingest(ctx(t), strings.NewReader("note "+string(rune('a'+i))), "n.txt")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, st.BlobID)
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, id := range ids[:3] { // ids[3] is recent
		os.Chtimes(e.blobFile(id), old, old)
	}
	// A stale temporary file from a crashed write.
	tmp := filepath.Join(e.dir, ids[0][:2], tmpPrefix+ids[0]+"-dead")
	os.WriteFile(tmp, []byte("x"), 0o600)
	os.Chtimes(tmp, old, old)

	known := map[string]bool{ids[0]: true, ids[1]: true} // ids[2] is an orphan
	n, err := e.p.Sweep(ctx(t), time.Hour, func(id string) (bool, error) { return known[id], nil })
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 { // ids[2] and the temporary file
		t.Errorf("Sweep removed %d, want 2", n)
	}
	got := e.ids(t)
	for _, id := range []string{ids[0], ids[1], ids[3]} {
		if !strings.Contains(strings.Join(got, " "), id) {
			t.Errorf("Sweep removed %s", id)
		}
	}
	if strings.Contains(strings.Join(got, " "), ids[2]) {
		t.Errorf("orphan %s kept", ids[2])
	}
	if _, err := e.p.Sweep(ctx(t), time.Minute, func(string) (bool, error) { return false, nil }); err == nil {
		t.Errorf("Sweep with a 1 minute grace succeeded")
	}
	boom := errors.New("db down")
	if _, err := e.p.Sweep(ctx(t), time.Hour, func(string) (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Errorf("Sweep with failing known: %v", err)
	}
	if len(e.ids(t)) != 3 {
		t.Errorf("a failing known deleted something")
	}
}

func TestFailedIngestLeavesNothing(t *testing.T) {
	failing := io.MultiReader(bytes.NewReader(minimalPDF("x")), &errReader{errors.New("client went away")})
	tests := []struct {
		name string
		lim  Limits
		r    io.Reader
		decl string
	}{
		{"PDF too large", Limits{MaxFileBytes: 300 << 10}, &countingReader{limit: 10 << 20}, "a.pdf"},
		{"image too large in bytes", Limits{MaxFileBytes: 200}, bytes.NewReader(pngBytes(t, 64, 64)), "a.png"},
		{"image too large in pixels", Limits{MaxImagePixels: 100}, bytes.NewReader(pngBytes(t, 64, 64)), "a.png"},
		{"damaged image body", Limits{}, bytes.NewReader(pngBytes(t, 64, 64)[:200]), "a.png"},
		{"reader error", Limits{}, failing, "a.pdf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.lim)
			if _, err := e.p.Ingest(ctx(t), tt.r, tt.decl); err == nil {
				t.Fatal("Ingest succeeded")
			}
			if ids := e.ids(t); len(ids) != 0 {
				t.Errorf("blobs left behind: %v", ids)
			}
		})
	}
	t.Run("cancelled context", func(t *testing.T) {
		e := newEnv(t, Limits{})
		c, cancel := context.WithCancel(ctx(t))
		r := &cancelAfter{r: &countingReader{limit: 5 << 20}, n: 1 << 20, cancel: cancel}
		if _, err := e.p.Ingest(c, r, "a.pdf"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Ingest: %v", err)
		}
		if ids := e.ids(t); len(ids) != 0 {
			t.Errorf("blobs left behind: %v", ids)
		}
	})
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

type cancelAfter struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// lazyScanner reads one byte and calls everything clean.
type lazyScanner struct{}

func (lazyScanner) Scan(_ context.Context, r io.Reader) (scan.Result, error) {
	r.Read(make([]byte, 1))
	return scan.Result{}, nil
}
func (lazyScanner) Name() string { return "lazy" }

func TestScan(t *testing.T) {
	e := newEnv(t, Limits{})
	eicar := `X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`
	bad, err := e.p.Ingest(ctx(t), strings.NewReader(eicar), "eicar.txt")
	if err != nil {
		t.Fatal(err)
	}
	good, err := e.p.Ingest(ctx(t), bytes.NewReader(minimalPDF(strings.Repeat("x", 100000))), "a.pdf")
	if err != nil {
		t.Fatal(err)
	}
	s := scan.NewDevScanner(nil)
	if res, err := e.p.Scan(ctx(t), s, bad.BlobID); err != nil || !res.Infected {
		t.Errorf("EICAR: %+v, %v", res, err)
	}
	if res, err := e.p.Scan(ctx(t), s, good.BlobID); err != nil || res.Infected {
		t.Errorf("clean: %+v, %v", res, err)
	}
	if _, err := e.p.Scan(ctx(t), lazyScanner{}, good.BlobID); err == nil {
		t.Errorf("a scanner that did not read everything was believed")
	}
}

func TestSanitizeFilename(t *testing.T) {
	long := strings.Repeat("ä", 500) + ".pdf"
	tests := []struct{ in, want string }{
		{"invoice.pdf", "invoice.pdf"},
		{"../../etc/passwd", "passwd"},
		{`..\..\windows\system32\cmd.exe`, "cmd.exe"},
		{"/abs/path/to/", "to"},
		{"..", "document"},
		{"../", "document"},
		{"", "document"},
		{"   ", "document"},
		{"...pdf", "pdf"},
		{".htaccess", "htaccess"},
		{"a..b..pdf", "a.b.pdf"},
		{"evil\u202Egpj.exe", "evilgpj.exe"},
		{"x\u2066\u2067\u2068\u2069\u202A\u202B\u202C\u202D\u200E\u200Fy.pdf", "xy.pdf"},
		{"a\x00b.pdf", "ab.pdf"},
		{"a\r\nb\tc.pdf", "a b c.pdf"},
		{"a   \u00a0  b.pdf", "a b.pdf"},
		{"zero\u200bwidth\ufeff.pdf", "zerowidth.pdf"},
		{`what?<>:"|*.pdf`, "what_______.pdf"},
		{"CON.pdf", "_CON.pdf"},
		{"lpt1", "_lpt1"},
		{"Rechnung Nr. 5.pdf", "Rechnung Nr. 5.pdf"},
		{"trailing dots...", "trailing dots"},
		{"Cafe\u0301.pdf", "Café.pdf"}, // NFC
		{"\xff\xfeinvalid.pdf", "_invalid.pdf"},
		{long, strings.Repeat("ä", MaxFilenameRunes-4) + ".pdf"},
		{strings.Repeat("a", 500), strings.Repeat("a", MaxFilenameRunes)},
	}
	for _, tt := range tests {
		got := SanitizeFilename(tt.in)
		if got != tt.want {
			t.Errorf("SanitizeFilename(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if n := len([]rune(got)); n > MaxFilenameRunes || n == 0 {
			t.Errorf("SanitizeFilename(%q) has %d runes", tt.in, n)
		}
		if again := SanitizeFilename(got); again != got {
			t.Errorf("not idempotent: %q → %q → %q", tt.in, got, again)
		}
		if strings.ContainsAny(got, "/\\\x00") || strings.Contains(got, "..") || strings.HasPrefix(got, ".") {
			t.Errorf("SanitizeFilename(%q) = %q is unsafe", tt.in, got)
		}
	}
}

func TestContentDisposition(t *testing.T) {
	tests := []struct{ in, want string }{
		{"invoice.pdf", `attachment; filename="invoice.pdf"; filename*=UTF-8''invoice.pdf`},
		{"Schadensmeldung Ärger €.pdf", `attachment; filename="Schadensmeldung Arger _.pdf"; filename*=UTF-8''Schadensmeldung%20%C3%84rger%20%E2%82%AC.pdf`},
		{"事故报告.pdf", `attachment; filename="document.pdf"; filename*=UTF-8''%E4%BA%8B%E6%95%85%E6%8A%A5%E5%91%8A.pdf`},
		{`a"b\c;d%20.pdf`, `attachment; filename="c;d_20.pdf"; filename*=UTF-8''c%3Bd%2520.pdf`},
		{"x\r\nContent-Type: text-html.pdf", `attachment; filename="x Content-Type_ text-html.pdf"; filename*=UTF-8''x%20Content-Type_%20text-html.pdf`},
	}
	for _, tt := range tests {
		if got := ContentDisposition(tt.in); got != tt.want {
			t.Errorf("ContentDisposition(%q)\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
}

func BenchmarkIngest(b *testing.B) {
	e := newEnv(b, Limits{})
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
