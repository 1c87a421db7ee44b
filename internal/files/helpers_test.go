package files

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"

	"golang.org/x/image/tiff"
)

// Test documents are generated here; nothing is copied from elsewhere.

// minimalPDF returns a small valid one-page PDF with a correct xref table,
// showing text (which must be PDF-string safe).
func minimalPDF(text string) []byte {
	content := fmt.Sprintf("BT /F1 24 Tf 72 720 Td (%s) Tj ET", text)
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offs := make([]int, len(objs))
	for i, o := range objs {
		offs[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

func testImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			// A gradient plus noise, so that the image does not compress
			// to almost nothing.
			img.Set(x, y, color.RGBA{uint8(x * 255 / max(w-1, 1)), uint8(y * 255 / max(h-1, 1)), uint8((x*7919 + y*104729) % 251), 255})
		}
	}
	return img
}

func pngBytes(t testing.TB, w, h int) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, testImage(w, h)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t testing.TB, w, h int) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, testImage(w, h), &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func tiffBytes(t testing.TB, w, h int) []byte {
	var b bytes.Buffer
	if err := tiff.Encode(&b, testImage(w, h), &tiff.Options{Compression: tiff.Deflate}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func pngChunk(typ string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString(typ)
	b.Write(data)
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	binary.Write(&b, binary.BigEndian, crc.Sum32())
	return b.Bytes()
}

// pngWithText inserts a tEXt chunk right after IHDR (8 signature bytes +
// 25 bytes IHDR chunk).
func pngWithText(t testing.TB, key, value string) []byte {
	p := pngBytes(t, 16, 8)
	return concat(p[:33], pngChunk("tEXt", []byte(key+"\x00"+value)), p[33:])
}

// apngBytes adds an acTL (animation control) chunk after IHDR, which makes
// mimetype call the file image/apng.
func apngBytes(t testing.TB) []byte {
	p := pngBytes(t, 8, 8)
	return concat(p[:33], pngChunk("acTL", []byte{0, 0, 0, 1, 0, 0, 0, 0}), p[33:])
}

// pngHeaderOnly declares w×h in IHDR, followed by a tiny IDAT and IEND.
func pngHeaderOnly(w, h uint32) []byte {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8-bit RGBA
	return concat([]byte("\x89PNG\r\n\x1a\n"), pngChunk("IHDR", ihdr),
		pngChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}), pngChunk("IEND", nil))
}

// exifAPP1 builds an APP1 segment: "Exif\0\0" + a little-endian TIFF with
// IFD0 = {Orientation, GPSInfo pointer} and a GPS IFD with latitude
// reference and latitude, plus a marker string in an ASCII tag.
func exifAPP1(orientation uint16, marker string) []byte {
	le := binary.LittleEndian
	var t bytes.Buffer
	t.WriteString("II")
	binary.Write(&t, le, uint16(42))
	binary.Write(&t, le, uint32(8))
	// IFD0 at 8: 3 entries (12 bytes each) + next offset.
	ifd0End := 8 + 2 + 3*12 + 4
	markerOff := ifd0End
	gpsOff := markerOff + len(marker) + 1
	if gpsOff%2 == 1 {
		gpsOff++
	}
	entry := func(tag, typ uint16, count, value uint32) {
		binary.Write(&t, le, tag)
		binary.Write(&t, le, typ)
		binary.Write(&t, le, count)
		binary.Write(&t, le, value)
	}
	binary.Write(&t, le, uint16(3))
	entry(0x010e, 2, uint32(len(marker)+1), uint32(markerOff)) // ImageDescription
	entry(0x0112, 3, 1, uint32(orientation))                   // Orientation (SHORT, left-justified)
	entry(0x8825, 4, 1, uint32(gpsOff))                        // GPSInfo IFD pointer
	binary.Write(&t, le, uint32(0))
	t.WriteString(marker + "\x00")
	for t.Len() < gpsOff {
		t.WriteByte(0)
	}
	// GPS IFD: LatitudeRef "N", Latitude 3 RATIONALs.
	latOff := gpsOff + 2 + 2*12 + 4
	binary.Write(&t, le, uint16(2))
	entry(0x0001, 2, 2, uint32('N'))
	entry(0x0002, 5, 3, uint32(latOff))
	binary.Write(&t, le, uint32(0))
	for _, v := range []uint32{52, 1, 31, 1, 1234, 100} {
		binary.Write(&t, le, v)
	}
	body := concat([]byte("Exif\x00\x00"), t.Bytes())
	seg := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(body)+2))
	return concat(seg, body)
}

func jpegWithExif(t testing.TB, w, h int, orientation uint16, marker string) []byte {
	j := jpegBytes(t, w, h)
	return concat(j[:2], exifAPP1(orientation, marker), j[2:])
}

// jpegMarkers lists the marker bytes of the segments before SOS.
func jpegMarkers(t testing.TB, j []byte) []byte {
	t.Helper()
	if len(j) < 4 || j[0] != 0xff || j[1] != 0xd8 {
		t.Fatalf("not a JPEG: % x", j[:min(len(j), 4)])
	}
	var ms []byte
	for i := 2; i+4 <= len(j); {
		if j[i] != 0xff {
			t.Fatalf("bad marker at %d", i)
		}
		m := j[i+1]
		ms = append(ms, m)
		if m == 0xda {
			return ms
		}
		i += 2 + int(binary.BigEndian.Uint16(j[i+2:]))
	}
	t.Fatal("no SOS")
	return nil
}

// pngChunkTypes lists the chunk types of a PNG.
func pngChunkTypes(t testing.TB, p []byte) []string {
	t.Helper()
	if !bytes.HasPrefix(p, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("not a PNG")
	}
	var types []string
	for i := 8; i+8 <= len(p); {
		n := int(binary.BigEndian.Uint32(p[i:]))
		types = append(types, string(p[i+4:i+8]))
		i += 12 + n
		if types[len(types)-1] == "IEND" {
			if i != len(p) {
				t.Errorf("%d bytes after IEND", len(p)-i)
			}
			break
		}
	}
	return types
}

// webpLossless builds a w×h single-colour lossless WebP by hand: a VP8L
// header and five one-symbol ("simple") prefix codes, so that every pixel
// takes zero bits.
func webpLossless(w, h int, c color.NRGBA) []byte {
	var bits []bool
	put := func(v uint32, n int) {
		for i := range n {
			bits = append(bits, v>>i&1 == 1)
		}
	}
	put(uint32(w-1), 14)
	put(uint32(h-1), 14)
	put(1, 1) // alpha_is_used
	put(0, 3) // version
	put(0, 1) // no transform
	put(0, 1) // no colour cache
	put(0, 1) // no meta prefix codes
	simple := func(sym uint32) {
		put(1, 1) // simple code
		put(0, 1) // one symbol
		put(1, 1) // 8-bit symbol
		put(sym, 8)
	}
	simple(uint32(c.G))
	simple(uint32(c.R))
	simple(uint32(c.B))
	simple(uint32(c.A))
	simple(0) // distance
	data := []byte{0x2f}
	for i := 0; i < len(bits); i += 8 {
		var b byte
		for j := 0; j < 8 && i+j < len(bits); j++ {
			if bits[i+j] {
				b |= 1 << j
			}
		}
		data = append(data, b)
	}
	le := binary.LittleEndian
	chunk := concat([]byte("VP8L"), le.AppendUint32(nil, uint32(len(data))), data)
	if len(data)%2 == 1 {
		chunk = append(chunk, 0)
	}
	return concat([]byte("RIFF"), le.AppendUint32(nil, uint32(4+len(chunk))), []byte("WEBP"), chunk)
}

func zipBytes(t testing.TB) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	f, _ := zw.Create("invoice.pdf")
	f.Write(minimalPDF("inside a zip"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// elfBytes is a 64-bit little-endian ELF executable header, padded.
func elfBytes() []byte {
	h := make([]byte, 64)
	copy(h, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(h[16:], 2)    // ET_EXEC
	binary.LittleEndian.PutUint16(h[18:], 0x3e) // x86-64
	binary.LittleEndian.PutUint32(h[20:], 1)
	binary.LittleEndian.PutUint16(h[52:], 64)
	return concat(h, bytes.Repeat([]byte{0x90}, 512))
}

// peBytes is a DOS/PE executable stub.
func peBytes() []byte {
	b := make([]byte, 512)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x84:], 0x8664)
	copy(b[0x40:], "This program cannot be run in DOS mode.")
	return b
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
