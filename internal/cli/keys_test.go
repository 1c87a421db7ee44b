package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/store"
)

// TestSigningKeyRotation: after `claims keys rotate-signing` and a restart,
// tokens signed by the previous key stay valid until they expire (both keys
// are published), and once the previous key is older than a token's
// lifetime it is dropped and its tokens are refused.
func TestSigningKeyRotation(t *testing.T) {
	env := newEnv(t, store.SQLite)
	s := startServer(t, env)
	s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "k@example.com", "password": pw}), 202)
	old := s.login("k@example.com", pw)
	if n := len(s.expect(s.do("GET", "/api/v1/.well-known/jwks.json", "", nil), 200).body["keys"].([]any)); n != 1 {
		t.Fatalf("%d keys published before rotation", n)
	}
	mustRun(t, env, "", "keys", "rotate-signing")

	s2 := startServer(t, env) // a restarted node on the same data dir
	if n := len(s2.expect(s2.do("GET", "/api/v1/.well-known/jwks.json", "", nil), 200).body["keys"].([]any)); n != 2 {
		t.Fatalf("%d keys published after rotation, want 2", n)
	}
	s2.expect(s2.do("GET", "/api/v1/me", old, nil), 200)
	fresh := s2.login("k@example.com", pw)
	s2.expect(s2.do("GET", "/api/v1/me", fresh, nil), 200)

	// Eleven minutes later the previous key is gone.
	prev := filepath.Join(env["CLAIMS_DATA_DIR"], "keys", "signing-prev.key")
	past := time.Now().Add(-11 * time.Minute)
	if err := os.Chtimes(prev, past, past); err != nil {
		t.Fatal(err)
	}
	s3 := startServer(t, env)
	s3.expect(s3.do("GET", "/api/v1/me", old, nil), 401)
	s3.expect(s3.do("GET", "/api/v1/me", fresh, nil), 200)
}

// TestServeWithEnvKEKs: the server takes its key-encryption keys from
// CLAIMS_KEKS (the KMS-less production option) instead of key files.
func TestServeWithEnvKEKs(t *testing.T) {
	env := newEnv(t, store.SQLite)
	kek := strings.TrimSpace(mustRun(t, env, "", "keys", "generate"))
	if !strings.HasPrefix(kek, "kek:") {
		t.Fatalf("keys generate printed %q", kek)
	}
	env["CLAIMS_KEKS"] = kek
	s := startServer(t, env)
	s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "e@example.com", "password": pw}), 202)
	s.login("e@example.com", pw)
	matches, _ := filepath.Glob(filepath.Join(env["CLAIMS_DATA_DIR"], "keys", "kek-*.key"))
	if len(matches) != 0 {
		t.Errorf("key files written although CLAIMS_KEKS is set: %v", matches)
	}
}
