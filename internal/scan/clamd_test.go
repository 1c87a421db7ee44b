package scan

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// Tests against a real clamd. CLAIMS_TEST_CLAMD names it ("unix:/path/clamd.sock" or
// "tcp:host:port"); scripts/test-services starts one. Without it these tests are
// skipped, except under CI=true, where they fail.

const clamdEnv = "CLAIMS_TEST_CLAMD"

func realClamd(t *testing.T, opts ...ClamdOption) *Clamd {
	t.Helper()
	addr := os.Getenv(clamdEnv)
	if addr == "" {
		msg := clamdEnv + " is not set, so the tests against a real clamd cannot run " +
			`(start one with: eval "$(scripts/test-services start)")`
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI=true requires them")
		}
		t.Skip("SKIPPING: " + msg)
	}
	c, err := NewClamd(addr, append([]ClamdOption{WithDialTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatalf("NewClamd(%q): %v", addr, err)
	}
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantClean(t *testing.T, res Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if res.Infected || res.Signature != "" {
		t.Fatalf("Scan = %+v, want clean", res)
	}
}

func wantEICAR(t *testing.T, res Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	// scripts/test-services loads "Eicar-Test-Signature" (reported with ".UNOFFICIAL");
	// the official database calls it "Win.Test.EICAR_HDB-1".
	if !res.Infected || !strings.Contains(strings.ToLower(res.Signature), "eicar") {
		t.Fatalf("Scan = %+v, want infected with an EICAR signature", res)
	}
}

// pdfish returns a structurally plausible, harmless PDF of roughly size bytes.
func pdfish(size int) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	b.WriteString("1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")
	b.WriteString("2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n")
	b.WriteString("3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>\nendobj\n")
	var content bytes.Buffer
	for i := 0; content.Len() < size; i++ {
		fmt.Fprintf(&content, "BT /F1 10 Tf 50 %d Td (Claim 2026-%06d: windscreen damage, no injuries) Tj ET\n", 800-i%700, i)
	}
	fmt.Fprintf(&b, "4 0 obj\n<< /Length %d >>\nstream\n", content.Len())
	b.Write(content.Bytes())
	b.WriteString("\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
	return b.Bytes()
}

func TestClamdReal(t *testing.T) {
	c := realClamd(t)

	t.Run("Ping", func(t *testing.T) {
		if err := c.Ping(testCtx(t)); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("Version", func(t *testing.T) {
		v, err := c.Version(testCtx(t))
		if err != nil {
			t.Fatalf("Version: %v", err)
		}
		if !strings.HasPrefix(v, "ClamAV ") {
			t.Fatalf("Version = %q, want it to start with \"ClamAV \"", v)
		}
		t.Logf("clamd version: %s", v)
	})
	t.Run("clean bytes", func(t *testing.T) {
		res, err := c.Scan(testCtx(t), strings.NewReader("Policy 4711, claim for a broken window.\n"))
		wantClean(t, res, err)
	})
	t.Run("empty stream", func(t *testing.T) {
		res, err := c.Scan(testCtx(t), bytes.NewReader(nil))
		wantClean(t, res, err)
	})
	t.Run("EICAR", func(t *testing.T) {
		res, err := c.Scan(testCtx(t), bytes.NewReader(eicar))
		wantEICAR(t, res, err)
	})
	t.Run("EICAR ten bytes per read", func(t *testing.T) {
		res, err := c.Scan(testCtx(t), &nByteReader{bytes.NewReader(eicar), 10})
		wantEICAR(t, res, err)
	})
	t.Run("EICAR across many 7-byte chunks", func(t *testing.T) {
		small := realClamd(t, WithChunkSize(7))
		res, err := small.Scan(testCtx(t), &nByteReader{bytes.NewReader(eicar), 10})
		wantEICAR(t, res, err)
	})
	t.Run("clean PDF-ish blob", func(t *testing.T) {
		pdf := pdfish(3 << 20) // several chunks
		res, err := c.Scan(testCtx(t), bytes.NewReader(pdf))
		wantClean(t, res, err)
	})
	t.Run("clean random 20 MiB", func(t *testing.T) {
		res, err := c.Scan(testCtx(t), io.LimitReader(bytes.NewReader(randomBytes(2, 20<<20)), 20<<20))
		wantClean(t, res, err)
	})
	t.Run("concurrent scans", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				var res Result
				var err error
				if i%2 == 0 {
					res, err = c.Scan(testCtx(t), bytes.NewReader(eicar))
					if err != nil || !res.Infected {
						t.Errorf("scan %d of EICAR: %+v, %v", i, res, err)
					}
				} else {
					res, err = c.Scan(testCtx(t), bytes.NewReader(pdfish(100<<10)))
					if err != nil || res.Infected {
						t.Errorf("scan %d of clean data: %+v, %v", i, res, err)
					}
				}
			})
		}
		wg.Wait()
	})
	t.Run("context deadline while streaming", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Scan(ctx, &slowReader{delay: 20 * time.Millisecond})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Scan with expired context: %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Scan took %v after a 300ms deadline", d)
		}
	})
}

// slowReader yields one clean byte per delay, forever.
type slowReader struct{ delay time.Duration }

func (r *slowReader) Read(p []byte) (int, error) {
	time.Sleep(r.delay)
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = 'a'
	return 1, nil
}

// ---------------------------------------------------------------------------
// Tests that need no server.

func TestClamdUnreachable(t *testing.T) {
	dir := t.TempDir()

	// A socket file whose listener is gone: connection refused.
	closedPath := filepath.Join(dir, "closed.sock")
	ln, err := net.Listen("unix", closedPath)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	for _, addr := range []string{
		"unix:" + filepath.Join(dir, "nonexistent.sock"),
		"unix:" + closedPath,
	} {
		c, err := NewClamd(addr, WithDialTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		ctx := testCtx(t)
		if res, err := c.Scan(ctx, bytes.NewReader(eicar)); err == nil {
			t.Errorf("%s: Scan = %+v with no error; must fail, not report clean", addr, res)
		}
		if res, err := c.Scan(ctx, strings.NewReader("clean")); err == nil {
			t.Errorf("%s: Scan = %+v with no error; must fail, not report clean", addr, res)
		}
		if err := c.Ping(ctx); err == nil {
			t.Errorf("%s: Ping succeeded", addr)
		}
		if _, err := c.Version(ctx); err == nil {
			t.Errorf("%s: Version succeeded", addr)
		}
	}
}

func TestNewClamdAddress(t *testing.T) {
	valid := []string{
		"unix:/run/clamav/clamd.ctl",
		"tcp:127.0.0.1:3310",
		"tcp:[::1]:3310",
		"tcp:clamd.internal:3310",
	}
	for _, a := range valid {
		c, err := NewClamd(a)
		if err != nil {
			t.Errorf("NewClamd(%q): %v", a, err)
			continue
		}
		if c.Name() != "clamd "+a {
			t.Errorf("Name() = %q", c.Name())
		}
	}
	invalid := []string{
		"", "/run/clamd.sock", "unix:", "unix:relative/clamd.sock", "unix://run/x",
		"tcp:", "tcp:127.0.0.1", "tcp::3310", "tcp:host:0", "tcp:host:65536", "tcp:host:http",
		"udp:127.0.0.1:3310", "http://127.0.0.1:3310", "127.0.0.1:3310", "UNIX:/run/clamd.sock",
	}
	for _, a := range invalid {
		if _, err := NewClamd(a); err == nil {
			t.Errorf("NewClamd(%q) accepted an invalid address", a)
		}
	}
}

func TestNewClamdOptions(t *testing.T) {
	const addr = "unix:/run/clamd.sock"
	c, err := NewClamd(addr)
	if err != nil || c.chunkSize != DefaultChunkSize || c.dialTimeout != 0 {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c, err = NewClamd(addr, WithChunkSize(1024), WithDialTimeout(time.Second))
	if err != nil || c.chunkSize != 1024 || c.dialTimeout != time.Second {
		t.Fatalf("options: %+v, %v", c, err)
	}
	for _, o := range []ClamdOption{WithChunkSize(0), WithChunkSize(-1), WithChunkSize(maxChunkSize + 1), WithDialTimeout(-time.Second)} {
		if _, err := NewClamd(addr, o); err == nil {
			t.Errorf("invalid option accepted")
		}
	}
}

// ---------------------------------------------------------------------------
// Error paths a real clamd cannot be made to produce on demand, exercised against
// standInClamd. It is a PROTOCOL STAND-IN, not a clamd and not a test of the happy
// path: it speaks just enough of clamd(8)'s INSTREAM framing to misbehave in one
// particular way. Everything that must work is tested against a real clamd above.

// standInClamd listens on a unix socket and runs handle for each connection.
func standInClamd(t *testing.T, handle func(conn net.Conn, r *bufio.Reader)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "standin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				handle(conn, bufio.NewReader(conn))
			})
		}
	})
	return "unix:" + sock
}

// readCommand reads a null-terminated command.
func readCommand(r *bufio.Reader) (string, error) {
	s, err := r.ReadString(0)
	return strings.TrimSuffix(s, "\x00"), err
}

// readChunks reads INSTREAM chunks until the zero-length one, or until more than
// limit bytes have arrived (limit < 0: no limit). It returns the bytes received.
func readChunks(r *bufio.Reader, limit int) (int, error) {
	total := 0
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return total, err
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if n == 0 {
			return total, nil
		}
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return total, err
		}
		total += n
		if limit >= 0 && total > limit {
			return total, errSizeLimit
		}
	}
}

var errSizeLimit = errors.New("size limit")

func TestClamdSizeLimitError(t *testing.T) {
	// Like clamd when StreamMaxLength is exceeded: reply with an error as soon as the
	// limit is passed and close the connection while the client is still sending.
	addr := standInClamd(t, func(conn net.Conn, r *bufio.Reader) {
		if cmd, err := readCommand(r); err != nil || cmd != "zINSTREAM" {
			return
		}
		if _, err := readChunks(r, 100<<10); errors.Is(err, errSizeLimit) {
			io.WriteString(conn, "INSTREAM size limit exceeded. ERROR\x00")
		}
	})
	c, err := NewClamd(addr)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Scan(testCtx(t), bytes.NewReader(randomBytes(3, 8<<20)))
	var ce *ClamdError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reply, "size limit exceeded") {
		t.Fatalf("Scan = %+v, %v; want a *ClamdError with the size-limit reply", res, err)
	}
	// A small document gets through the same stand-in's limit and then no reply at all.
	if res, err := c.Scan(testCtx(t), strings.NewReader("small")); err == nil {
		t.Fatalf("Scan without a reply = %+v, want an error", res)
	}
}

func TestClamdBadReplies(t *testing.T) {
	replies := []string{
		"",                                  // just the terminator
		"hello\x00",                         // garbage
		"stream: OK",                        // no terminator: possibly truncated
		"stream: Eicar-Signature FOUND",     // no terminator
		"stream: OK\n",                      // newline form, no terminator
		"stream:  FOUND\x00",                // no signature name
		"stream: Eicar FOUNDX\x00",          // not the reply format
		"1: stream: OK\x00",                 // session-id form we never asked for
		"stream: OK ERROR\x00",              // ERROR wins
		"Can't allocate memory ERROR\x00",   // error reply
		"stream: lstat() failed. ERROR\x00", // error reply
		strings.Repeat("stream: OK ", 1000), // overlong, no terminator
		"STREAM: OK\x00",                    // wrong case
		"stream: OK trailing garbage\x00",   // garbage after OK
		"\x00stream: OK\x00",                // empty reply first
	}
	for _, reply := range replies {
		t.Run(fmt.Sprintf("%.30q", reply), func(t *testing.T) {
			addr := standInClamd(t, func(conn net.Conn, r *bufio.Reader) {
				if cmd, err := readCommand(r); err != nil || cmd != "zINSTREAM" {
					return
				}
				if _, err := readChunks(r, -1); err != nil {
					return
				}
				io.WriteString(conn, reply)
			})
			c, err := NewClamd(addr)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Scan(testCtx(t), strings.NewReader("some document"))
			if err == nil {
				t.Fatalf("Scan = %+v with no error for reply %q; must fail closed", res, reply)
			}
			t.Logf("error (as expected): %v", err)
		})
	}
}

func TestClamdBadPingVersionReplies(t *testing.T) {
	addr := standInClamd(t, func(conn net.Conn, r *bufio.Reader) {
		if _, err := readCommand(r); err != nil {
			return
		}
		io.WriteString(conn, "UNKNOWN COMMAND ERROR\x00")
	})
	c, err := NewClamd(addr)
	if err != nil {
		t.Fatal(err)
	}
	var ce *ClamdError
	if err := c.Ping(testCtx(t)); !errors.As(err, &ce) {
		t.Errorf("Ping: %v, want *ClamdError", err)
	}
	if _, err := c.Version(testCtx(t)); !errors.As(err, &ce) {
		t.Errorf("Version: %v, want *ClamdError", err)
	}
}

func TestClamdConnectionDrop(t *testing.T) {
	cases := map[string]func(conn net.Conn, r *bufio.Reader){
		"before the command": func(net.Conn, *bufio.Reader) {},
		"mid-stream": func(conn net.Conn, r *bufio.Reader) {
			readCommand(r)
			io.CopyN(io.Discard, r, 10_000)
		},
		"after the stream, before the reply": func(conn net.Conn, r *bufio.Reader) {
			readCommand(r)
			readChunks(r, -1)
		},
		"in the middle of the reply": func(conn net.Conn, r *bufio.Reader) {
			readCommand(r)
			readChunks(r, -1)
			io.WriteString(conn, "stream: O")
		},
	}
	for name, handle := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := NewClamd(standInClamd(t, handle), WithChunkSize(4096))
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Scan(testCtx(t), bytes.NewReader(randomBytes(4, 1<<20)))
			if err == nil {
				t.Fatalf("Scan = %+v with no error; must fail closed", res)
			}
			t.Logf("error (as expected): %v", err)
		})
	}
}

func TestClamdNoReplyHonoursDeadline(t *testing.T) {
	release := make(chan struct{})
	addr := standInClamd(t, func(conn net.Conn, r *bufio.Reader) {
		readCommand(r)
		readChunks(r, -1)
		<-release // never answers while the client waits
	})
	defer close(release)
	c, err := NewClamd(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Scan(ctx, strings.NewReader("doc")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Scan: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Scan returned %v after a 200ms deadline", d)
	}

	// Cancellation (no deadline) must unblock the wait as well.
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel2)
	if _, err := c.Scan(ctx2, strings.NewReader("doc")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Scan: %v, want context.Canceled", err)
	}
}
