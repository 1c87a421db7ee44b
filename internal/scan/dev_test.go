package scan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// nByteReader yields at most n bytes per Read, to split the input at awkward places.
type nByteReader struct {
	r io.Reader
	n int
}

func (r *nByteReader) Read(p []byte) (int, error) {
	if len(p) > r.n {
		p = p[:r.n]
	}
	return r.r.Read(p)
}

func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestEICARString(t *testing.T) {
	if len(eicar) != 68 {
		t.Fatalf("EICAR string is %d bytes, want 68", len(eicar))
	}
	// SHA-256 of the 68-byte EICAR file, as published by EICAR and in ClamAV's .hdb.
	const want = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
	if got := hex.EncodeToString(sha256Of(eicar)); got != want {
		t.Fatalf("EICAR string has SHA-256 %s, want %s", got, want)
	}
}

func sha256Of(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func TestDevScanner(t *testing.T) {
	big := randomBytes(1, 3*devReadSize+17)
	blocked := []byte("%PDF-1.4 this exact file is on the blocklist")
	s := NewDevScanner([]string{
		"  " + strings.ToUpper(hex.EncodeToString(sha256Of(blocked))) + "\n", // case and spaces ignored
	})

	tests := []struct {
		name string
		r    io.Reader
		want Result
	}{
		{"empty", bytes.NewReader(nil), Result{}},
		{"clean text", strings.NewReader("claim form, page 1"), Result{}},
		{"clean random", bytes.NewReader(big), Result{}},
		{"EICAR truncated by one byte", bytes.NewReader(eicar[:67]), Result{}},
		{"EICAR with one byte changed", bytes.NewReader(concat(eicar[:30], []byte("x"), eicar[31:])), Result{}},

		{"EICAR plain", bytes.NewReader(eicar), Result{true, DevSignatureEICAR}},
		{"EICAR plus trailing whitespace", bytes.NewReader(concat(eicar, []byte(" \r\n\t"))), Result{true, DevSignatureEICAR}},
		{"EICAR one byte per read", iotest.OneByteReader(bytes.NewReader(eicar)), Result{true, DevSignatureEICAR}},
		{"EICAR ten bytes per read", &nByteReader{bytes.NewReader(eicar), 10}, Result{true, DevSignatureEICAR}},
		{"EICAR 67 bytes per read", &nByteReader{bytes.NewReader(concat([]byte("a"), eicar)), 67}, Result{true, DevSignatureEICAR}},
		{"EICAR across the internal read buffer", bytes.NewReader(concat(big[:devReadSize-30], eicar, big[:100])), Result{true, DevSignatureEICAR}},
		{"EICAR at the very end of a large stream", bytes.NewReader(concat(big, eicar)), Result{true, DevSignatureEICAR}},
		{"EICAR with data error after it", iotest.DataErrReader(bytes.NewReader(eicar)), Result{true, DevSignatureEICAR}},

		{"blocklist hit", bytes.NewReader(blocked), Result{true, DevSignatureBlocklist}},
		{"blocklist hit in small reads", &nByteReader{bytes.NewReader(blocked), 3}, Result{true, DevSignatureBlocklist}},
		{"blocklist prefix is not a hit", bytes.NewReader(blocked[:len(blocked)-1]), Result{}},
		{"blocklist entry plus a byte is not a hit", bytes.NewReader(concat(blocked, []byte("\n"))), Result{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Scan(context.Background(), tt.r)
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Scan = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDevScannerErrors(t *testing.T) {
	s := NewDevScanner(nil)

	readErr := errors.New("disk on fire")
	if _, err := s.Scan(context.Background(), iotest.ErrReader(readErr)); !errors.Is(err, readErr) {
		t.Errorf("reader error: got %v, want it wrapped", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Scan(ctx, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v, want context.Canceled", err)
	}
}

func TestNewDevScannerRejectsBadBlocklist(t *testing.T) {
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), strings.Repeat("a", 62), strings.Repeat("a", 66)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewDevScanner(%q) did not panic", bad)
				}
			}()
			NewDevScanner([]string{bad})
		}()
	}
}

func TestDevScannerName(t *testing.T) {
	if got := NewDevScanner(nil).Name(); !strings.Contains(got, "not a substitute for ClamAV") {
		t.Errorf("Name() = %q", got)
	}
}
