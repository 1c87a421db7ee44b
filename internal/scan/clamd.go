package scan

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// DefaultChunkSize is the size of the INSTREAM chunks Clamd sends unless WithChunkSize
// says otherwise.
const DefaultChunkSize = 64 << 10

// maxChunkSize bounds WithChunkSize. clamd itself refuses chunks larger than its
// StreamMaxLength.
const maxChunkSize = 64 << 20

// maxReplyLen bounds how much of a clamd reply is read. Real replies are a few dozen
// bytes; anything longer is not clamd.
const maxReplyLen = 4096

// Clamd is a client for the ClamAV daemon clamd, speaking the protocol of clamd(8): one
// connection per command, null-terminated commands ("zINSTREAM\0", "zPING\0",
// "zVERSION\0") and null-terminated replies.
//
// A Clamd is safe for concurrent use; it holds no connection between calls.
type Clamd struct {
	address     string // as given to NewClamd, e.g. "unix:/run/clamav/clamd.ctl"
	network     string // "unix" or "tcp"
	addr        string // socket path or host:port
	chunkSize   int
	dialTimeout time.Duration
}

// ClamdOption configures a Clamd.
type ClamdOption func(*Clamd) error

// WithChunkSize sets the size of the INSTREAM chunks (default DefaultChunkSize). It must
// be between 1 byte and 64 MiB and must not exceed clamd's StreamMaxLength.
func WithChunkSize(n int) ClamdOption {
	return func(c *Clamd) error {
		if n < 1 || n > maxChunkSize {
			return fmt.Errorf("chunk size %d out of range [1, %d]", n, maxChunkSize)
		}
		c.chunkSize = n
		return nil
	}
}

// WithDialTimeout bounds the time to connect to clamd, in addition to any deadline of the
// context passed to each call. Zero (the default) means only the context bounds it.
func WithDialTimeout(d time.Duration) ClamdOption {
	return func(c *Clamd) error {
		if d < 0 {
			return fmt.Errorf("negative dial timeout %v", d)
		}
		c.dialTimeout = d
		return nil
	}
}

// ClamdError is an error reply from clamd, such as "INSTREAM size limit exceeded. ERROR".
type ClamdError struct {
	Reply string // the reply as clamd sent it, without the terminating NUL
}

func (e *ClamdError) Error() string { return "clamd replied " + strconv.Quote(e.Reply) }

// NewClamd returns a client for the clamd listening at address, which is either
// "unix:/absolute/path/clamd.sock" or "tcp:host:port". Any other form is rejected.
// Nothing is dialled until the first call.
//
// clamd's TCP protocol has neither authentication nor encryption: use "tcp:" only on
// loopback or a trusted network.
func NewClamd(address string, opts ...ClamdOption) (*Clamd, error) {
	network, addr, err := parseClamdAddress(address)
	if err != nil {
		return nil, err
	}
	c := &Clamd{address: address, network: network, addr: addr, chunkSize: DefaultChunkSize}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, fmt.Errorf("scan: clamd %s: %w", address, err)
		}
	}
	return c, nil
}

func parseClamdAddress(address string) (network, addr string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("scan: invalid clamd address %q: %s (want \"unix:/path/clamd.sock\" or \"tcp:host:port\")", address, why)
	}
	switch {
	case strings.HasPrefix(address, "unix:"):
		p := strings.TrimPrefix(address, "unix:")
		if !path.IsAbs(p) || strings.HasPrefix(p, "//") || strings.ContainsRune(p, 0) {
			return bad("socket path must be absolute, like unix:/run/clamd.sock")
		}
		return "unix", p, nil
	case strings.HasPrefix(address, "tcp:"):
		hp := strings.TrimPrefix(address, "tcp:")
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			return bad(err.Error())
		}
		if host == "" {
			return bad("missing host")
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return bad("port must be a number from 1 to 65535")
		}
		return "tcp", hp, nil
	default:
		return bad("unknown scheme")
	}
}

// Name returns "clamd " followed by the address, e.g. "clamd unix:/run/clamd.sock".
func (c *Clamd) Name() string { return "clamd " + c.address }

// Ping checks that clamd answers (PING → PONG).
func (c *Clamd) Ping(ctx context.Context) error {
	reply, err := c.command(ctx, "PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return c.errorf("PING: unexpected reply %q", reply)
	}
	return nil
}

// Version returns clamd's version string, e.g. "ClamAV 1.4.6/27475/Mon Dec  1 09:33:02 2026"
// (the part after the slash is the signature database version; it is absent when clamd
// runs without the official database).
func (c *Clamd) Version(ctx context.Context) (string, error) {
	reply, err := c.command(ctx, "VERSION")
	if err != nil {
		return "", err
	}
	if reply == "" {
		return "", c.errorf("VERSION: empty reply")
	}
	return reply, nil
}

// Scan streams r to clamd with INSTREAM and returns its verdict. The reader is read in
// chunks of the configured size and never held in memory as a whole. The context's
// deadline applies to the connection and cancelling it aborts the scan; a read from r that
// blocks is not interrupted, so r should observe the same context where that matters.
//
// Any reply other than "stream: OK" or "stream: <signature> FOUND" is an error, as is a
// connection that breaks before the reply: Scan never reports clean unless clamd said so.
func (c *Clamd) Scan(ctx context.Context, r io.Reader) (Result, error) {
	conn, done, err := c.dial(ctx)
	if err != nil {
		return Result{}, err
	}
	defer done()

	if _, err := io.WriteString(conn, "zINSTREAM\x00"); err != nil {
		return Result{}, c.ioError(ctx, "INSTREAM: sending command", err)
	}
	buf := make([]byte, 4+c.chunkSize)
	for eof := false; !eof; {
		// Fill one chunk, checking ctx after every read so that a slowly trickling
		// reader cannot outlive the deadline.
		n := 0
		for n < c.chunkSize {
			if err := ctx.Err(); err != nil {
				return Result{}, c.errorf("INSTREAM: %w", err)
			}
			m, rerr := r.Read(buf[4+n:])
			n += m
			if rerr == io.EOF {
				eof = true
				break
			}
			if rerr != nil {
				return Result{}, c.errorf("INSTREAM: reading the document: %w", rerr)
			}
		}
		if n > 0 {
			binary.BigEndian.PutUint32(buf[:4], uint32(n))
			if _, err := conn.Write(buf[:4+n]); err != nil {
				return Result{}, c.writeFailed(ctx, conn, err)
			}
		}
	}
	// A zero-length chunk ends the stream.
	if _, err := conn.Write([]byte{0, 0, 0, 0}); err != nil {
		return Result{}, c.writeFailed(ctx, conn, err)
	}
	reply, err := readReply(conn)
	if err != nil {
		return Result{}, c.ioError(ctx, "INSTREAM: reading reply", err)
	}
	return c.parseScanReply(reply)
}

// writeFailed handles a failed write during INSTREAM. clamd answers some problems (such
// as the size limit) before the stream ends and closes the connection, which makes our
// next write fail; its reply may still be readable and says more than EPIPE does.
func (c *Clamd) writeFailed(ctx context.Context, conn net.Conn, werr error) error {
	if ctx.Err() == nil {
		deadline := time.Now().Add(time.Second)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = conn.SetReadDeadline(deadline)
		if reply, err := readReply(conn); err == nil {
			if _, perr := c.parseScanReply(reply); perr != nil {
				return fmt.Errorf("%w (while sending the stream: %v)", perr, werr)
			}
			// A verdict after a failed write cannot cover the whole document.
			return c.errorf("INSTREAM: connection broke while sending (%v); clamd had replied %q", werr, reply)
		}
	}
	return c.ioError(ctx, "INSTREAM: sending the stream", werr)
}

func (c *Clamd) parseScanReply(reply string) (Result, error) {
	switch {
	case strings.HasSuffix(reply, " ERROR") || reply == "ERROR":
		return Result{}, c.errorf("INSTREAM: %w", &ClamdError{Reply: reply})
	case reply == "stream: OK":
		return Result{}, nil
	case strings.HasPrefix(reply, "stream: ") && strings.HasSuffix(reply, " FOUND"):
		sig := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(reply, "stream: "), " FOUND"))
		if sig == "" {
			break
		}
		return Result{Infected: true, Signature: sig}, nil
	}
	return Result{}, c.errorf("INSTREAM: unrecognised reply %q", reply)
}

// command sends a null-terminated command without payload and returns the reply.
func (c *Clamd) command(ctx context.Context, cmd string) (string, error) {
	conn, done, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer done()
	if _, err := io.WriteString(conn, "z"+cmd+"\x00"); err != nil {
		return "", c.ioError(ctx, cmd+": sending command", err)
	}
	reply, err := readReply(conn)
	if err != nil {
		return "", c.ioError(ctx, cmd+": reading reply", err)
	}
	if strings.HasSuffix(reply, " ERROR") {
		return "", c.errorf("%s: %w", cmd, &ClamdError{Reply: reply})
	}
	return reply, nil
}

// dial connects to clamd, applies the context's deadline to the connection and arranges
// for cancellation of ctx to unblock any pending I/O. done closes the connection.
func (c *Clamd) dial(ctx context.Context) (conn net.Conn, done func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, c.errorf("%w", err)
	}
	d := net.Dialer{Timeout: c.dialTimeout}
	conn, err = d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		return nil, nil, c.ioError(ctx, "connecting", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() {
		_ = conn.SetDeadline(time.Unix(1, 0)) // in the past: fail pending I/O now
	})
	return conn, func() { stop(); conn.Close() }, nil
}

// readReply reads one null-terminated reply. A reply that ends without the terminator
// (connection closed early) is an error: it may be truncated.
func readReply(r io.Reader) (string, error) {
	var buf []byte
	tmp := make([]byte, 256)
	for {
		n, err := r.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if i := bytes.IndexByte(buf, 0); i >= 0 {
			return strings.TrimRight(string(buf[:i]), "\n"), nil
		}
		if len(buf) > maxReplyLen {
			return "", fmt.Errorf("reply longer than %d bytes without terminator", maxReplyLen)
		}
		if err == io.EOF {
			if len(buf) == 0 {
				return "", errors.New("connection closed without a reply")
			}
			return "", fmt.Errorf("connection closed in the middle of reply %q", buf)
		}
		if err != nil {
			return "", err
		}
	}
}

func (c *Clamd) errorf(format string, args ...any) error {
	return fmt.Errorf("scan: clamd %s: "+format, append([]any{c.address}, args...)...)
}

// ioError wraps a network error; when the context is done it names the context error,
// which is the cause that matters to callers (deadline vs. broken clamd).
func (c *Clamd) ioError(ctx context.Context, op string, err error) error {
	cerr := ctx.Err()
	if cerr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// The connection deadline is the context's; its timer may not have fired yet.
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			cerr = context.DeadlineExceeded
		}
	}
	if cerr != nil {
		return c.errorf("%s: %w (%v)", op, cerr, err)
	}
	return c.errorf("%s: %w", op, err)
}
