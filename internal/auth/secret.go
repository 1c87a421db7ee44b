package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// opaqueTokenBytes is 256 bits: far beyond guessing range even for an
// attacker with unlimited online attempts, and enough that storing only a
// fast SHA-256 of it (no salt, no bcrypt) is safe — a preimage search over
// 2^256 is infeasible, so a leaked database of hashes yields nothing usable.
const opaqueTokenBytes = 32

// NewOpaqueToken returns a fresh random bearer secret (256 bits from
// crypto/rand, base64url without padding, 43 characters) and its SHA-256
// hash. Give the token to the client exactly once; store only the hash, so a
// read-only database leak does not hand out live refresh tokens, reset links
// or session ids.
func NewOpaqueToken() (token string, hash []byte) {
	b := make([]byte, opaqueTokenBytes)
	// crypto/rand.Read never returns an error since Go 1.24 (it aborts the
	// program instead), so there is no error to propagate.
	_, _ = rand.Read(b)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashOpaque(token)
}

// HashOpaque returns SHA-256 of an opaque token as presented by a client.
// Callers look the hash up in storage; the lookup key itself reveals nothing
// about the token. A fast hash is deliberate: the input has 256 bits of
// entropy, so slow hashing would add cost without adding security.
func HashOpaque(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// Equal reports whether a and b are equal in time that does not depend on
// where they differ, so comparing a stored hash with a presented one leaks no
// prefix information. (Lengths are not secret: all our hashes are 32 bytes.)
func Equal(a, b []byte) bool {
	return subtle.ConstantTimeCompare(a, b) == 1
}
