// Command claims-load puts a bounded load on a local claims server: it
// signs in as a customer, then concurrent clients file claims on one of
// the customer's policies and list the customer's claims, and it prints
// throughput and p50/p90/p99/max latency per operation.
//
//	go run ./cmd/claims-load -addr https://127.0.0.1:8443 -cacert data/tls-cert.pem \
//	    -concurrency 50 -duration 20s -email alice@example.com -password-file pw.txt -policy AUTO-1001
//
// It only ever talks to this machine: the address must be 127.0.0.1,
// localhost or ::1, every connection is checked to reach a loopback
// address, proxies from the environment are ignored and redirects are not
// followed. Each run is bounded by -duration and -max-requests.
//
// By default each client sends its next request as soon as the previous
// one answered (closed loop: latency includes queueing behind the other
// clients). With -rate R the clients share a schedule of R requests per
// second and latency is measured from each request's scheduled time, so a
// stalled server is not hidden (no coordinated omission).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "claims-load:", err)
		os.Exit(1)
	}
}

type config struct {
	addr, cacert, email, passwordFile, policy string
	concurrency, maxRequests, listLimit       int
	duration, timeout                         time.Duration
	listRatio, rate                           float64
	incidentFrom, incidentTo                  time.Time
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("claims-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	from := fs.String("incident-from", today.AddDate(0, 0, -29).Format(time.DateOnly), "first incident date of filed claims (must be inside the policy period)")
	to := fs.String("incident-to", today.Format(time.DateOnly), "last incident date of filed claims (not in the future)")
	fs.StringVar(&c.addr, "addr", "https://127.0.0.1:8443", "server base URL; loopback only (127.0.0.1, localhost, ::1)")
	fs.StringVar(&c.cacert, "cacert", "", "PEM certificate to trust (e.g. data/tls-cert.pem of a self-signed server); default: system roots")
	fs.StringVar(&c.email, "email", "", "customer email to sign in with")
	fs.StringVar(&c.passwordFile, "password-file", "", "file whose first line is the customer's password")
	fs.StringVar(&c.policy, "policy", "", "policy number of the customer's to file claims on")
	fs.IntVar(&c.concurrency, "concurrency", 50, "concurrent clients")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "how long to run")
	fs.IntVar(&c.maxRequests, "max-requests", 200000, "stop after this many requests in all")
	fs.Float64Var(&c.listRatio, "list-ratio", 0.5, "fraction of requests that list claims (the rest file one); 0 = only file, 1 = only list")
	fs.IntVar(&c.listLimit, "list-limit", 50, "page size of list requests (1-200)")
	fs.Float64Var(&c.rate, "rate", 0, "total requests per second across clients (0 = each client as fast as it can)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "per-request timeout")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if c.incidentFrom, err = time.Parse(time.DateOnly, *from); err != nil {
		return c, fmt.Errorf("-incident-from: %w", err)
	}
	if c.incidentTo, err = time.Parse(time.DateOnly, *to); err != nil {
		return c, fmt.Errorf("-incident-to: %w", err)
	}
	switch {
	case c.email == "" || c.passwordFile == "":
		return c, errors.New("-email and -password-file are required")
	case c.policy == "" && c.listRatio < 1:
		return c, errors.New("-policy is required unless -list-ratio 1")
	case c.concurrency < 1 || c.concurrency > 1000:
		return c, errors.New("-concurrency must be between 1 and 1000")
	case c.duration <= 0 || c.duration > time.Hour:
		return c, errors.New("-duration must be positive and at most 1h")
	case c.maxRequests < 1:
		return c, errors.New("-max-requests must be positive")
	case c.listRatio < 0 || c.listRatio > 1:
		return c, errors.New("-list-ratio must be between 0 and 1")
	case c.listLimit < 1 || c.listLimit > 200:
		return c, errors.New("-list-limit must be between 1 and 200")
	case c.rate < 0:
		return c, errors.New("-rate must not be negative")
	case c.incidentTo.Before(c.incidentFrom):
		return c, errors.New("-incident-to is before -incident-from")
	}
	return c, nil
}

// loopbackHosts are the only host names accepted in -addr.
var loopbackHosts = map[string]bool{"127.0.0.1": true, "localhost": true, "::1": true}

// checkLoopback refuses any address that is not this machine's loopback.
func checkLoopback(addr string) (*url.URL, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("-addr: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("-addr %q: scheme must be https (or http)", addr)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("-addr %q: give only scheme://host:port", addr)
	}
	if !loopbackHosts[strings.ToLower(u.Hostname())] {
		return nil, fmt.Errorf("-addr %q: refusing to load a host other than 127.0.0.1, localhost or ::1 (load tests may only target this machine)", addr)
	}
	u.Path = ""
	return u, nil
}

// loopbackDialer dials like net.Dialer but refuses a connection whose peer
// is not a loopback address (e.g. "localhost" resolving elsewhere).
func loopbackDialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		ta, ok := c.RemoteAddr().(*net.TCPAddr)
		if !ok || !ta.IP.IsLoopback() {
			c.Close()
			return nil, fmt.Errorf("refusing connection to non-loopback peer %v", c.RemoteAddr())
		}
		return c, nil
	}
}

func newClient(c config) (*http.Client, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS13}
	if c.cacert != "" {
		pem, err := os.ReadFile(c.cacert)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", c.cacert)
		}
		tlsConf.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:               nil, // never through a proxy: the load stays on loopback
		DialContext:         loopbackDialer(),
		TLSClientConfig:     tlsConf,
		MaxIdleConns:        2 * c.concurrency,
		MaxIdleConnsPerHost: 2 * c.concurrency, // one keep-alive connection per client
		IdleConnTimeout:     time.Minute,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: c.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// session holds the customer's access token and signs in again when the
// server answers 401 (tokens are short-lived).
type session struct {
	client          *http.Client
	base            string
	email, password string

	mu    sync.Mutex
	token string
	gen   int
}

func (s *session) current() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token, s.gen
}

// login signs in unless another client already did after generation gen.
func (s *session) login(ctx context.Context, gen int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return nil
	}
	body, _ := json.Marshal(map[string]string{"email": s.email, "password": s.password})
	req, err := http.NewRequestWithContext(ctx, "POST", s.base+"/api/v1/auth/login", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("sign in as %s: status %d: %s", s.email, res.StatusCode, bytes.TrimSpace(raw))
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(raw, &tok); err != nil || tok.AccessToken == "" {
		return fmt.Errorf("sign in: no access_token in %s", raw)
	}
	s.token, s.gen = tok.AccessToken, s.gen+1
	return nil
}

// op is one kind of request.
type op int

const (
	opCreate op = iota
	opList
)

func (o op) String() string { return [...]string{"create claim", "list claims"}[o] }

// result is one finished request.
type result struct {
	op      op
	latency time.Duration
	err     string // "" = success
}

func run(args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	base, err := checkLoopback(c.addr)
	if err != nil {
		return err
	}
	pwFile, err := os.Open(c.passwordFile)
	if err != nil {
		return err
	}
	line, err := bufio.NewReader(pwFile).ReadString('\n')
	pwFile.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read %s: %w", c.passwordFile, err)
	}
	client, err := newClient(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	sess := &session{client: client, base: base.String(), email: c.email, password: strings.TrimRight(line, "\r\n")}
	if err := sess.login(ctx, 0); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, c.duration)
	defer cancel()
	var issued atomic.Int64
	// take reserves one request of the budget; with -rate it also waits for
	// the request's slot and returns its scheduled time.
	var schedule chan time.Time
	if c.rate > 0 {
		schedule = make(chan time.Time, c.concurrency)
		go func() {
			defer close(schedule)
			interval := time.Duration(float64(time.Second) / c.rate)
			next := time.Now()
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(next)):
				}
				select {
				case schedule <- next:
				case <-ctx.Done():
					return
				}
				next = next.Add(interval)
			}
		}()
	}
	take := func() (time.Time, bool) {
		if issued.Add(1) > int64(c.maxRequests) {
			return time.Time{}, false
		}
		if schedule == nil {
			return time.Now(), ctx.Err() == nil
		}
		t, ok := <-schedule
		return t, ok && ctx.Err() == nil
	}

	days := int(c.incidentTo.Sub(c.incidentFrom).Hours()/24) + 1
	listPath := fmt.Sprintf("/api/v1/claims?limit=%d", c.listLimit)
	var (
		mu  sync.Mutex
		all []result
		wg  sync.WaitGroup
		seq atomic.Int64
	)
	fmt.Fprintf(stderr, "claims-load: %d clients against %s for %v (at most %d requests)...\n", c.concurrency, base, c.duration, c.maxRequests)
	start := time.Now()
	for range c.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
			var mine []result
			defer func() {
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			}()
			for {
				sched, ok := take()
				if !ok {
					return
				}
				o := opCreate
				if rng.Float64() < c.listRatio {
					o = opList
				}
				var method, path string
				var body []byte
				want := http.StatusOK
				if o == opCreate {
					i := seq.Add(1)
					day := c.incidentFrom.AddDate(0, 0, rng.IntN(days)).Format(time.DateOnly)
					body, _ = json.Marshal(map[string]any{"policyNumber": c.policy, "type": "collision", "incidentDate": day,
						"description": fmt.Sprintf("Load test claim %d", i), "location": "Loopback", "currency": "USD", "submit": true,
						"lines": []map[string]string{
							{"category": "vehicle", "description": "Bumper", "amount": fmt.Sprintf("%d.%02d", 100+rng.IntN(900), rng.IntN(100)), "serviceDate": day},
							{"category": "towing", "description": "Tow", "amount": "150.00"}}})
					method, path, want = "POST", "/api/v1/claims", http.StatusCreated
				} else {
					method, path = "GET", listPath
				}
				r := result{op: o}
				for attempt := 0; ; attempt++ {
					tok, gen := sess.current()
					status, raw, err := send(ctx, client, method, base.String()+path, tok, body)
					switch {
					case err != nil:
						r.err = err.Error()
					case status == http.StatusUnauthorized && attempt == 0:
						if err := sess.login(ctx, gen); err != nil {
							r.err = err.Error()
							break
						}
						continue
					case status != want:
						r.err = fmt.Sprintf("status %d: %.200s", status, bytes.TrimSpace(raw))
					}
					break
				}
				r.latency = time.Since(sched)
				if ctx.Err() != nil && r.err != "" {
					return // cut off by the end of the run: not a server error
				}
				mine = append(mine, r)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	report(stdout, c, all, elapsed)
	return nil
}

func send(ctx context.Context, client *http.Client, method, url, token string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res.StatusCode, raw, err
}

// report prints one row per operation and a total.
func report(w io.Writer, c config, all []result, elapsed time.Duration) {
	mode := "closed loop"
	if c.rate > 0 {
		mode = fmt.Sprintf("open loop at %.0f req/s, latency from the scheduled time", c.rate)
	}
	fmt.Fprintf(w, "%d clients, %v, %s\n", c.concurrency, elapsed.Round(time.Millisecond), mode)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tok\terrors\tok/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	errs := map[string]int{}
	row := func(name string, keep func(result) bool) {
		var lat []time.Duration
		nerr := 0
		for _, r := range all {
			if !keep(r) {
				continue
			}
			if r.err != "" {
				nerr++
				errs[r.op.String()+": "+r.err]++
				continue
			}
			lat = append(lat, r.latency)
		}
		if len(lat)+nerr == 0 {
			return
		}
		slices.Sort(lat)
		q := func(p float64) string {
			if len(lat) == 0 {
				return "-"
			}
			i := max(int(math.Ceil(p*float64(len(lat))))-1, 0)
			return fmt.Sprintf("%.1f", float64(lat[i])/float64(time.Millisecond))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t\n", name, len(lat), nerr,
			float64(len(lat))/elapsed.Seconds(), q(.50), q(.90), q(.99), q(1))
	}
	row(opCreate.String(), func(r result) bool { return r.op == opCreate })
	row(opList.String(), func(r result) bool { return r.op == opList })
	tw.Flush()
	var total, failed int
	for _, r := range all {
		total++
		if r.err != "" {
			failed++
		}
	}
	fmt.Fprintf(w, "total: %d requests, %d failed, %.0f req/s\n", total, failed, float64(total)/elapsed.Seconds())
	if len(errs) > 0 {
		keys := make([]string, 0, len(errs))
		for k := range errs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fmt.Fprintln(w, "errors:")
		for i, k := range keys {
			if i == 10 {
				fmt.Fprintf(w, "  ... and %d more kinds\n", len(keys)-10)
				break
			}
			fmt.Fprintf(w, "  %dx %s\n", errs[k], k)
		}
	}
}
