package seal

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// SegmentSize is the plaintext size of every non-final stream segment.
const SegmentSize = 64 << 10

const (
	prefixSize = 7
	ctSegSize  = SegmentSize + tagSize
)

var errClosed = errors.New("seal: write to closed stream writer")

// segmentNonce = prefix (7) | index (uint32 BE) | final flag.
func segmentNonce(n *[nonceSize]byte, prefix *[prefixSize]byte, idx uint32, final bool) []byte {
	copy(n[:prefixSize], prefix[:])
	binary.BigEndian.PutUint32(n[prefixSize:], idx)
	n[nonceSize-1] = 0
	if final {
		n[nonceSize-1] = 1
	}
	return n[:]
}

type streamWriter struct {
	w      io.Writer
	aead   func() cipher.AEAD // see hide
	aad    []byte
	prefix [prefixSize]byte
	nonce  [nonceSize]byte
	idx    uint32
	buf    []byte // pending plaintext, at most SegmentSize
	out    []byte // ciphertext scratch
	err    error  // sticky
	closed bool
}

// NewWriter returns a writer that encrypts a document to w in the stream
// format (see the package documentation). It writes the header at once.
// Close writes the final segment and must be called, or the stream will not
// open; Close does not close w. Memory use is about 128 KiB whatever the
// document size.
func (kr *KeyRing) NewWriter(w io.Writer, aad []byte) (io.WriteCloser, error) {
	if kr == nil {
		return nil, errors.New("seal: nil KeyRing")
	}
	var dek [KeySize]byte
	rand.Read(dek[:])
	sw := &streamWriter{
		w:    w,
		aead: hide(gcmExplicit(dek[:])),
		aad:  bodyAAD(fmtStream, aad),
		buf:  make([]byte, 0, SegmentSize),
		out:  make([]byte, 0, ctSegSize),
	}
	rand.Read(sw.prefix[:])
	hdr := kr.appendHeader(nil, fmtStream, &dek, aad)
	clear(dek[:])
	hdr = append(hdr, sw.prefix[:]...)
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("seal: writing stream header: %w", err)
	}
	return sw, nil
}

func (sw *streamWriter) flush(final bool) error {
	if !final && sw.idx == math.MaxUint32 {
		// The final segment needs an index of its own.
		return errors.New("seal: stream too large")
	}
	sw.out = sw.aead().Seal(sw.out[:0], segmentNonce(&sw.nonce, &sw.prefix, sw.idx, final), sw.buf, sw.aad)
	sw.buf = sw.buf[:0]
	sw.idx++
	if _, err := sw.w.Write(sw.out); err != nil {
		return fmt.Errorf("seal: writing stream: %w", err)
	}
	return nil
}

// Write buffers p and writes every full segment once it knows more data
// follows, so that the last segment is always written by Close as final.
func (sw *streamWriter) Write(p []byte) (int, error) {
	if sw.closed {
		return 0, errClosed
	}
	if sw.err != nil {
		return 0, sw.err
	}
	n := 0
	for len(p) > 0 {
		if len(sw.buf) == SegmentSize {
			if sw.err = sw.flush(false); sw.err != nil {
				return n, sw.err
			}
		}
		k := min(SegmentSize-len(sw.buf), len(p))
		sw.buf = append(sw.buf, p[:k]...)
		p = p[k:]
		n += k
	}
	return n, nil
}

// Close writes the final segment (possibly empty). It does not close the
// underlying writer. Calling Close again returns the first result.
func (sw *streamWriter) Close() error {
	if sw.closed {
		return sw.err
	}
	sw.closed = true
	if sw.err == nil {
		sw.err = sw.flush(true)
	}
	clear(sw.buf[:cap(sw.buf)])
	return sw.err
}

type streamReader struct {
	r      io.Reader
	aead   func() cipher.AEAD // see hide
	aad    []byte
	prefix [prefixSize]byte
	nonce  [nonceSize]byte
	idx    uint32
	ct     []byte // ctSegSize+1: one segment plus one byte of look-ahead
	have   int    // look-ahead bytes already in ct (0 or 1)
	ptBuf  []byte
	pt     []byte // authenticated, unread plaintext
	done   bool   // final segment authenticated
	err    error  // sticky
}

// readStreamHeader reads and authenticates a stream header, returning the
// header, the DEK and the nonce prefix. Truncated or bad headers give
// ErrOpen; other read errors are returned wrapped.
func (kr *KeyRing) readStreamHeader(r io.Reader, aad []byte) (header, *[KeySize]byte, [prefixSize]byte, error) {
	var prefix [prefixSize]byte
	var h header
	fail := func(err error) (header, *[KeySize]byte, [prefixSize]byte, error) {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = ErrOpen
		} else if err != ErrOpen {
			err = fmt.Errorf("seal: reading stream header: %w", err)
		}
		return h, nil, prefix, err
	}
	if kr == nil {
		return fail(ErrOpen)
	}
	var lead [2]byte
	if _, err := io.ReadFull(r, lead[:]); err != nil {
		return fail(err)
	}
	kidLen := int(lead[1])
	if lead[0] != fmtStream || kidLen == 0 || kidLen > maxIDLen {
		return fail(ErrOpen)
	}
	buf := make([]byte, 2+kidLen+2+wrappedLen+prefixSize)
	copy(buf, lead[:])
	if _, err := io.ReadFull(r, buf[2:]); err != nil {
		return fail(err)
	}
	h, rest, ok := parseHeader(buf)
	if !ok || len(rest) != prefixSize {
		return fail(ErrOpen)
	}
	dek, ok := kr.unwrap(h, aad)
	if !ok {
		return fail(ErrOpen)
	}
	copy(prefix[:], rest)
	return h, dek, prefix, nil
}

// NewReader returns a reader that decrypts a stream written by NewWriter with
// the same aad. It reads and authenticates the header at once. Read returns
// plaintext only from segments that have been authenticated, and ErrOpen on
// any tampering, including a stream that ends without its final segment or
// has data after it. Read errors of r other than EOF are returned wrapped.
// Plaintext returned before an error must be discarded by the caller.
func (kr *KeyRing) NewReader(r io.Reader, aad []byte) (io.Reader, error) {
	_, dek, prefix, err := kr.readStreamHeader(r, aad)
	if err != nil {
		return nil, err
	}
	sr := &streamReader{
		r:      r,
		aead:   hide(gcmExplicit(dek[:])),
		aad:    bodyAAD(fmtStream, aad),
		prefix: prefix,
		ct:     make([]byte, ctSegSize+1),
		ptBuf:  make([]byte, 0, SegmentSize),
	}
	clear(dek[:])
	return sr, nil
}

func (sr *streamReader) Read(p []byte) (int, error) {
	for len(sr.pt) == 0 {
		if sr.err != nil {
			return 0, sr.err
		}
		if sr.done {
			return 0, io.EOF
		}
		if len(p) == 0 {
			return 0, nil
		}
		sr.err = sr.next()
	}
	n := copy(p, sr.pt)
	sr.pt = sr.pt[n:]
	return n, nil
}

// next reads, authenticates and decrypts one segment into sr.pt.
func (sr *streamReader) next() error {
	n, err := io.ReadFull(sr.r, sr.ct[sr.have:])
	total := sr.have + n
	final := false
	switch {
	case err == nil: // a full segment plus one byte of the next: not final
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		final = true
	default:
		return fmt.Errorf("seal: reading stream: %w", err)
	}
	seg := sr.ct[:min(total, ctSegSize)]
	if len(seg) < tagSize || (!final && sr.idx == math.MaxUint32) {
		return ErrOpen
	}
	pt, aerr := sr.aead().Open(sr.ptBuf[:0], segmentNonce(&sr.nonce, &sr.prefix, sr.idx, final), seg, sr.aad)
	if aerr != nil {
		return ErrOpen
	}
	if final {
		sr.done = true
	} else {
		sr.ct[0] = sr.ct[ctSegSize]
		sr.have = 1
		sr.idx++
	}
	sr.pt = pt
	return nil
}

// RewrapStream copies a stream from src to dst with its DEK re-wrapped under
// the current primary KEK. Segments are copied unchanged and not verified.
// A bad header gives ErrOpen.
func (kr *KeyRing) RewrapStream(dst io.Writer, src io.Reader, aad []byte) error {
	_, dek, prefix, err := kr.readStreamHeader(src, aad)
	if err != nil {
		return err
	}
	hdr := kr.appendHeader(nil, fmtStream, dek, aad)
	clear(dek[:])
	hdr = append(hdr, prefix[:]...)
	if _, err := dst.Write(hdr); err != nil {
		return fmt.Errorf("seal: writing stream header: %w", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		return fmt.Errorf("seal: copying stream: %w", err)
	}
	return nil
}
