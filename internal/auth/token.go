package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken is the only error Tokens.Verify returns. Telling a client
// (or a log line an attacker can read) *why* a token was refused would turn
// Verify into an oracle for probing our checks.
var ErrInvalidToken = errors.New("auth: invalid token")

const (
	// MaxTokenTTL caps access-token lifetime. Access tokens are not
	// revocable (verification is stateless), so a stolen one is only
	// contained by its expiry; long-lived sessions use refresh tokens.
	MaxTokenTTL = 10 * time.Minute

	// Leeway is the clock skew tolerated on exp, nbf and iat between the
	// node that issued a token and the one verifying it. It also extends
	// every token's effective life, so it is kept small.
	Leeway = 10 * time.Second

	// maxTokenBytes bounds what Verify will even look at. Our tokens are
	// ~400 bytes; refusing big input before base64/JSON decoding keeps a
	// hostile Authorization header cheap.
	maxTokenBytes = 4096

	// TypeAccess is the value of the "typ" claim of access tokens. Checking
	// it stops any other JWT we might sign in future (refresh, e-mail
	// verification, ...) from being replayed as an access token.
	TypeAccess = "access"
)

// kidPattern restricts key ids to a boring alphabet so they are safe in
// headers, logs and in the SigningKey text encoding (which uses ':').
var kidPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// SigningKey is an Ed25519 private key plus its key id ("kid").
//
// The private key is only reachable through a closure. fmt prints func
// values as bare addresses at any depth, so even a SigningKey inside an
// unexported struct field — where fmt uses reflection and cannot call our
// Format method, and where a pointer or slice field would be dumped byte by
// byte on a bad verb such as %s — never shows key bytes. String, GoString,
// Format, LogValue and MarshalJSON redact it as well. MarshalText is the one
// deliberate way to export it, for a secret store.
type SigningKey struct {
	kid  string
	priv func() ed25519.PrivateKey
}

func newSigningKey(kid string, priv ed25519.PrivateKey) SigningKey {
	return SigningKey{kid: kid, priv: func() ed25519.PrivateKey { return priv }}
}

// GenerateSigningKey returns a new random Ed25519 key with the given kid.
// The kid must match [A-Za-z0-9._-]{1,64}; NewTokens and MarshalText reject
// keys whose kid does not.
func GenerateSigningKey(kid string) SigningKey {
	// ed25519.GenerateKey with a nil reader uses crypto/rand, whose failure
	// aborts the program (Go ≥ 1.24), so the error is always nil.
	_, priv, _ := ed25519.GenerateKey(nil)
	return newSigningKey(kid, priv)
}

// KID returns the key id.
func (k SigningKey) KID() string { return k.kid }

func (k SigningKey) valid() bool {
	return kidPattern.MatchString(k.kid) && k.priv != nil && len(k.priv()) == ed25519.PrivateKeySize
}

func (k SigningKey) public() ed25519.PublicKey {
	return k.priv().Public().(ed25519.PublicKey)
}

const signingKeyTextPrefix = "ed25519:"

// MarshalText encodes the key as "ed25519:<kid>:<base64url seed>". The
// output is secret: store it only in a secret store.
func (k SigningKey) MarshalText() ([]byte, error) {
	if !k.valid() {
		return nil, errors.New("auth: invalid signing key")
	}
	seed := k.priv().Seed()
	return []byte(signingKeyTextPrefix + k.kid + ":" + base64.RawURLEncoding.EncodeToString(seed)), nil
}

// ParseSigningKey decodes the output of MarshalText. Error messages never
// include the input, which is secret.
func ParseSigningKey(text []byte) (SigningKey, error) {
	s := strings.TrimSpace(string(text))
	rest, ok := strings.CutPrefix(s, signingKeyTextPrefix)
	if !ok {
		return SigningKey{}, errors.New("auth: signing key: want ed25519:<kid>:<seed>")
	}
	kid, enc, ok := strings.Cut(rest, ":")
	if !ok || !kidPattern.MatchString(kid) {
		return SigningKey{}, errors.New("auth: signing key: missing or invalid kid")
	}
	seed, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil || len(seed) != ed25519.SeedSize {
		return SigningKey{}, errors.New("auth: signing key: seed must be 32 bytes of base64url")
	}
	priv := ed25519.NewKeyFromSeed(seed)
	clear(seed)
	return newSigningKey(kid, priv), nil
}

// String implements fmt.Stringer with the private key redacted.
func (k SigningKey) String() string {
	return fmt.Sprintf("auth.SigningKey{kid: %q, key: [REDACTED]}", k.kid)
}

// GoString implements fmt.GoStringer with the private key redacted.
func (k SigningKey) GoString() string { return k.String() }

// Format implements fmt.Formatter so no verb (%x, %d, %+v, ...) can dump the
// key bytes.
func (k SigningKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue implements slog.LogValuer with the private key redacted. It also
// stops slog's text handler from using MarshalText, which would print the
// key.
func (k SigningKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kid", k.kid), slog.String("key", "[REDACTED]"))
}

// MarshalJSON redacts the key. Without it encoding/json would fall back to
// MarshalText and a json.Marshal of a config struct (debug endpoint, error
// report) would publish the private key. Use MarshalText explicitly to
// export a key.
func (k SigningKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"kid": k.kid, "key": "[REDACTED]"})
}

// Claims are the verified contents of an access token.
type Claims struct {
	Issuer    string
	Subject   string // user id
	SessionID string // "sid": lets the server refuse tokens of a revoked session where it checks
	ID        string // "jti": unique per token, for audit and deny-lists
	Type      string // "typ" claim; always TypeAccess for tokens from Verify
	Audience  []string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// jwtClaims is the wire form. Validate is called by the jwt parser after the
// signature and the registered claims (exp, iat, nbf, iss, aud) checked out.
type jwtClaims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid,omitempty"`
	Type      string `json:"typ,omitempty"`
}

func (c jwtClaims) Validate() error {
	switch {
	case c.Type != TypeAccess:
		return errors.New("typ is not access")
	case c.Subject == "", c.SessionID == "", c.ID == "":
		return errors.New("sub, sid and jti are required")
	case c.IssuedAt == nil:
		return errors.New("iat is required")
	}
	return nil
}

// Tokens issues and verifies short-lived EdDSA (Ed25519) access tokens.
//
// Key rotation: construct a new Tokens with the new key as current and the
// old key in previous. Tokens signed by a previous key keep verifying until
// they expire. Callers must drop a previous key once it has not signed for
// ttl + Leeway — after that every token it signed has expired, and keeping it
// longer only widens the window in which a leaked old key is useful. A token
// whose kid is no longer configured is refused.
//
// A Tokens is immutable and safe for concurrent use.
type Tokens struct {
	issuer   string
	audience string
	ttl      time.Duration
	now      func() time.Time
	current  SigningKey
	keys     []SigningKey                 // current first, then previous; for JWKS
	byKID    map[string]ed25519.PublicKey // verification keys, looked up only by kid
	parser   *jwt.Parser
}

// NewTokens returns a Tokens. ttl must be in (0, MaxTokenTTL]. now is the
// clock (nil means time.Now). Kids must be unique and valid.
func NewTokens(issuer, audience string, ttl time.Duration, now func() time.Time, current SigningKey, previous ...SigningKey) (*Tokens, error) {
	if issuer == "" || audience == "" {
		return nil, errors.New("auth: tokens: issuer and audience are required")
	}
	if ttl <= 0 || ttl > MaxTokenTTL {
		return nil, fmt.Errorf("auth: tokens: ttl %v must be in (0, %v]", ttl, MaxTokenTTL)
	}
	if now == nil {
		now = time.Now
	}
	t := &Tokens{
		issuer:   issuer,
		audience: audience,
		ttl:      ttl,
		now:      now,
		current:  current,
		byKID:    make(map[string]ed25519.PublicKey, 1+len(previous)),
	}
	for _, k := range append([]SigningKey{current}, previous...) {
		if !k.valid() {
			return nil, fmt.Errorf("auth: tokens: invalid signing key (kid %q)", k.kid)
		}
		if _, dup := t.byKID[k.kid]; dup {
			return nil, fmt.Errorf("auth: tokens: duplicate kid %q", k.kid)
		}
		t.byKID[k.kid] = k.public()
		t.keys = append(t.keys, k)
	}
	t.parser = jwt.NewParser(
		// Only EdDSA: rules out "none" and the classic HS256-with-public-key
		// confusion before any key is looked up.
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(now),
		jwt.WithLeeway(Leeway),
		// Canonical base64 only, so one signature has one encoding.
		jwt.WithStrictDecoding(),
	)
	return t, nil
}

// Issue signs a new access token for subject (user id) in session sessionID.
// The header carries kid and typ "JWT"; the jti is 128 fresh random bits.
func (t *Tokens) Issue(subject, sessionID string) (token string, c Claims, err error) {
	if subject == "" || sessionID == "" {
		return "", Claims{}, errors.New("auth: tokens: subject and session id are required")
	}
	// JWT times have whole-second precision; truncating here makes the
	// returned Claims equal to what Verify will later return.
	iat := t.now().Truncate(time.Second)
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	c = Claims{
		Issuer:    t.issuer,
		Subject:   subject,
		SessionID: sessionID,
		ID:        base64.RawURLEncoding.EncodeToString(jti),
		Type:      TypeAccess,
		Audience:  []string{t.audience},
		IssuedAt:  iat,
		ExpiresAt: iat.Add(t.ttl),
	}
	jt := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    c.Issuer,
			Subject:   c.Subject,
			Audience:  jwt.ClaimStrings(c.Audience),
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			ID:        c.ID,
		},
		SessionID: c.SessionID,
		Type:      c.Type,
	})
	jt.Header["kid"] = t.current.kid // jwt.New already sets typ "JWT"
	token, err = jt.SignedString(t.current.priv())
	if err != nil {
		return "", Claims{}, fmt.Errorf("auth: tokens: signing: %w", err)
	}
	return token, c, nil
}

// Verify checks an access token and returns its claims. Any problem at all —
// malformed, wrong algorithm, unknown kid, bad signature, expired, not yet
// valid, wrong issuer/audience/type, missing sub/sid/jti — yields
// ErrInvalidToken and nothing else.
func (t *Tokens) Verify(token string) (Claims, error) {
	// Cheap structural checks before any decoding: a JWS compact
	// serialisation has exactly two dots, and ours are far below 4 KiB.
	if len(token) > maxTokenBytes || strings.Count(token, ".") != 2 {
		return Claims{}, ErrInvalidToken
	}
	var jc jwtClaims
	parsed, err := t.parser.ParseWithClaims(token, &jc, t.keyFor)
	if err != nil || !parsed.Valid {
		return Claims{}, ErrInvalidToken
	}
	return Claims{
		Issuer:    jc.Issuer,
		Subject:   jc.Subject,
		SessionID: jc.SessionID,
		ID:        jc.ID,
		Type:      jc.Type,
		Audience:  []string(jc.Audience),
		IssuedAt:  jc.IssuedAt.Time,
		ExpiresAt: jc.ExpiresAt.Time,
	}, nil
}

// keyFor picks the verification key. It looks only at "kid" and only among
// our own configured keys: jku, x5u, jwk and x5c headers are never consulted,
// because honouring them lets the token choose the key that verifies it.
func (t *Tokens) keyFor(tok *jwt.Token) (any, error) {
	// RFC 7515 §4.1.11: a "crit" header lists extensions the verifier must
	// understand; we understand none, so such tokens must be refused.
	if _, ok := tok.Header["crit"]; ok {
		return nil, errors.New("crit header not supported")
	}
	kid, ok := tok.Header["kid"].(string)
	if !ok {
		return nil, errors.New("missing kid")
	}
	pub, ok := t.byKID[kid]
	if !ok {
		return nil, errors.New("unknown kid")
	}
	return pub, nil
}

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// JWKS returns the RFC 7517 JWK Set of all verification keys (current and
// previous) as RFC 8037 OKP/Ed25519 public keys, for other services that
// verify our access tokens. It contains no private material.
func (t *Tokens) JWKS() ([]byte, error) {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(t.keys))}
	for _, k := range t.keys {
		set.Keys = append(set.Keys, jwk{
			Kty: "OKP",
			Crv: "Ed25519",
			X:   base64.RawURLEncoding.EncodeToString(k.public()),
			Kid: k.kid,
			Use: "sig",
			Alg: jwt.SigningMethodEdDSA.Alg(),
		})
	}
	return json.Marshal(set)
}

// String implements fmt.Stringer without key material.
func (t *Tokens) String() string {
	kids := make([]string, len(t.keys))
	for i, k := range t.keys {
		kids[i] = k.kid
	}
	return fmt.Sprintf("auth.Tokens{issuer: %q, audience: %q, ttl: %v, kids: %q}", t.issuer, t.audience, t.ttl, kids)
}

// GoString implements fmt.GoStringer without key material.
func (t *Tokens) GoString() string { return t.String() }

// Format implements fmt.Formatter so no verb can reach the private key.
func (t *Tokens) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, t.String()) }
