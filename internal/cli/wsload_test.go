package cli_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/openclaims/claims/internal/store"
)

// TestWSLoad is the live channel's soak (docs/live.md, "Capacity"), not a
// regular test: it runs only when CLAIMS_WSLOAD is set to a socket count.
//
//	CLAIMS_WSLOAD=10000 go test ./internal/cli -run '^TestWSLoad$' -v -timeout 20m
//
// The server runs in this process (so runtime.MemStats is the server's);
// the sockets are opened by a child process (this test binary again, in
// TestWSLoadClients), all on loopback. While they are open, messages are
// posted through the API at CLAIMS_WSLOAD_RATE per second (default 20) for
// CLAIMS_WSLOAD_SECONDS (default 30); every message fans out to the
// sockets of its customer. The child records each event's delivery
// latency (receipt minus the event's commit-side timestamp).
func TestWSLoad(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CLAIMS_WSLOAD"))
	if n <= 0 {
		t.Skip("set CLAIMS_WSLOAD=<sockets> to run the live-channel soak")
	}
	rate := envInt("CLAIMS_WSLOAD_RATE", 20)
	seconds := envInt("CLAIMS_WSLOAD_SECONDS", 30)
	const users = 20
	env := newEnv(t, store.SQLite)
	env["CLAIMS_WS_MAX_PER_USER"] = strconv.Itoa(n/users + 1)
	env["CLAIMS_WS_MAX_PER_IP"] = strconv.Itoa(n + 10)
	for _, class := range []string{"AUTH", "UPLOAD", "READ", "WRITE"} {
		env["CLAIMS_RATE_"+class+"_IP"], env["CLAIMS_RATE_"+class+"_USER"] = "off", "off"
	}
	mustRun(t, env, pw+"\n", "user", "create", "--email", "admin@example.com", "--role", "admin", "--password-stdin")
	s := startServer(t, env)
	admin := s.adminSession("admin@example.com")
	type customer struct{ token, claim string }
	var cs []customer
	for i := range users {
		email := fmt.Sprintf("load%d@example.com", i)
		s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": pw, "fullName": "Load Test"}), 202)
		s.verifyEmail(email)
		num := fmt.Sprintf("LOAD-%04d", i)
		s.expect(s.do("POST", "/api/v1/policies", admin, map[string]any{"number": num, "productLine": "auto",
			"effectiveDate": "2026-01-01", "expiryDate": "2026-12-31", "currency": "USD", "coverageLimit": "1000.00",
			"deductible": "0.00", "premium": "1.00", "holderEmail": email}), 201)
		tok := s.login(email, pw)
		id := s.expect(s.do("POST", "/api/v1/claims", tok, map[string]any{"policyNumber": num, "type": "collision",
			"incidentDate": "2026-03-01", "description": "load", "currency": "USD", "submit": true,
			"lines": []map[string]string{{"category": "vehicle", "description": "x", "amount": "10.00"}}}), 201).str("id")
		cs = append(cs, customer{tok, id})
	}
	base := memNow()
	var tokens []string
	for _, c := range cs {
		tokens = append(tokens, c.token)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestWSLoadClients$", "-test.v")
	cmd.Env = append(os.Environ(), "CLAIMS_WSLOAD_CHILD=1", "CLAIMS_WSLOAD_URL="+s.base,
		"CLAIMS_WSLOAD_CERT="+filepath.Join(s.dataDir, "tls-cert.pem"), "CLAIMS_WSLOAD_N="+strconv.Itoa(n),
		"CLAIMS_WSLOAD_TOKENS="+strings.Join(tokens, ","))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var opened loadReport
	for lines.Scan() {
		if b, ok := strings.CutPrefix(lines.Text(), "WSLOAD "); ok {
			_ = json.Unmarshal([]byte(b), &opened)
			break
		}
	}
	t.Logf("child opened %d sockets (%d failed) in %s", opened.Open, opened.Failed, time.Since(start).Round(time.Millisecond))
	held := memNow()

	// Events flowing: rate posts per second, round robin over customers.
	tick := time.NewTicker(time.Second / time.Duration(rate))
	stop := time.After(time.Duration(seconds) * time.Second)
	posted := 0
	peak := held
loop:
	for {
		select {
		case <-tick.C:
			c := cs[posted%len(cs)]
			s.expect(s.do("POST", "/api/v1/claims/"+c.claim+"/messages", c.token, map[string]string{"text": "load"}), 201)
			posted++
			if posted%(rate*5) == 0 {
				if m := memNow(); m.heap > peak.heap {
					peak = m
				}
			}
		case <-stop:
			break loop
		}
	}
	tick.Stop()
	time.Sleep(2 * time.Second) // let the last events arrive
	flowing := memNow()
	stdin.Close() // the child reports and exits
	var final loadReport
	for lines.Scan() {
		if b, ok := strings.CutPrefix(lines.Text(), "WSLOAD "); ok {
			_ = json.Unmarshal([]byte(b), &final)
		}
	}
	_ = cmd.Wait()
	perSocket := func(m mem) float64 { return float64(m.heap-base.heap) / float64(max(opened.Open, 1)) / 1024 }
	t.Logf("RESULT sockets=%d held_at_end=%d failed=%d posted=%d events_received=%d expected=%d",
		opened.Open, final.Open, opened.Failed, posted, final.Events, posted*(n/users))
	t.Logf("RESULT server memory: baseline heap %s sys %s rss %s goroutines %d", mb(base.heap), mb(base.sys), mb(base.rss), base.goroutines)
	t.Logf("RESULT server memory with sockets open (idle): heap %s sys %s rss %s goroutines %d (%.1f KiB heap per socket)",
		mb(held.heap), mb(held.sys), mb(held.rss), held.goroutines, perSocket(held))
	t.Logf("RESULT server memory with events flowing: heap %s (peak sampled %s) sys %s rss %s goroutines %d",
		mb(flowing.heap), mb(peak.heap), mb(flowing.sys), mb(flowing.rss), flowing.goroutines)
	t.Logf("RESULT delivery latency: p50 %s p99 %s max %s (%d samples)", final.P50, final.P99, final.Max, final.Events)
}

type loadReport struct {
	Open, Failed int
	Events       int
	P50, P99     string
	Max          string
}

type mem struct {
	heap, sys, rss uint64
	goroutines     int
}

func memNow() mem {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := mem{heap: ms.HeapInuse + ms.StackInuse, sys: ms.Sys, goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				m.rss = kb << 10
			}
		}
	}
	return m
}

func mb(n uint64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil && n > 0 {
		return n
	}
	return def
}

// TestWSLoadClients is TestWSLoad's child process: it opens the sockets,
// reports, records latencies until its stdin closes, and reports again.
func TestWSLoadClients(t *testing.T) {
	if os.Getenv("CLAIMS_WSLOAD_CHILD") != "1" {
		t.Skip("child of TestWSLoad")
	}
	n, _ := strconv.Atoi(os.Getenv("CLAIMS_WSLOAD_N"))
	tokens := strings.Split(os.Getenv("CLAIMS_WSLOAD_TOKENS"), ",")
	pem, err := os.ReadFile(os.Getenv("CLAIMS_WSLOAD_CERT"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		MaxIdleConnsPerHost: -1}}
	u := "wss" + strings.TrimPrefix(os.Getenv("CLAIMS_WSLOAD_URL"), "https") + "/api/v1/ws"
	var (
		mu        sync.Mutex
		latencies []time.Duration
		open      atomic.Int64
		failed    atomic.Int64
		conns     []*websocket.Conn
		wg        sync.WaitGroup
		sem       = make(chan struct{}, 32)
	)
	ctx, cancel := context.WithCancel(context.Background())
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
			defer dcancel()
			c, _, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPClient: client,
				Subprotocols: []string{"claims.v1", "bearer." + tokens[i%len(tokens)]}})
			if err != nil {
				failed.Add(1)
				return
			}
			if _, _, err := c.Read(dctx); err != nil { // ready
				failed.Add(1)
				return
			}
			if err := c.Write(dctx, websocket.MessageText, []byte(`{"type":"subscribe","scope":"own"}`)); err != nil {
				failed.Add(1)
				return
			}
			if _, _, err := c.Read(dctx); err != nil { // subscribed
				failed.Add(1)
				return
			}
			open.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				defer open.Add(-1)
				for {
					_, b, err := c.Read(ctx)
					if err != nil {
						return
					}
					now := time.Now()
					var m struct{ Type, At string }
					if json.Unmarshal(b, &m) == nil && m.Type == "event" {
						if at, err := time.Parse(time.RFC3339Nano, m.At); err == nil {
							mu.Lock()
							latencies = append(latencies, now.Sub(at))
							mu.Unlock()
						}
					}
				}
			}()
		}()
	}
	wg.Wait()
	report := func(r loadReport) {
		b, _ := json.Marshal(r)
		fmt.Printf("WSLOAD %s\n", b)
	}
	report(loadReport{Open: int(open.Load()), Failed: int(failed.Load())})
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	mu.Lock()
	l := slices.Clone(latencies)
	still := int(open.Load())
	mu.Unlock()
	slices.Sort(l)
	pct := func(p float64) string {
		if len(l) == 0 {
			return "n/a"
		}
		return l[min(len(l)-1, int(float64(len(l))*p))].Round(10 * time.Microsecond).String()
	}
	r := loadReport{Open: still, Failed: int(failed.Load()), Events: len(l), P50: pct(0.50), P99: pct(0.99)}
	if len(l) > 0 {
		r.Max = l[len(l)-1].Round(10 * time.Microsecond).String()
	}
	report(r)
	cancel()
	for _, c := range conns {
		c.CloseNow()
	}
}
