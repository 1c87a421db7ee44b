package seal

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
	"testing/iotest"
)

func streamSeal(t testing.TB, kr *KeyRing, pt, aad []byte, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := kr.NewWriter(&buf, aad)
	if err != nil {
		t.Fatal(err)
	}
	for p := pt; len(p) > 0; {
		n := min(chunk, len(p))
		if m, err := w.Write(p[:n]); err != nil || m != n {
			t.Fatalf("Write = %d, %v", m, err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// streamOpen reads the whole stream; it returns the plaintext read so far on
// error, so tests can check that nothing unauthenticated came out.
func streamOpen(kr *KeyRing, ct, aad []byte) ([]byte, error) {
	r, err := kr.NewReader(bytes.NewReader(ct), aad)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func streamHeaderLen(kid string) int { return 2 + len(kid) + 2 + wrappedLen + prefixSize }

func TestStreamRoundTrip(t *testing.T) {
	kr := mustRing(t, GenerateKEK("k1"))
	aad := AAD("documents", "body", "doc-1")
	for _, size := range []int{0, 1, SegmentSize - 1, SegmentSize, SegmentSize + 1, 2 * SegmentSize, 3*SegmentSize + 17} {
		for _, chunk := range []int{1 << 20, 1000, SegmentSize} {
			if size > 200_000 && chunk == 1 {
				continue
			}
			pt := randomBytes(size)
			ct := streamSeal(t, kr, pt, aad, chunk)
			segs := max(1, (size+SegmentSize-1)/SegmentSize)
			if want := streamHeaderLen("k1") + size + segs*tagSize; len(ct) != want {
				t.Errorf("size %d: ciphertext %d bytes, want %d", size, len(ct), want)
			}
			got, err := streamOpen(kr, ct, aad)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("size %d chunk %d: %d bytes, %v", size, chunk, len(got), err)
			}
			// Read with one byte at a time and with a reader that returns
			// data with EOF and short reads.
			r, err := kr.NewReader(iotest.DataErrReader(iotest.HalfReader(bytes.NewReader(ct))), aad)
			if err != nil {
				t.Fatal(err)
			}
			if err := iotest.TestReader(r, pt); err != nil && size < 100_000 {
				t.Errorf("size %d: %v", size, err)
			}
		}
		if id, err := KEKIDOf(streamSeal(t, kr, nil, aad, 1)); err != nil || id != "k1" {
			t.Errorf("KEKIDOf(stream) = %q, %v", id, err)
		}
	}
}

func TestStreamTampering(t *testing.T) {
	kr := mustRing(t, GenerateKEK("k1"))
	aad := AAD("documents", "body", "doc-1")
	pt := randomBytes(3*SegmentSize + 17)
	ct := streamSeal(t, kr, pt, aad, 4096)
	hl := streamHeaderLen("k1")
	seg := func(i int) []byte { // ciphertext of segment i (the last may be short)
		start := hl + i*ctSegSize
		return ct[start:min(start+ctSegSize, len(ct))]
	}
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	hdr := ct[:hl]
	other := streamSeal(t, kr, pt, aad, 4096) // same plaintext, other DEK

	cases := []struct {
		name string
		ct   []byte
		aad  []byte
	}{
		{"empty", nil, aad},
		{"header only", hdr, aad},
		{"truncated header", ct[:hl-1], aad},
		{"truncated at boundary 1", ct[:hl+ctSegSize], aad},
		{"truncated at boundary 2", ct[:hl+2*ctSegSize], aad},
		{"truncated at boundary 3", ct[:hl+3*ctSegSize], aad},
		{"truncated mid segment", ct[:hl+ctSegSize+100], aad},
		{"truncated last byte", ct[:len(ct)-1], aad},
		{"truncated to tag", ct[:hl+tagSize], aad},
		{"segments swapped", cat(hdr, seg(1), seg(0), seg(2), seg(3)), aad},
		{"segment duplicated", cat(hdr, seg(0), seg(0), seg(1), seg(2), seg(3)), aad},
		{"segment replaced by duplicate", cat(hdr, seg(0), seg(0), seg(2), seg(3)), aad},
		{"segment dropped", cat(hdr, seg(0), seg(2), seg(3)), aad},
		{"final moved up", cat(hdr, seg(0), seg(3)), aad},
		{"appended byte", cat(ct, []byte{0}), aad},
		{"appended segment", cat(ct, seg(1)), aad},
		{"appended tag", cat(ct, seg(3)[len(seg(3))-tagSize:]), aad},
		{"stream concatenated", cat(ct, other), aad},
		{"segment from other stream", cat(hdr, seg(0), other[hl+ctSegSize:hl+2*ctSegSize], seg(2), seg(3)), aad},
		{"header from other stream", cat(other[:hl], ct[hl:]), aad},
		{"wrong aad", ct, AAD("documents", "body", "doc-2")},
		{"nil aad", ct, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := streamOpen(kr, tc.ct, tc.aad)
			if err != ErrOpen {
				t.Fatalf("err = %v, want ErrOpen", err)
			}
			if !bytes.HasPrefix(pt, got) || len(got)%SegmentSize != 0 {
				t.Fatalf("returned %d bytes that are not whole authenticated segments", len(got))
			}
		})
	}

	// Bit flips in every header byte and in sampled bytes of every segment.
	positions := []int{}
	for i := range hl {
		positions = append(positions, i)
	}
	for s := 0; s < 4; s++ {
		start := hl + s*ctSegSize
		for _, off := range []int{0, 1, 5000, ctSegSize - tagSize - 1, ctSegSize - tagSize, ctSegSize - 1} {
			if start+off < len(ct) {
				positions = append(positions, start+off)
			}
		}
	}
	positions = append(positions, len(ct)-1)
	for _, p := range positions {
		m := slices.Clone(ct)
		m[p] ^= 0x04
		got, err := streamOpen(kr, m, aad)
		if err != ErrOpen {
			t.Fatalf("flip at %d: err = %v", p, err)
		}
		// Plaintext only from segments before the flipped one.
		if limit := max(0, (p-hl)/ctSegSize) * SegmentSize; len(got) > limit || !bytes.HasPrefix(pt, got) {
			t.Fatalf("flip at %d: returned %d bytes (limit %d)", p, len(got), limit)
		}
	}

	// Empty stream: truncating its only (final) segment or appending fails.
	empty := streamSeal(t, kr, nil, aad, 1)
	for _, m := range [][]byte{empty[:len(empty)-1], empty[:streamHeaderLen("k1")], append(slices.Clone(empty), 1)} {
		if _, err := streamOpen(kr, m, aad); err != ErrOpen {
			t.Errorf("tampered empty stream: %v", err)
		}
	}
}

func TestStreamReaderSticky(t *testing.T) {
	kr := mustRing(t, GenerateKEK("k1"))
	ct := streamSeal(t, kr, randomBytes(10), nil, 10)
	r, err := kr.NewReader(bytes.NewReader(ct[:len(ct)-1]), nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	for range 3 {
		if n, err := r.Read(buf); n != 0 || err != ErrOpen {
			t.Fatalf("Read = %d, %v", n, err)
		}
	}
	r, _ = kr.NewReader(bytes.NewReader(ct), nil)
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Errorf("Read(nil) = %d, %v", n, err)
	}
}

func TestStreamIOErrors(t *testing.T) {
	kr := mustRing(t, GenerateKEK("k1"))
	boom := errors.New("boom")
	ct := streamSeal(t, kr, randomBytes(SegmentSize+5), nil, 1<<20)
	// A read error is passed through (wrapped), not turned into ErrOpen.
	r, err := kr.NewReader(io.MultiReader(bytes.NewReader(ct[:100]), iotest.ErrReader(boom)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, boom) {
		t.Errorf("read error = %v", err)
	}
	if _, err := kr.NewReader(iotest.ErrReader(boom), nil); !errors.Is(err, boom) {
		t.Errorf("header read error = %v", err)
	}
	// Write errors are sticky.
	if _, err := kr.NewWriter(errWriter{boom}, nil); !errors.Is(err, boom) {
		t.Errorf("header write error = %v", err)
	}
	lw := &limitWriter{n: 200}
	w, err := kr.NewWriter(lw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randomBytes(3 * SegmentSize)); err == nil {
		t.Error("write past limit succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after failed write succeeded")
	}
	// Write after Close fails; Close twice is fine.
	w, _ = kr.NewWriter(io.Discard, nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

type limitWriter struct{ n int }

func (w *limitWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestStreamRotation(t *testing.T) {
	k1, k2 := GenerateKEK("k1"), GenerateKEK("k2")
	aad := AAD("documents", "body", "doc-3")
	pt := randomBytes(2*SegmentSize + 3)
	ct := streamSeal(t, mustRing(t, k1), pt, aad, 1<<20)
	rotated := mustRing(t, k2, k1)
	var out bytes.Buffer
	if err := rotated.RewrapStream(&out, bytes.NewReader(ct), aad); err != nil {
		t.Fatal(err)
	}
	if id, _ := KEKIDOf(out.Bytes()); id != "k2" {
		t.Errorf("rewrapped stream under %q", id)
	}
	got, err := streamOpen(mustRing(t, k2), out.Bytes(), aad)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("rewrapped stream: %d bytes, %v", len(got), err)
	}
	if err := rotated.RewrapStream(io.Discard, bytes.NewReader(ct), nil); err != ErrOpen {
		t.Errorf("RewrapStream wrong aad = %v", err)
	}
	// The field format is not a stream and vice versa.
	if _, err := streamOpen(rotated, mustSeal(t, rotated, pt, aad), aad); err != ErrOpen {
		t.Errorf("field value as stream: %v", err)
	}
	if _, err := rotated.Open(ct, aad); err != ErrOpen {
		t.Errorf("stream as field value: %v", err)
	}
}
