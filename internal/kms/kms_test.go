package kms_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openclaims/claims/internal/kms"
	"github.com/openclaims/claims/internal/seal"
)

// transitStandIn is a PROTOCOL STAND-IN for HashiCorp Vault / OpenBao
// transit, not Vault: neither can be installed here (no Debian package;
// `apt-cache policy vault openbao` lists nothing), so this in-process
// server implements the two endpoints the client uses, with Vault's
// request and response shapes, token header, "vault:v1:" ciphertext prefix
// and {"errors": [...]} error bodies. Against a real server the same client
// talks to POST /v1/transit/encrypt/<key> and /v1/transit/decrypt/<key>.
type transitStandIn struct {
	token string
	key   string
	aead  cipher.AEAD
	calls atomic.Int64
}

func newTransit(t *testing.T) (*transitStandIn, *httptest.Server) {
	k := make([]byte, 32)
	rand.Read(k)
	b, _ := aes.NewCipher(k)
	a, _ := cipher.NewGCMWithRandomNonce(b)
	ts := &transitStandIn{token: "s.test-token", key: "claims", aead: a}
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)
	return ts, srv
}

func vaultError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string][]string{"errors": {msg}})
}

func (ts *transitStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ts.calls.Add(1)
	if r.Header.Get("X-Vault-Token") != ts.token {
		vaultError(w, 403, "permission denied")
		return
	}
	var body map[string]string
	if r.Method != "POST" || json.NewDecoder(r.Body).Decode(&body) != nil {
		vaultError(w, 400, "bad request")
		return
	}
	switch r.URL.Path {
	case "/v1/transit/encrypt/" + ts.key:
		pt, err := base64.StdEncoding.DecodeString(body["plaintext"])
		if err != nil {
			vaultError(w, 400, "plaintext must be base64")
			return
		}
		ct := ts.aead.Seal(nil, nil, pt, nil)
		json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(ct), "key_version": 1}})
	case "/v1/transit/decrypt/" + ts.key:
		raw, ok := strings.CutPrefix(body["ciphertext"], "vault:v1:")
		ct, err := base64.StdEncoding.DecodeString(raw)
		if !ok || err != nil {
			vaultError(w, 400, "invalid ciphertext")
			return
		}
		pt, err := ts.aead.Open(nil, nil, ct, nil)
		if err != nil {
			vaultError(w, 400, "cipher: message authentication failed")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)}})
	default:
		vaultError(w, 404, "no handler for route")
	}
}

func TestVaultSource(t *testing.T) {
	ctx := context.Background()
	ts, srv := newTransit(t)
	dir := filepath.Join(t.TempDir(), "keys")
	src := kms.Vault{Transit: &kms.Transit{Addr: srv.URL, Token: ts.token, Key: "claims"}, Dir: dir}
	keys, err := src.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := keys.Ring.Seal([]byte("secret"), seal.AAD("t", "c", "1"))
	// Only transit ciphertexts are on disk.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if strings.Contains(string(b), "kek:") || strings.Contains(string(b), "index:") {
			t.Fatalf("%s holds a plaintext key", e.Name())
		}
	}
	// Reload: same keys.
	again, err := src.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := again.Ring.Open(sealed, seal.AAD("t", "c", "1")); err != nil || string(pt) != "secret" {
		t.Fatalf("reload: %q %v", pt, err)
	}
	if string(again.Index.Index("d", []byte("x"))) != string(keys.Index.Index("d", []byte("x"))) {
		t.Fatal("index key changed")
	}
	// Rotation adds k2 as primary; k1 values still open.
	id, err := src.AddKEK(ctx)
	if err != nil || id != "k2" {
		t.Fatalf("AddKEK %s %v", id, err)
	}
	rot, err := src.Load(ctx)
	if err != nil || rot.Ring.Primary() != "k2" {
		t.Fatalf("after AddKEK: %v %v", rot.Ring, err)
	}
	if _, err := rot.Ring.Open(sealed, seal.AAD("t", "c", "1")); err != nil {
		t.Fatal(err)
	}
	// A wrong token gets nothing.
	bad := kms.Vault{Transit: &kms.Transit{Addr: srv.URL, Token: "wrong", Key: "claims"}, Dir: dir}
	if _, err := bad.Load(ctx); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("wrong token: %v", err)
	}
	if ts.calls.Load() == 0 {
		t.Fatal("transit never called")
	}
}

func TestEnvSource(t *testing.T) {
	ctx := context.Background()
	k1, k2 := seal.GenerateKEK("k1"), seal.GenerateKEK("k2")
	t1, _ := k1.MarshalText()
	t2, _ := k2.MarshalText()
	src := kms.Env{KEKs: string(t2) + "," + string(t1), Dir: filepath.Join(t.TempDir(), "keys")}
	keys, err := src.Load(ctx)
	if err != nil || keys.Ring.Primary() != "k2" || len(keys.Ring.IDs()) != 2 {
		t.Fatalf("%v %v", keys.Ring, err)
	}
	if _, err := src.AddKEK(ctx); err == nil {
		t.Fatal("env source accepted AddKEK")
	}
	if _, err := (kms.Env{KEKs: "kek:k1:short", Dir: src.Dir}).Load(ctx); err == nil || strings.Contains(err.Error(), "short") {
		t.Fatalf("bad CLAIMS_KEKS: %v", err)
	}
}

func TestFilesSourceRefusesLooseModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	src := kms.Files{Dir: dir}
	if _, err := src.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "kek-k1.key"), 0o644)
	if _, err := src.Load(context.Background()); err == nil || !strings.Contains(err.Error(), "0644") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
}

// TestTransitRefusesRedirects: a Vault address that redirects (to steal
// the token, or by misconfiguration) fails instead of being followed.
func TestTransitRefusesRedirects(t *testing.T) {
	var leaked atomic.Bool
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Vault-Token") != "" {
			leaked.Store(true)
		}
	}))
	defer thief.Close()
	redirector := httptest.NewServer(http.RedirectHandler(thief.URL+"/v1/transit/encrypt/claims", http.StatusTemporaryRedirect))
	defer redirector.Close()
	tr := &kms.Transit{Addr: redirector.URL, Token: "s.secret", Mount: "transit", Key: "claims"}
	if _, err := tr.Encrypt(context.Background(), []byte("k")); err == nil {
		t.Fatal("Encrypt through a redirect succeeded")
	}
	if leaked.Load() {
		t.Fatal("the token followed the redirect")
	}
}
