package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"runtime"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// DefaultCost is the bcrypt cost used when NewHasher is given cost 0. 12 is
// roughly 200-300 ms on current server cores: slow enough to make offline
// cracking of a leaked table expensive, fast enough for interactive login
// behind the concurrency limit.
const DefaultCost = 12

// Hasher hashes and verifies passwords with bcrypt over a peppered pre-hash:
//
//	bcrypt( base64( HMAC-SHA256(pepper, NFC(password)) ) )
//
// Why the pre-hash: bcrypt silently ignores everything after 72 bytes, so
// two long passphrases sharing a 72-byte prefix would be equal. The HMAC
// compresses any length to 32 bytes; base64 (44 bytes) keeps the bcrypt input
// free of NUL bytes, which some bcrypt implementations treat as a
// terminator. Why the pepper: it is a server secret kept outside the database,
// so a stolen table alone cannot be cracked. Nothing but the password goes
// into the hash (no user id or e-mail) so renaming a user never breaks it.
//
// Changing the pepper invalidates every stored hash; rotate it only together
// with a forced password reset.
//
// A Hasher is safe for concurrent use.
type Hasher struct {
	// newMAC returns HMAC-SHA256 keyed with the pepper. The pepper lives
	// only inside this closure: fmt prints funcs as addresses, so not even
	// reflection-based printing of a struct holding a *Hasher (where our
	// Format method is not consulted) can dump it.
	newMAC func() hash.Hash
	cost   int
	// sem bounds simultaneous bcrypt computations. Each one burns a core for
	// hundreds of milliseconds; without a bound a login flood would starve
	// every other request of CPU. Waiters queue here and give up when their
	// context is cancelled.
	sem chan struct{}
	// dummy is a real bcrypt hash at h.cost of a random password nobody
	// knows, used by DummyVerify so unknown users cost exactly as much as
	// known ones. It is computed once, by the first DummyVerify (dummy.once),
	// so commands that never verify a password (import, migrate, audit
	// verify) do not pay a bcrypt at start-up. (Behind a pointer: a Hasher
	// value may be copied, e.g. by fmt, and a sync.Once must not be.)
	dummy *lazyHash
}

type lazyHash struct {
	once sync.Once
	hash []byte
}

// NewHasher returns a Hasher. The pepper is copied; it may be empty (which
// only drops the pepper's defence, not the pre-hash's length handling) but
// production should use ≥32 random bytes from a secret store. cost 0 means
// DefaultCost; otherwise cost must be within [bcrypt.MinCost,
// bcrypt.MaxCost]. concurrency ≤ 0 means runtime.GOMAXPROCS(0).
//
// NewHasher panics on an out-of-range cost: that is a configuration bug which
// must stop start-up rather than silently weaken (or stall) hashing. It is
// cheap: the bcrypt hash DummyVerify compares against is computed by the
// first DummyVerify (see there).
func NewHasher(pepper []byte, cost int, concurrency int) *Hasher {
	if cost == 0 {
		cost = DefaultCost
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		panic(fmt.Sprintf("auth: bcrypt cost %d outside [%d, %d]", cost, bcrypt.MinCost, bcrypt.MaxCost))
	}
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	key := append([]byte(nil), pepper...)
	h := &Hasher{
		newMAC: func() hash.Hash { return hmac.New(sha256.New, key) },
		cost:   cost,
		sem:    make(chan struct{}, concurrency),
		dummy:  &lazyHash{},
	}
	return h
}

// dummyHash returns the dummy hash, computing it on first use.
func (h *Hasher) dummyHash() []byte {
	h.dummy.once.Do(func() {
		junk := make([]byte, 32)
		_, _ = rand.Read(junk)
		dummy, err := bcrypt.GenerateFromPassword(h.prehash(base64.StdEncoding.EncodeToString(junk)), h.cost)
		if err != nil {
			// Only possible for an invalid cost or >72-byte input, both
			// excluded by NewHasher.
			panic("auth: generating dummy bcrypt hash: " + err.Error())
		}
		h.dummy.hash = dummy
	})
	return h.dummy.hash
}

// prehash returns base64(HMAC-SHA256(pepper, NFC(password))): always 44
// bytes, so bcrypt's 72-byte truncation can never apply.
func (h *Hasher) prehash(password string) []byte {
	m := h.newMAC()
	_, _ = io.WriteString(m, normalizePassword(password))
	sum := m.Sum(nil)
	out := make([]byte, base64.StdEncoding.EncodedLen(len(sum)))
	base64.StdEncoding.Encode(out, sum)
	return out
}

// acquire takes a bcrypt slot or gives up when ctx is done, so a client that
// went away does not keep a queue position (or a core) busy.
func (h *Hasher) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.sem }

// Hash returns a bcrypt hash of the password for storage. It refuses
// passwords over MaxPasswordBytes with a *PolicyError (rule "max_length") so
// a password that Verify would never accept can't be stored. It does not
// apply the rest of the policy: call CheckPassword first.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if len(password) > MaxPasswordBytes {
		return "", &PolicyError{Rule: RuleMaxLength, Message: "password must be at most 256 bytes long"}
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	b, err := bcrypt.GenerateFromPassword(h.prehash(password), h.cost)
	if err != nil {
		return "", fmt.Errorf("auth: hashing password: %w", err)
	}
	return string(b), nil
}

// Verify reports whether password matches hash. The comparison itself is
// constant-time (bcrypt compares digests with crypto/subtle) and its cost is
// set by the hash's bcrypt cost, not by the password.
//
// A wrong password is (false, nil). An error means the caller should not
// treat the result as an answer: ctx was cancelled while waiting for a bcrypt
// slot, or the stored hash is malformed (log it; it is a data problem).
//
// Passwords over MaxPasswordBytes are rejected without running bcrypt: Hash
// never stores such a password, so they cannot match, and refusing early
// stops junk input from consuming the bcrypt pool. DummyVerify does the same
// so this shortcut reveals nothing about whether the user exists.
func (h *Hasher) Verify(ctx context.Context, hash, password string) (bool, error) {
	if len(password) > MaxPasswordBytes {
		return false, nil
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	err := bcrypt.CompareHashAndPassword([]byte(hash), h.prehash(password))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	default:
		return false, fmt.Errorf("auth: verifying password: %w", err)
	}
}

// DummyVerify spends the same time as Verify against a hash of this Hasher's
// cost, and always fails. Call it when the user does not exist (or has no
// password) so response timing does not reveal which accounts exist. It
// returns nothing because its only purpose is the time it takes; if ctx is
// cancelled while waiting for a slot it returns early, exactly as Verify
// would.
//
// The dummy hash is computed by the first call (once per Hasher, also when
// calls race), so the first DummyVerify of a process takes about twice as
// long as a Verify: one unknown-user login per process start is
// distinguishable by timing, every later one is not. That is the price of
// not running a bcrypt at start-up of every command.
func (h *Hasher) DummyVerify(ctx context.Context, password string) {
	// Verify's steps, with the dummy computed inside the bcrypt slot so that
	// the one-time computation is bounded by the pool like every other.
	if len(password) > MaxPasswordBytes {
		return
	}
	if err := h.acquire(ctx); err != nil {
		return
	}
	defer h.release()
	_ = bcrypt.CompareHashAndPassword(h.dummyHash(), h.prehash(password))
}

// NeedsRehash reports whether hash was made with a different bcrypt cost
// than this Hasher uses (or is unparsable). After a successful login with
// such a hash, re-hash the password and store the result: this is how a cost
// increase reaches existing users, and it keeps DummyVerify's timing equal
// to real verifications.
func (h *Hasher) NeedsRehash(hash string) bool {
	c, err := bcrypt.Cost([]byte(hash))
	return err != nil || c != h.cost
}

// String, GoString, Format and LogValue keep the pepper out of logs and
// debug output.
func (h *Hasher) String() string {
	return fmt.Sprintf("auth.Hasher{cost: %d, pepper: [REDACTED]}", h.cost)
}

// GoString implements fmt.GoStringer with the pepper redacted.
func (h *Hasher) GoString() string { return h.String() }

// Format implements fmt.Formatter so every verb (%v, %+v, %#v, %x, …) is
// redacted.
func (h *Hasher) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, h.String()) }

// LogValue implements slog.LogValuer with the pepper redacted.
func (h *Hasher) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("cost", h.cost), slog.String("pepper", "[REDACTED]"))
}
