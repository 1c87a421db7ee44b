package workflow_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/auth"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
	"github.com/openclaims/claims/internal/workflow"
)

var ctx = context.Background()

const pw = "correct horse battery staple 42"

// cluster is one installation served by several nodes: each node has its
// own connection pool (its own *store.DB) and Service, as separate
// `claims serve` processes would, and all share the database and the keys.
type cluster struct {
	nodes    []*workflow.Service
	db       *store.DB // node 0's pool, for checks
	customer claims.Principal
	procs    []claims.Principal
	policy   claims.Policy
	today    claims.Date
}

func newCluster(t *testing.T, d store.Dialect, nodes, procs int, limitMinor int64) *cluster {
	t.Helper()
	url := storetest.URL(t, d)
	keys := storetest.Keys(t)
	signing := auth.GenerateSigningKey("s1")
	pepper := []byte("test-pepper-identical-on-every-node")
	c := &cluster{today: claims.DateOf(time.Now().UTC())}
	for i := 0; i < nodes; i++ {
		db, err := store.Open(ctx, url, store.Options{Keys: keys.Ring, Index: keys.Index})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		tokens, err := auth.NewTokens("claims", "claims-api", 10*time.Minute, nil, signing)
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, workflow.New(workflow.Config{DB: db, Hasher: auth.NewHasher(pepper, 10, 0), Tokens: tokens}))
		if i == 0 {
			c.db = db
		}
	}
	s := c.nodes[0]
	cu, err := s.Register(ctx, workflow.Registration{Email: "holder@example.com", Password: pw, FullName: "Holder"})
	if err != nil {
		t.Fatal(err)
	}
	c.customer = claims.Principal{UserID: cu.ID, Role: claims.RoleCustomer, HolderID: cu.HolderID}
	for i := 0; i < procs; i++ {
		u, err := s.CreateUser(ctx, "", fmt.Sprintf("proc%d@example.com", i), pw, claims.RoleClaimsProcessor)
		if err != nil {
			t.Fatal(err)
		}
		c.procs = append(c.procs, claims.Principal{UserID: u.ID, Role: claims.RoleClaimsProcessor})
	}
	c.policy = claims.Policy{ID: claims.NewID(), Number: "AUTO-" + string(claims.NewID()[:8]), HolderID: cu.HolderID,
		ProductLine: claims.LineAuto, Status: claims.PolicyActive,
		EffectiveDate: c.today.AddDays(-300), ExpiryDate: c.today.AddDays(60),
		CoverageLimit: usd(limitMinor), Deductible: usd(0), Premium: usd(60000), CoinsuranceBP: 10000}
	c.policy.Number = claims.NormalizePolicyNumber(c.policy.Number)
	if err := c.db.InTx(ctx, func(tx *store.Tx) error { return tx.InsertPolicy(ctx, c.policy) }); err != nil {
		t.Fatal(err)
	}
	return c
}

func usd(minor int64) claims.Money { return claims.Money{Minor: minor, Currency: "USD"} }

// input is a one-line claim of amount on incident day today-daysAgo; each
// day gives a distinct line (category|service date|amount), so the lines
// of different claims are not duplicates of each other.
func (c *cluster) input(daysAgo int, amount int64) claims.NewClaimInput {
	day := c.today.AddDays(-daysAgo)
	return claims.NewClaimInput{PolicyNumber: c.policy.Number, Type: "collision", IncidentDate: day,
		Description: "Collision " + day.String(), Currency: "USD",
		Lines: []claims.NewLineInput{{Category: "vehicle", Description: "Repair", ServiceDate: day, Amount: usd(amount)}}}
}

// fileAssigned files and submits a claim and has proc take it.
func (c *cluster) fileAssigned(t *testing.T, in claims.NewClaimInput, proc claims.Principal) claims.Claim {
	t.Helper()
	cl, _, err := c.nodes[0].FileClaim(ctx, c.customer, workflow.FileRequest{Input: in, Submit: true})
	if err != nil {
		t.Fatal(err)
	}
	if cl, err = c.nodes[0].Assign(ctx, proc, cl.ID, 0, ""); err != nil {
		t.Fatal(err)
	}
	if cl.Status != claims.StatusUnderReview || cl.AssigneeID != proc.UserID {
		t.Fatalf("assigned claim: %s, %s", cl.Status, cl.AssigneeID)
	}
	return cl
}

func (c *cluster) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	if c.db.Dialect() == store.Postgres {
		for i := 1; i <= len(args); i++ {
			q = replaceFirst(q, "?", fmt.Sprintf("$%d", i))
		}
	}
	var n int
	if err := c.db.SQL().QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func replaceFirst(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	return s
}

// parallel runs fn(i) for i in [0, n) from n goroutines released together.
func parallel(n int, fn func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// TestConcurrentDecide: the assigned processor's decision arrives eight
// times at once, spread over two nodes (a double click, a retry, two tabs).
// Exactly one is recorded; the others are told the claim changed
// (PreconditionFailed, when they sent the version they saw) or that it is
// no longer open to a decision (Conflict).
func TestConcurrentDecide(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		t.Parallel()
		c := newCluster(t, d, 2, 1, 100000)
		proc := c.procs[0]
		cl := c.fileAssigned(t, c.input(3, 40000), proc)

		const n = 8
		errs := make([]error, n)
		results := make([]claims.Claim, n)
		started := time.Now()
		parallel(n, func(i int) {
			ifMatch := int64(0)
			if i%2 == 0 {
				ifMatch = cl.Version // the ETag this client saw
			}
			results[i], errs[i] = c.nodes[i%2].Decide(ctx, proc, cl.ID, ifMatch,
				workflow.DecideRequest{Outcome: claims.OutcomeApprove, Reason: fmt.Sprintf("attempt %d", i)})
		})
		t.Logf("%d concurrent decisions on %s in %v", n, d, time.Since(started))
		wins := 0
		for i, err := range errs {
			switch k := claims.KindOf(err); {
			case err == nil:
				wins++
				if results[i].Status != claims.StatusApproved || results[i].Payable != usd(40000) {
					t.Errorf("winner %d: %s %s", i, results[i].Status, results[i].Payable)
				}
			case k == claims.PreconditionFailed || k == claims.Conflict:
			default:
				t.Errorf("attempt %d: %v (kind %v), want PreconditionFailed or Conflict", i, err, k)
			}
		}
		if wins != 1 {
			t.Fatalf("%d decisions won, want exactly 1: %v", wins, errs)
		}
		if got := c.count(t, `SELECT COUNT(*) FROM claim_transitions WHERE claim_id = ? AND to_status = ?`, cl.ID, claims.StatusApproved); got != 1 {
			t.Fatalf("%d transitions to approved, want 1", got)
		}
		if got := c.count(t, `SELECT COUNT(*) FROM claims WHERE id = ? AND status = 'approved' AND version = ? AND payable = 40000`, cl.ID, cl.Version+1); got != 1 {
			t.Fatalf("claim row not approved exactly once (version %d expected)", cl.Version+1)
		}
		if got := c.count(t, `SELECT COUNT(*) FROM audit_log WHERE object_id = ? AND action = 'claim.decided' AND outcome = 'ok'`, cl.ID); got != 1 {
			t.Fatalf("%d successful decisions audited, want 1", got)
		}
		if _, err := c.db.VerifyAudit(ctx); err != nil {
			t.Fatalf("audit chain after concurrent decisions: %v", err)
		}
	})
}

// TestConcurrentLimit: ten claims of 300.00 on one policy with a 1000.00
// limit, decided at the same moment by two processors over two nodes. The
// period's payable total is exactly the limit: three claims in full, one
// for the 100.00 left, six for nothing.
func TestConcurrentLimit(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		t.Parallel()
		c := newCluster(t, d, 2, 2, 100000)
		const n = 10
		var list []claims.Claim
		for i := 0; i < n; i++ {
			list = append(list, c.fileAssigned(t, c.input(i+1, 30000), c.procs[i%2]))
		}
		errs := make([]error, n)
		results := make([]claims.Claim, n)
		started := time.Now()
		parallel(n, func(i int) {
			results[i], errs[i] = c.nodes[i%2].Decide(ctx, c.procs[i%2], list[i].ID, list[i].Version,
				workflow.DecideRequest{Outcome: claims.OutcomeApprove})
		})
		t.Logf("%d concurrent decisions on one policy on %s in %v", n, d, time.Since(started))
		var sum int64
		byStatus := map[claims.Status]int{}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("decision %d: %v", i, err)
			}
			sum += results[i].Payable.Minor
			byStatus[results[i].Status]++
		}
		if sum != 100000 {
			t.Errorf("payable over the policy = %d, want exactly 100000 (the limit)", sum)
		}
		if byStatus[claims.StatusApproved] != 3 || byStatus[claims.StatusPartiallyApproved] != 1 || byStatus[claims.StatusDenied] != 6 {
			t.Errorf("statuses %v, want 3 approved, 1 partially approved, 6 denied", byStatus)
		}
		if got := c.count(t, `SELECT COALESCE(SUM(payable), 0) FROM claims WHERE policy_id = ?`, c.policy.ID); got != 100000 {
			t.Errorf("stored payable over the policy = %d, want 100000", got)
		}
		if got := c.count(t, `SELECT COUNT(*) FROM claim_transitions t JOIN claims c ON c.id = t.claim_id
			WHERE c.policy_id = ? AND t.to_status IN ('approved', 'partially_approved', 'denied')`, c.policy.ID); got != n {
			t.Errorf("%d decision transitions, want %d", got, n)
		}
		if _, err := c.db.VerifyAudit(ctx); err != nil {
			t.Fatalf("audit chain: %v", err)
		}
	})
}

// TestConcurrentIdempotentFile: a client retries a claim submission eight
// times at once with one Idempotency-Key, over two nodes. One claim exists
// and every answer carries its id.
func TestConcurrentIdempotentFile(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		t.Parallel()
		c := newCluster(t, d, 2, 0, 100000)
		in := c.input(2, 12345)
		req := workflow.FileRequest{Input: in, Submit: true, IdempotencyKey: "retry-me",
			RequestHash: workflow.RequestHash("POST", "/api/v1/claims", []byte(`{"same":"body"}`))}
		const n = 8
		errs := make([]error, n)
		ids := make([]claims.ID, n)
		replayed := make([]bool, n)
		parallel(n, func(i int) {
			var cl claims.Claim
			cl, replayed[i], errs[i] = c.nodes[i%2].FileClaim(ctx, c.customer, req)
			ids[i] = cl.ID
		})
		fresh := 0
		for i, err := range errs {
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if ids[i] == "" || ids[i] != ids[0] {
				t.Errorf("request %d answered claim %q, request 0 answered %q", i, ids[i], ids[0])
			}
			if !replayed[i] {
				fresh++
			}
		}
		if fresh != 1 {
			t.Errorf("%d requests created a claim, want 1 (the others replayed)", fresh)
		}
		if got := c.count(t, `SELECT COUNT(*) FROM claims WHERE policy_id = ?`, c.policy.ID); got != 1 {
			t.Fatalf("%d claims exist, want 1", got)
		}
		if got := c.count(t, `SELECT COUNT(*) FROM audit_log WHERE action = 'claim.filed'`); got != 1 {
			t.Errorf("%d claim.filed audit entries, want 1", got)
		}
		// The same key with another body is refused, not replayed.
		other := req
		other.RequestHash = workflow.RequestHash("POST", "/api/v1/claims", []byte(`{"other":"body"}`))
		if _, _, err := c.nodes[1].FileClaim(ctx, c.customer, other); claims.KindOf(err) != claims.Invalid {
			t.Errorf("key reused with another body: %v", err)
		}
	})
}

// TestConcurrentAuditAppend: many transactions from two nodes append to the
// audit chain at once, starting from an empty log (no head row yet); the
// chain stays whole.
func TestConcurrentAuditAppend(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		t.Parallel()
		url, keys := storetest.URL(t, d), storetest.Keys(t)
		var dbs []*store.DB
		for i := 0; i < 2; i++ {
			db, err := store.Open(ctx, url, store.Options{Keys: keys.Ring, Index: keys.Index})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			dbs = append(dbs, db)
		}
		const n = 16
		errs := make([]error, n)
		parallel(n, func(i int) {
			errs[i] = dbs[i%2].InTx(ctx, func(tx *store.Tx) error {
				return tx.AppendAudit(ctx, claims.AuditEntry{ActorID: "a", Action: "test", ObjectID: fmt.Sprint(i)})
			})
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("append %d: %v", i, err)
			}
		}
		if got, err := dbs[0].VerifyAudit(ctx); err != nil || got != n {
			t.Fatalf("VerifyAudit = %d, %v; want %d", got, err, n)
		}
	})
}
