package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

var testPepper = []byte("0123456789abcdef-test-pepper-32b")

// testHasher uses the minimum cost: the tests are about behaviour, not
// strength (TestDefaultCost and BenchmarkHash cover the real cost).
func testHasher(t testing.TB) *Hasher {
	t.Helper()
	return NewHasher(testPepper, bcrypt.MinCost, 4)
}

func mustHash(t testing.TB, h *Hasher, pw string) string {
	t.Helper()
	s, err := h.Hash(context.Background(), pw)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustVerify(t testing.TB, h *Hasher, hash, pw string) bool {
	t.Helper()
	ok, err := h.Verify(context.Background(), hash, pw)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestHashVerify(t *testing.T) {
	h := testHasher(t)
	pw := "correct horse battery staple"
	hash := mustHash(t, h, pw)
	if !strings.HasPrefix(hash, "$2a$04$") {
		t.Fatalf("hash = %q", hash)
	}
	if hash2 := mustHash(t, h, pw); hash2 == hash {
		t.Fatal("hash not salted")
	}
	if !mustVerify(t, h, hash, pw) {
		t.Fatal("right password refused")
	}
	for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple", pw + " "} {
		if mustVerify(t, h, hash, wrong) {
			t.Fatalf("wrong password %q accepted", wrong)
		}
	}
	if strings.Contains(hash, pw) {
		t.Fatal("hash contains password")
	}
}

func TestLongPasswordsAreNotTruncated(t *testing.T) {
	h := testHasher(t)
	base := strings.Repeat("x", 72)
	a, b := base+"A", base+"B" // 73 bytes, differ only at byte 73
	if mustVerify(t, h, mustHash(t, h, a), b) {
		t.Fatal("73-byte passwords differing after byte 72 matched (bcrypt truncation)")
	}
	long := []byte(strings.Repeat("y", 220))
	c := string(long)
	long[199] = 'z' // differ at byte 200
	d := string(long)
	hc := mustHash(t, h, c)
	if mustVerify(t, h, hc, d) {
		t.Fatal("passwords differing at byte 200 matched")
	}
	if !mustVerify(t, h, hc, c) {
		t.Fatal("220-byte password refused")
	}
}

func TestPepperMatters(t *testing.T) {
	h1 := testHasher(t)
	h2 := NewHasher([]byte("another pepper"), bcrypt.MinCost, 1)
	hash := mustHash(t, h1, "a perfectly fine passphrase")
	if mustVerify(t, h2, hash, "a perfectly fine passphrase") {
		t.Fatal("hash verified under a different pepper")
	}
	// Proves the pre-hash is applied: raw bcrypt of the password must not
	// match.
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("a perfectly fine passphrase")) == nil {
		t.Fatal("password reached bcrypt un-prehashed")
	}
}

func TestUnicodeNormalisationInHash(t *testing.T) {
	h := testHasher(t)
	nfc := "caf\u00e9 au lait, s'il vous pla\u00eet"
	nfd := "cafe\u0301 au lait, s'il vous plai\u0302t"
	if !mustVerify(t, h, mustHash(t, h, nfc), nfd) {
		t.Fatal("NFD input did not verify against NFC-hashed password")
	}
}

func TestTooLongPassword(t *testing.T) {
	h := testHasher(t)
	long := strings.Repeat("a", MaxPasswordBytes+1)
	_, err := h.Hash(context.Background(), long)
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Rule != RuleMaxLength {
		t.Fatalf("Hash(257 bytes) err = %v", err)
	}
	if _, err := h.Hash(context.Background(), long[:MaxPasswordBytes]); err != nil {
		t.Fatalf("Hash(256 bytes) = %v", err)
	}
	hash := mustHash(t, h, "some password here")
	if ok, err := h.Verify(context.Background(), hash, long); ok || err != nil {
		t.Fatalf("Verify(257 bytes) = %v, %v", ok, err)
	}
}

func TestMalformedHash(t *testing.T) {
	h := testHasher(t)
	for _, bad := range []string{"", "plaintext", "$2a$04$short"} {
		if ok, err := h.Verify(context.Background(), bad, "x"); ok || err == nil {
			t.Errorf("Verify(%q) = %v, %v; want false, error", bad, ok, err)
		}
	}
}

func TestDefaultCost(t *testing.T) {
	if testing.Short() {
		t.Skip("bcrypt cost 12")
	}
	h := NewHasher(testPepper, 0, 1)
	hash := mustHash(t, h, "default cost password")
	if c, _ := bcrypt.Cost([]byte(hash)); c != DefaultCost || DefaultCost != 12 {
		t.Fatalf("cost = %d", c)
	}
	if c, _ := bcrypt.Cost(h.dummyHash()); c != DefaultCost {
		t.Fatalf("dummy cost = %d", c)
	}
	if h.NeedsRehash(hash) {
		t.Fatal("NeedsRehash on current cost")
	}
	if !h.NeedsRehash(mustHash(t, testHasher(t), "x")) || !h.NeedsRehash("junk") {
		t.Fatal("NeedsRehash missed a cost change")
	}
}

func TestDummyVerify(t *testing.T) {
	h := testHasher(t)
	if c, _ := bcrypt.Cost(h.dummyHash()); c != bcrypt.MinCost {
		t.Fatalf("dummy hash cost %d, want the hasher's", c)
	}
	h.DummyVerify(context.Background(), "anything")
	h.DummyVerify(context.Background(), strings.Repeat("a", 1000))
	// It must go through the same pool as Verify: with the pool full it
	// waits, and gives up with the context.
	full := NewHasher(nil, bcrypt.MinCost, 1)
	full.sem <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	full.DummyVerify(ctx, "x")
	if time.Since(start) < 15*time.Millisecond {
		t.Fatal("DummyVerify did not wait for the pool")
	}
}

func TestContextCancelsWaitingForPool(t *testing.T) {
	h := NewHasher(testPepper, bcrypt.MinCost, 1)
	hash := mustHash(t, h, "pool password")
	h.sem <- struct{}{} // occupy the only slot

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if ok, err := h.Verify(ctx, hash, "pool password"); ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Verify = %v, %v; want deadline exceeded", ok, err)
	}
	if _, err := h.Hash(ctx, "pool password"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Hash err = %v", err)
	}
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	<-h.sem // free the slot: an already-cancelled ctx must still be refused
	if _, err := h.Verify(cancelled, hash, "pool password"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with cancelled ctx err = %v", err)
	}
	if !mustVerify(t, h, hash, "pool password") {
		t.Fatal("slot not released")
	}
}

func TestConcurrencyBound(t *testing.T) {
	const limit = 2
	h := NewHasher(testPepper, bcrypt.MinCost, limit)
	hash := mustHash(t, h, "bounded")
	// Wrap the semaphore observation: count holders by sampling len(sem).
	var maxSeen atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				if n := int64(len(h.sem)); n > maxSeen.Load() {
					maxSeen.Store(n)
				}
			}
		}
	})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() { _, _ = h.Verify(context.Background(), hash, "bounded") })
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	if cap(h.sem) != limit || maxSeen.Load() > limit {
		t.Fatalf("cap %d, max in flight %d", cap(h.sem), maxSeen.Load())
	}
	if cap(NewHasher(nil, bcrypt.MinCost, 0).sem) < 1 {
		t.Fatal("concurrency 0 must default to GOMAXPROCS")
	}
}

func TestNewHasherRejectsBadCost(t *testing.T) {
	for _, cost := range []int{-1, bcrypt.MinCost - 1, bcrypt.MaxCost + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("cost %d accepted", cost)
				}
			}()
			NewHasher(testPepper, cost, 1)
		}()
	}
}

func TestHasherRedacted(t *testing.T) {
	h := testHasher(t)
	type holder struct {
		H      *Hasher
		hidden *Hasher
	}
	w := holder{h, h}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d", "%q"} {
		out = append(out, fmt.Sprintf(verb, h), fmt.Sprintf(verb, w), fmt.Sprintf(verb, &w), fmt.Sprintf(verb, *h))
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "h", h, "w", w)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "h", h, "w", w)
	out = append(out, buf.String())
	secrets := []string{string(testPepper[:12]), fmt.Sprintf("%x", testPepper[:6]), strings.Trim(fmt.Sprint(testPepper[:5]), "[]")}
	for _, o := range out {
		for _, s := range secrets {
			if strings.Contains(o, s) {
				t.Fatalf("pepper leaked in %q", o)
			}
		}
	}
}

func BenchmarkHash(b *testing.B) {
	h := NewHasher(testPepper, 12, 1)
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Hash(ctx, "benchmark passphrase 1234"); err != nil {
			b.Fatal(err)
		}
	}
}
