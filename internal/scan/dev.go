package scan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// eicar is the 68-byte EICAR anti-virus test string. It is split in the source so that
// this file is not itself reported by virus scanners.
var eicar = []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)

// Signature names reported by DevScanner.
const (
	// DevSignatureEICAR is reported when the EICAR test string occurs in the stream.
	DevSignatureEICAR = "Eicar-Test-Signature"
	// DevSignatureBlocklist is reported when the SHA-256 of the whole stream is on the
	// blocklist.
	DevSignatureBlocklist = "Blocklisted-SHA256"
)

const devReadSize = 32 << 10

// DevScanner is a scanner for development and tests that needs no daemon. It detects
//
//   - the EICAR test string anywhere in the stream, also across read boundaries. The
//     EICAR specification only calls a file "the test file" when it starts with the
//     string, followed by nothing but whitespace, up to 128 bytes in all; DevScanner
//     detects a superset of that (the string at any offset), as the body signature used
//     with clamd in tests (scripts/test-services) does, so the two agree;
//   - files whose SHA-256 is on a blocklist.
//
// It is not a virus scanner: it exists so that the upload pipeline can be run and its
// infected path exercised without clamd. Never use it in production.
type DevScanner struct {
	blocklist map[[sha256.Size]byte]struct{}
}

// NewDevScanner returns a DevScanner with the given blocklist of SHA-256 digests in hex
// (case and surrounding spaces are ignored). It panics if an entry is not 64 hex digits:
// a blocklist that silently fails to match would be worse than none.
func NewDevScanner(blocklist []string) *DevScanner {
	s := &DevScanner{blocklist: make(map[[sha256.Size]byte]struct{}, len(blocklist))}
	for _, h := range blocklist {
		b, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil || len(b) != sha256.Size {
			panic(fmt.Sprintf("scan: NewDevScanner: blocklist entry %q is not a hex SHA-256 digest", h))
		}
		s.blocklist[[sha256.Size]byte(b)] = struct{}{}
	}
	return s
}

// Name describes the scanner.
func (s *DevScanner) Name() string {
	return "development scanner (EICAR + blocklist; not a substitute for ClamAV)"
}

// Scan reads r to EOF (or until EICAR is seen) and reports a hit. It checks ctx between
// reads.
func (s *DevScanner) Scan(ctx context.Context, r io.Reader) (Result, error) {
	h := sha256.New()
	// window holds the last len(eicar)-1 bytes of the previous read followed by the
	// current read, so that a string split across reads is still seen.
	keep := len(eicar) - 1
	window := make([]byte, 0, keep+devReadSize)
	buf := make([]byte, devReadSize)
	for {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("scan: %s: %w", "development scanner", err)
		}
		n, err := r.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			window = append(window, buf[:n]...)
			if bytes.Contains(window, eicar) {
				return Result{Infected: true, Signature: DevSignatureEICAR}, nil
			}
			if len(window) > keep {
				window = append(window[:0], window[len(window)-keep:]...)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return Result{}, fmt.Errorf("scan: development scanner: reading the document: %w", err)
		}
	}
	if _, hit := s.blocklist[[sha256.Size]byte(h.Sum(nil))]; hit {
		return Result{Infected: true, Signature: DevSignatureBlocklist}, nil
	}
	return Result{}, nil
}
