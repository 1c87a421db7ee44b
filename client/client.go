// Package client is a Go client for the claims API (/api/v1) that pins the
// server's public key: a connection is used only when the certificate the
// server presents carries one of the configured SPKI SHA-256 pins, even if
// a certificate authority the client trusts signed another one. Several
// pins may be given, so a key can be rotated without breaking clients (pin
// the next key before the server switches to it).
//
// `claims serve` prints its pin at start ("SPKI pin (sha256/base64)"); it
// can also be computed from the certificate:
//
//	openssl x509 -in tls-cert.pem -pubkey -noout | openssl pkey -pubin -outform der |
//	  openssl dgst -sha256 -binary | base64
//
// Errors from the API are *Problem values (RFC 9457 problem details).
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrPinMismatch is returned (wrapped) when the server's certificate
// carries none of the pinned keys.
var ErrPinMismatch = errors.New("client: server certificate does not match any pinned key")

// Client calls one claims server. It is safe for concurrent use; it holds
// the session's tokens after Login.
type Client struct {
	base *url.URL
	http *http.Client

	mu      sync.Mutex
	access  string
	refresh string
}

type options struct {
	roots     *x509.CertPool
	pinsOnly  bool
	timeout   time.Duration
	userAgent string
}

// Option configures New.
type Option func(*options)

// WithRootCAs verifies the server's certificate chain against pool instead
// of the system roots (the pin is checked as well).
func WithRootCAs(pool *x509.CertPool) Option { return func(o *options) { o.roots = pool } }

// WithPinsOnly skips certificate-authority and host-name checks and trusts
// the pins alone: for a server with a self-signed certificate. The pin
// still binds the connection to the key (TLS 1.3 proves the server holds
// it), so this is not "insecure", but there is no revocation: rotate the
// key and the pins if it leaks.
func WithPinsOnly() Option { return func(o *options) { o.pinsOnly = true } }

// WithTimeout bounds each request (default 30s).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(o *options) { o.userAgent = ua } }

// ParsePin reads "sha256/<base64 of the SHA-256 of the SubjectPublicKeyInfo>".
func ParsePin(s string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), "sha256/")
	if !ok {
		return out, fmt.Errorf("client: pin %q: want sha256/<base64>", s)
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != sha256.Size {
		return out, fmt.Errorf("client: pin %q: not the base64 of a SHA-256", s)
	}
	copy(out[:], b)
	return out, nil
}

// Pin returns the pin of cert ("sha256/<base64>").
func Pin(cert *x509.Certificate) string {
	h := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256/" + base64.StdEncoding.EncodeToString(h[:])
}

// New returns a client for the server at baseURL (https://host:port) that
// accepts only certificates whose public key matches one of pins. TLS 1.3
// is required.
func New(baseURL string, pins []string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: want https://host[:port]", baseURL)
	}
	if len(pins) == 0 {
		return nil, errors.New("client: at least one pin is required")
	}
	want := map[[sha256.Size]byte]bool{}
	for _, p := range pins {
		h, err := ParsePin(p)
		if err != nil {
			return nil, err
		}
		want[h] = true
	}
	o := options{timeout: 30 * time.Second, userAgent: "claims-go-client/1"}
	for _, f := range opts {
		f(&o)
	}
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    o.roots,
		// Runs after the usual chain and host-name verification (unless
		// WithPinsOnly), on every connection, resumed ones included.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.Version != tls.VersionTLS13 {
				return errors.New("client: TLS 1.3 required")
			}
			if len(cs.PeerCertificates) == 0 {
				return ErrPinMismatch
			}
			if !want[sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)] {
				return fmt.Errorf("%w (server presents %s)", ErrPinMismatch, Pin(cs.PeerCertificates[0]))
			}
			return nil
		},
	}
	if o.pinsOnly {
		tlsConf.InsecureSkipVerify = true // the pin in VerifyConnection is the check
	}
	tr := &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4,
		IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	return &Client{base: u, http: &http.Client{Transport: tr, Timeout: o.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// SetTokens sets the session's tokens (e.g. restored from a keyring).
func (c *Client) SetTokens(access, refresh string) {
	c.mu.Lock()
	c.access, c.refresh = access, refresh
	c.mu.Unlock()
}

// Tokens returns the session's current tokens.
func (c *Client) Tokens() (access, refresh string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.access, c.refresh
}

// Problem is an error answer from the API (RFC 9457).
type Problem struct {
	Status    int          `json:"status"`
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Detail    string       `json:"detail"`
	Instance  string       `json:"instance,omitempty"`
	RequestID string       `json:"requestId,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
	Allowed   []string     `json:"allowed,omitempty"`
	// RetryAfter is the Retry-After header (429, locked accounts).
	RetryAfter time.Duration `json:"-"`
}

// FieldError names an invalid field and the rule it broke.
type FieldError struct {
	Field  string `json:"field"`
	Rule   string `json:"rule"`
	Detail string `json:"detail"`
}

func (p *Problem) Error() string {
	return fmt.Sprintf("claims API: %d %s: %s", p.Status, p.Title, p.Detail)
}

// Kind is the last part of the problem type: not_found, conflict, ...
func (p *Problem) Kind() string { return p.Type[strings.LastIndex(p.Type, ":")+1:] }

// Do sends a request with the session's access token and decodes a JSON
// answer into out (nil: discard). headers are name, value pairs. A non-2xx
// answer is a *Problem. It returns the response headers.
func (c *Client) Do(ctx context.Context, method, path string, body, out any, headers ...string) (http.Header, error) {
	access, _ := c.Tokens()
	return c.do(ctx, method, path, access, body, out, headers...)
}

func (c *Client) do(ctx context.Context, method, path, token string, body, out any, headers ...string) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 32<<20))
	if err != nil {
		return res.Header, err
	}
	if res.StatusCode >= 300 {
		p := &Problem{Status: res.StatusCode, Title: http.StatusText(res.StatusCode)}
		if ct, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); ct == "application/problem+json" {
			_ = json.Unmarshal(raw, p)
		}
		if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil {
			p.RetryAfter = time.Duration(s) * time.Second
		}
		return res.Header, p
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.Header, fmt.Errorf("client: decode %s %s: %w", method, path, err)
		}
	}
	return res.Header, nil
}
