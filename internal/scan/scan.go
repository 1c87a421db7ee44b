// Package scan checks uploaded documents for malware.
//
// Two Scanners are provided: Clamd, a client for a ClamAV clamd daemon (the one to use in
// production), and DevScanner, a dependency-free scanner for development that only knows
// the EICAR test file and a SHA-256 blocklist.
//
// Both fail closed: whenever a scanner cannot reach a verdict it returns an error, never a
// clean Result. Callers must treat an error as "not scanned" and keep the document
// pending.
package scan

import (
	"context"
	"io"
)

// Result is the verdict of one scan.
type Result struct {
	Infected  bool
	Signature string // name of the detected signature; empty when not infected
}

// Scanner scans a stream of bytes.
type Scanner interface {
	// Scan reads r until EOF and reports whether it is infected. An error means the
	// scanner could not decide (fail closed: the caller keeps the document pending);
	// the Result is then meaningless.
	Scan(ctx context.Context, r io.Reader) (Result, error)
	// Name describes the scanner for logs and health output, e.g.
	// "clamd unix:/run/clamd.sock".
	Name() string
}

var (
	_ Scanner = (*Clamd)(nil)
	_ Scanner = (*DevScanner)(nil)
)
