package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

func TestOpaqueToken(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok, hash := NewOpaqueToken()
		raw, err := base64.RawURLEncoding.Strict().DecodeString(tok)
		if err != nil || len(raw) != 32 || len(tok) != 43 {
			t.Fatalf("token %q: %d bytes, %v", tok, len(raw), err)
		}
		sum := sha256.Sum256([]byte(tok))
		if !bytes.Equal(hash, sum[:]) || !bytes.Equal(HashOpaque(tok), hash) {
			t.Fatal("hash is not SHA-256 of the token")
		}
		if seen[tok] {
			t.Fatal("token repeated")
		}
		seen[tok] = true
	}
}

func TestEqual(t *testing.T) {
	a := HashOpaque("a")
	if !Equal(a, HashOpaque("a")) || Equal(a, HashOpaque("b")) || Equal(a, a[:31]) || Equal(a, nil) {
		t.Fatal("Equal is wrong")
	}
	if !Equal(nil, []byte{}) {
		t.Fatal("empty slices should be equal")
	}
}
