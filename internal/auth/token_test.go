package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

const (
	testIssuer   = "https://claims.example"
	testAudience = "claims-api"
	testTTL      = 5 * time.Minute
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func mustTokens(t testing.TB, c *clock, current SigningKey, previous ...SigningKey) *Tokens {
	t.Helper()
	tk, err := NewTokens(testIssuer, testAudience, testTTL, c.now, current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

var b64 = base64.RawURLEncoding

func segment(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b)
}

// craft builds a compact JWS by hand so tests can produce tokens our own
// Issue never would. sign receives the signing input and returns the raw
// signature (nil for none).
func craft(t testing.TB, header, claims map[string]any, sign func(input string) []byte) string {
	t.Helper()
	input := segment(t, header) + "." + segment(t, claims)
	return input + "." + b64.EncodeToString(sign(input))
}

func edSigner(k SigningKey) func(string) []byte {
	return func(in string) []byte { return ed25519.Sign(k.priv(), []byte(in)) }
}

func hsSigner(key []byte) func(string) []byte {
	return func(in string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(in))
		return m.Sum(nil)
	}
}

func noSig(string) []byte { return nil }

func goodHeader(k SigningKey) map[string]any {
	return map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": k.KID()}
}

func goodClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": testIssuer,
		"sub": "user-1",
		"sid": "session-1",
		"jti": "jti-1",
		"typ": "access",
		"aud": []string{testAudience},
		"iat": now.Unix(),
		"exp": now.Add(testTTL).Unix(),
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	c := newClock()
	c.t = c.t.Add(123 * time.Millisecond) // sub-second part must not break equality
	tk := mustTokens(t, c, GenerateSigningKey("k1"))
	tok, issued, err := tk.Issue("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tk.Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if fmt.Sprint(got) != fmt.Sprint(issued) || !got.IssuedAt.Equal(issued.IssuedAt) || !got.ExpiresAt.Equal(issued.ExpiresAt) {
		t.Fatalf("claims differ:\nissued %+v\nverify %+v", issued, got)
	}
	if got.Type != TypeAccess || got.Subject != "user-1" || got.SessionID != "session-1" || got.ID == "" ||
		got.Issuer != testIssuer || len(got.Audience) != 1 || got.Audience[0] != testAudience ||
		got.ExpiresAt.Sub(got.IssuedAt) != testTTL {
		t.Fatalf("unexpected claims %+v", got)
	}

	hdr, _, _ := strings.Cut(tok, ".")
	raw, _ := b64.DecodeString(hdr)
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	if h["kid"] != "k1" || h["typ"] != "JWT" || h["alg"] != "EdDSA" || len(h) != 3 {
		t.Fatalf("header = %v", h)
	}

	_, again, _ := tk.Issue("user-1", "session-1")
	if again.ID == issued.ID {
		t.Fatal("jti reused")
	}
	if _, _, err := tk.Issue("", "s"); err == nil {
		t.Fatal("empty subject accepted")
	}
	if _, _, err := tk.Issue("u", ""); err == nil {
		t.Fatal("empty session accepted")
	}
}

// TestCraftedControl proves the hand-crafting helpers produce a token Verify
// accepts, so each attack case below fails for its own reason and not
// because the helper is broken.
func TestCraftedControl(t *testing.T) {
	c := newClock()
	k := GenerateSigningKey("k1")
	tk := mustTokens(t, c, k)
	tok := craft(t, goodHeader(k), goodClaims(c.now()), edSigner(k))
	if _, err := tk.Verify(tok); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
}

func TestVerifyAttacks(t *testing.T) {
	c := newClock()
	now := c.now()
	k := GenerateSigningKey("k1")
	old := GenerateSigningKey("k0")
	attacker := GenerateSigningKey("evil")
	tk := mustTokens(t, c, k)
	pub := k.public()

	oldTk := mustTokens(t, c, old)
	oldTok, _, err := oldTk.Issue("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	valid, _, err := tk.Issue("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(valid, ".")

	tamperedPayload := parts[0] + "." + segment(t, with(goodClaims(now), "sub", "admin")) + "." + parts[2]
	sig, _ := b64.DecodeString(parts[2])
	sig[7] ^= 0x01
	tamperedSig := parts[0] + "." + parts[1] + "." + b64.EncodeToString(sig)

	attackerJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64.EncodeToString(attacker.public()), "kid": "evil"}
	jwks, _ := tk.JWKS()
	var set struct {
		Keys []struct{ X string }
	}
	_ = json.Unmarshal(jwks, &set)

	cases := []struct {
		name  string
		token string
	}{
		{"alg none", craft(t, with(goodHeader(k), "alg", "none"), goodClaims(now), noSig)},
		{"alg None", craft(t, with(goodHeader(k), "alg", "None"), goodClaims(now), noSig)},
		{"alg NONE", craft(t, with(goodHeader(k), "alg", "NONE"), goodClaims(now), noSig)},
		{"alg none with our signature", craft(t, with(goodHeader(k), "alg", "none"), goodClaims(now), edSigner(k))},
		{"missing alg", craft(t, with(goodHeader(k), "alg", nil), goodClaims(now), edSigner(k))},
		{"HS256 keyed with our public key bytes", craft(t, with(goodHeader(k), "alg", "HS256"), goodClaims(now), hsSigner(pub))},
		{"HS256 keyed with our JWKS x string", craft(t, with(goodHeader(k), "alg", "HS256"), goodClaims(now), hsSigner([]byte(set.Keys[0].X)))},
		{"foreign aud", craft(t, goodHeader(k), with(goodClaims(now), "aud", []string{"billing-api"}), edSigner(k))},
		{"foreign aud string", craft(t, goodHeader(k), with(goodClaims(now), "aud", "billing-api"), edSigner(k))},
		{"empty aud list", craft(t, goodHeader(k), with(goodClaims(now), "aud", []string{}), edSigner(k))},
		{"missing aud", craft(t, goodHeader(k), with(goodClaims(now), "aud", nil), edSigner(k))},
		{"missing exp", craft(t, goodHeader(k), with(goodClaims(now), "exp", nil), edSigner(k))},
		{"future nbf", craft(t, goodHeader(k), with(goodClaims(now), "nbf", now.Add(time.Hour).Unix()), edSigner(k))},
		{"expired", craft(t, goodHeader(k), with(goodClaims(now), "iat", now.Add(-time.Hour).Unix(), "exp", now.Add(-Leeway-time.Second).Unix()), edSigner(k))},
		{"iat in the future", craft(t, goodHeader(k), with(goodClaims(now), "iat", now.Add(time.Hour).Unix(), "exp", now.Add(time.Hour+testTTL).Unix()), edSigner(k))},
		{"missing iat", craft(t, goodHeader(k), with(goodClaims(now), "iat", nil), edSigner(k))},
		{"wrong iss", craft(t, goodHeader(k), with(goodClaims(now), "iss", "https://evil.example"), edSigner(k))},
		{"missing iss", craft(t, goodHeader(k), with(goodClaims(now), "iss", nil), edSigner(k))},
		{"typ refresh", craft(t, goodHeader(k), with(goodClaims(now), "typ", "refresh"), edSigner(k))},
		{"missing typ", craft(t, goodHeader(k), with(goodClaims(now), "typ", nil), edSigner(k))},
		{"missing sub", craft(t, goodHeader(k), with(goodClaims(now), "sub", nil), edSigner(k))},
		{"missing sid", craft(t, goodHeader(k), with(goodClaims(now), "sid", nil), edSigner(k))},
		{"empty jti", craft(t, goodHeader(k), with(goodClaims(now), "jti", ""), edSigner(k))},
		{"unknown kid", craft(t, with(goodHeader(k), "kid", "nope"), goodClaims(now), edSigner(attacker))},
		{"our kid, attacker signature", craft(t, goodHeader(k), goodClaims(now), edSigner(attacker))},
		{"missing kid", craft(t, with(goodHeader(k), "kid", nil), goodClaims(now), edSigner(k))},
		{"numeric kid", craft(t, with(goodHeader(k), "kid", 1), goodClaims(now), edSigner(k))},
		{"crit header", craft(t, with(goodHeader(k), "crit", []string{"exp"}), goodClaims(now), edSigner(k))},
		{"kid of removed previous key", oldTok},
		{"1,000,000 dots", strings.Repeat(".", 1_000_000)},
		{"three dots", valid + "."},
		{"one dot", parts[0] + "." + parts[1]},
		{"over 4096 bytes", craft(t, goodHeader(k), with(goodClaims(now), "pad", strings.Repeat("a", 4096)), edSigner(k))},
		{"empty", ""},
		{"garbage", "not.a.jwt"},
		{"tampered payload", tamperedPayload},
		{"tampered signature", tamperedSig},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:20]},
		{"padded base64 signature", valid + "=="},
		{"jku header, attacker key", craft(t, map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": "evil", "jku": "https://evil.example/jwks.json"}, goodClaims(now), edSigner(attacker))},
		{"jwk header, attacker key", craft(t, map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": "evil", "jwk": attackerJWK}, goodClaims(now), edSigner(attacker))},
		{"jwk header with our kid, attacker key", craft(t, map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": "k1", "jwk": attackerJWK}, goodClaims(now), edSigner(attacker))},
		{"x5u header, attacker key", craft(t, map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": "evil", "x5u": "https://evil.example/cert.pem"}, goodClaims(now), edSigner(attacker))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims, err := tk.Verify(tc.token)
			if err != ErrInvalidToken { // identity, not errors.Is: exactly one opaque error
				t.Fatalf("Verify = %v, %v; want ErrInvalidToken", claims, err)
			}
			if claims.Subject != "" || claims.ID != "" {
				t.Fatalf("claims leaked on failure: %+v", claims)
			}
		})
	}
}

func TestPreviousKeyVerifiesUntilExpiry(t *testing.T) {
	c := newClock()
	k0, k1 := GenerateSigningKey("k0"), GenerateSigningKey("k1")
	before := mustTokens(t, c, k0)
	oldTok, _, err := before.Issue("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}

	c.advance(time.Minute) // rotate a minute later
	after := mustTokens(t, c, k1, k0)
	if _, err := after.Verify(oldTok); err != nil {
		t.Fatalf("token of previous key refused right after rotation: %v", err)
	}
	newTok, _, err := after.Issue("user-2", "session-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := after.Verify(newTok); err != nil {
		t.Fatal(err)
	}
	if _, err := before.Verify(newTok); err != ErrInvalidToken {
		t.Fatal("token of the new key verified by a Tokens that does not know it")
	}

	c.advance(testTTL - time.Minute - time.Second) // 1 s before expiry
	if _, err := after.Verify(oldTok); err != nil {
		t.Fatalf("token of previous key refused before expiry: %v", err)
	}
	c.advance(time.Second + Leeway + time.Second)
	if _, err := after.Verify(oldTok); err != ErrInvalidToken {
		t.Fatalf("expired token accepted: %v", err)
	}
}

func TestExpiryBoundaryWithLeeway(t *testing.T) {
	c := newClock()
	tk := mustTokens(t, c, GenerateSigningKey("k1"))
	tok, _, _ := tk.Issue("u", "s")
	c.advance(testTTL + Leeway - time.Second)
	if _, err := tk.Verify(tok); err != nil {
		t.Fatalf("refused within leeway: %v", err)
	}
	c.advance(time.Second)
	if _, err := tk.Verify(tok); err != ErrInvalidToken {
		t.Fatalf("accepted at exp+leeway: %v", err)
	}
	if Leeway > 30*time.Second {
		t.Fatal("leeway must stay ≤ 30s")
	}
}

func TestNewTokensValidation(t *testing.T) {
	c := newClock()
	k := GenerateSigningKey("k1")
	bad := []struct {
		name string
		fn   func() (*Tokens, error)
	}{
		{"ttl over 10m", func() (*Tokens, error) { return NewTokens(testIssuer, testAudience, MaxTokenTTL+time.Second, c.now, k) }},
		{"zero ttl", func() (*Tokens, error) { return NewTokens(testIssuer, testAudience, 0, c.now, k) }},
		{"no issuer", func() (*Tokens, error) { return NewTokens("", testAudience, testTTL, c.now, k) }},
		{"no audience", func() (*Tokens, error) { return NewTokens(testIssuer, "", testTTL, c.now, k) }},
		{"zero key", func() (*Tokens, error) { return NewTokens(testIssuer, testAudience, testTTL, c.now, SigningKey{}) }},
		{"bad kid", func() (*Tokens, error) {
			return NewTokens(testIssuer, testAudience, testTTL, c.now, GenerateSigningKey("a:b"))
		}},
		{"duplicate kid", func() (*Tokens, error) {
			return NewTokens(testIssuer, testAudience, testTTL, c.now, k, GenerateSigningKey("k1"))
		}},
	}
	for _, tc := range bad {
		if _, err := tc.fn(); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, err := NewTokens(testIssuer, testAudience, MaxTokenTTL, nil, k); err != nil {
		t.Errorf("ttl = 10m, nil clock: %v", err)
	}
}

func TestJWKS(t *testing.T) {
	c := newClock()
	k1, k0 := GenerateSigningKey("k1"), GenerateSigningKey("k0")
	tk := mustTokens(t, c, k1, k0)
	raw, err := tk.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("%d keys", len(set.Keys))
	}
	tok, _, _ := tk.Issue("u", "s")
	dot := strings.LastIndexByte(tok, '.')
	sig, _ := b64.DecodeString(tok[dot+1:])
	for i, want := range []SigningKey{k1, k0} {
		j := set.Keys[i]
		if len(j) != 6 || j["kty"] != "OKP" || j["crv"] != "Ed25519" || j["use"] != "sig" || j["alg"] != "EdDSA" || j["kid"] != want.KID() {
			t.Fatalf("jwk %d = %v", i, j)
		}
		x, err := b64.DecodeString(j["x"])
		if err != nil || !bytes.Equal(x, want.public()) {
			t.Fatalf("jwk %d x mismatch", i)
		}
	}
	x, _ := b64.DecodeString(set.Keys[0]["x"])
	if !ed25519.Verify(ed25519.PublicKey(x), []byte(tok[:dot]), sig) {
		t.Fatal("token does not verify with the published key")
	}
}

func TestSigningKeyText(t *testing.T) {
	k := GenerateSigningKey("2026-01.a_b")
	txt, err := k.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseSigningKey(txt)
	if err != nil {
		t.Fatal(err)
	}
	if back.KID() != k.KID() || !bytes.Equal(back.priv(), k.priv()) {
		t.Fatal("round trip changed the key")
	}
	if _, err := (SigningKey{}).MarshalText(); err == nil {
		t.Fatal("zero key marshalled")
	}
	seed := b64.EncodeToString(k.priv().Seed())
	for _, in := range []string{
		"", "ed25519:", "ed25519:kid", "rsa:kid:" + seed, "ed25519::" + seed, "ed25519:a b:" + seed,
		"ed25519:kid:" + seed[:10], "ed25519:kid:" + seed + "AA", "ed25519:kid:" + seed + "=",
	} {
		_, err := ParseSigningKey([]byte(in))
		if err == nil {
			t.Errorf("ParseSigningKey(%q) accepted", in)
		} else if strings.Contains(err.Error(), seed[:8]) {
			t.Errorf("error echoes secret: %v", err)
		}
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	k := GenerateSigningKey("k1")
	c := newClock()
	tk := mustTokens(t, c, k)
	seed := k.priv().Seed()
	secrets := []string{
		b64.EncodeToString(seed), base64.StdEncoding.EncodeToString(seed)[:20],
		fmt.Sprintf("%x", seed[:8]), strings.Trim(fmt.Sprint(seed[:6]), "[]"),
		strings.Trim(fmt.Sprint([]byte(k.priv())[:6]), "[]"),
	}
	type wrapper struct {
		Key    SigningKey
		hidden SigningKey
	}
	w := wrapper{Key: k, hidden: k}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		out = append(out, fmt.Sprintf(verb, k), fmt.Sprintf(verb, w), fmt.Sprintf(verb, &w), fmt.Sprintf(verb, tk))
	}
	js, _ := json.Marshal(w)
	out = append(out, string(js))
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "key", k, "w", w, "tokens", tk)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "key", k, "w", w, "tokens", tk)
	out = append(out, buf.String())
	for _, o := range out {
		for _, s := range secrets {
			if strings.Contains(o, s) {
				t.Fatalf("secret %q leaked in %q", s, o)
			}
		}
	}
}

func TestVerifyConcurrent(t *testing.T) {
	c := newClock()
	tk := mustTokens(t, c, GenerateSigningKey("k1"))
	tok, _, _ := tk.Issue("u", "s")
	done := make(chan error)
	for range 8 {
		go func() {
			var err error
			for range 50 {
				if _, e := tk.Verify(tok); e != nil {
					err = e
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestErrInvalidTokenIsOpaque(t *testing.T) {
	if errors.Unwrap(ErrInvalidToken) != nil {
		t.Fatal("ErrInvalidToken must not wrap a cause")
	}
}

func BenchmarkVerify(b *testing.B) {
	c := newClock()
	tk := mustTokens(b, c, GenerateSigningKey("k1"), GenerateSigningKey("k0"))
	tok, _, err := tk.Issue("user-1", "session-1")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tk.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
