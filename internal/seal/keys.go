package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// KeySize is the size in bytes of every key in this package.
const KeySize = 32

const maxIDLen = 32

// validID reports whether id is a usable KEK id: 1..32 of [A-Za-z0-9_-].
// Ids appear in key-file names, the CLAIMS_KEKS list and sealed headers.
func validID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !identByte(id[i]) {
			return false
		}
	}
	return true
}

func identByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

var b64 = base64.RawURLEncoding

// decodeKey decodes unpadded (or padded) base64url into exactly KeySize bytes.
// Errors never include the input.
func decodeKey(s string) (*[KeySize]byte, bool) {
	s = strings.TrimRight(s, "=")
	if b64.DecodedLen(len(s)) != KeySize {
		return nil, false
	}
	var k [KeySize]byte
	n, err := b64.Strict().Decode(k[:], []byte(s))
	if err != nil || n != KeySize {
		clear(k[:])
		return nil, false
	}
	return &k, true
}

// hide returns a closure that yields v. Key material (raw keys and AEADs,
// whose AES key schedules start with the raw key) is only ever stored behind
// such closures: reflection-based printers follow pointers (fmt does so for
// a bad verb such as %s or %d on a nested pointer, and spew-style dumpers
// always do) but cannot look inside a func, so a key embedded in some other
// struct is never printed.
func hide[T any](v T) func() T { return func() T { return v } }

func newKey() *[KeySize]byte {
	var k [KeySize]byte
	rand.Read(k[:])
	return &k
}

// KEK is a key-encryption key: 32 random bytes plus a short id. The bytes are
// unexported and never printed. KEKs cannot be compared with ==.
type KEK struct {
	_   [0]func() // incomparable
	id  string
	key func() *[KeySize]byte // see hide
}

// GenerateKEK returns a new random KEK. It panics if id is not 1..32 characters
// of [A-Za-z0-9_-]; ids are chosen by code (AddKEK) or operators, never by users.
func GenerateKEK(id string) KEK {
	if !validID(id) {
		panic(fmt.Sprintf("seal: invalid KEK id %q (want 1-32 of [A-Za-z0-9_-])", id))
	}
	return KEK{id: id, key: hide(newKey())}
}

// ID returns the KEK's id.
func (k KEK) ID() string { return k.id }

func (k KEK) valid() bool { return k.key != nil && validID(k.id) }

// String returns "seal.KEK(<id>)"; it never includes key bytes.
func (k KEK) String() string { return "seal.KEK(" + k.id + ")" }

// GoString is like String, so %#v does not reveal the key.
func (k KEK) GoString() string { return k.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (k KEK) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON returns the redacted form as a JSON string. It exists so that a
// KEK placed in a JSON-encoded struct (a log line, an API response) is not
// exported through MarshalText. Use MarshalText to write key files.
func (k KEK) MarshalJSON() ([]byte, error) { return []byte(`"` + k.String() + `"`), nil }

// MarshalText returns "kek:<id>:<base64url key>". This exports the secret;
// use it only to write key files or the CLAIMS_KEKS variable.
func (k KEK) MarshalText() ([]byte, error) {
	if !k.valid() {
		return nil, errors.New("seal: cannot marshal zero KEK")
	}
	return []byte("kek:" + k.id + ":" + b64.EncodeToString(k.key()[:])), nil
}

// ParseKEK parses the MarshalText form. Surrounding white space is ignored.
// Errors never echo the input.
func ParseKEK(s string) (KEK, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, "kek:")
	if !ok {
		return KEK{}, errors.New(`seal: malformed KEK: want "kek:<id>:<base64url key>"`)
	}
	id, enc, ok := strings.Cut(rest, ":")
	if !ok || !validID(id) {
		return KEK{}, errors.New("seal: malformed KEK: bad id (want 1-32 of [A-Za-z0-9_-])")
	}
	key, ok := decodeKey(enc)
	if !ok {
		return KEK{}, fmt.Errorf("seal: malformed KEK %q: key is not %d bytes of base64url", id, KeySize)
	}
	return KEK{id: id, key: hide(key)}, nil
}

// DEK is a data-encryption key for one data subject (a policyholder), stored
// wrapped in the database (see KeyRing.NewDEK). It is never printed and
// cannot be compared with ==. The zero DEK cannot seal or open.
type DEK struct {
	_ [0]func()        // incomparable
	s func() *dekState // see hide
}

type dekState struct {
	key  [KeySize]byte
	aead cipher.AEAD // random-nonce AES-256-GCM
}

func newDEK(key *[KeySize]byte) DEK {
	st := &dekState{key: *key}
	st.aead = gcmRandom(st.key[:])
	return DEK{s: hide(st)}
}

// String returns "seal.DEK"; it never includes key bytes.
func (d DEK) String() string { return "seal.DEK" }

// GoString is like String.
func (d DEK) GoString() string { return d.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (d DEK) LogValue() slog.Value { return slog.StringValue(d.String()) }

// MarshalJSON returns the redacted form; a DEK is exported only wrapped.
func (d DEK) MarshalJSON() ([]byte, error) { return []byte(`"seal.DEK"`), nil }

// Seal encrypts plaintext with AES-256-GCM under d (random 96-bit nonce) and
// binds aad. Output: 0x03 | nonce 12 | ciphertext | tag 16.
func (d DEK) Seal(plaintext, aad []byte) ([]byte, error) {
	if d.s == nil {
		return nil, errors.New("seal: zero DEK")
	}
	out := make([]byte, 1, 1+d.s().aead.Overhead()+len(plaintext))
	out[0] = fmtSubjectValue
	return d.s().aead.Seal(out, nil, plaintext, bodyAAD(fmtSubjectValue, aad)), nil
}

// Open reverses Seal. It returns ErrOpen for any bad input.
func (d DEK) Open(sealed, aad []byte) ([]byte, error) {
	if d.s == nil || len(sealed) < 1+d.s().aead.Overhead() || sealed[0] != fmtSubjectValue {
		return nil, ErrOpen
	}
	pt, err := d.s().aead.Open(nil, nil, sealed[1:], bodyAAD(fmtSubjectValue, aad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// IndexKey is the key for blind indexes. It is independent of the KEKs so
// that KEK rotation never changes index values. It is never printed and
// cannot be compared with ==.
type IndexKey struct {
	_   [0]func()             // incomparable
	key func() *[KeySize]byte // see hide
}

// GenerateIndexKey returns a new random IndexKey.
func GenerateIndexKey() IndexKey { return IndexKey{key: hide(newKey())} }

// String returns "seal.IndexKey"; it never includes key bytes.
func (k IndexKey) String() string { return "seal.IndexKey" }

// GoString is like String.
func (k IndexKey) GoString() string { return k.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (k IndexKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON returns the redacted form (see KEK.MarshalJSON).
func (k IndexKey) MarshalJSON() ([]byte, error) { return []byte(`"seal.IndexKey"`), nil }

// MarshalText returns "index:<base64url key>". This exports the secret; use
// it only to write the key file.
func (k IndexKey) MarshalText() ([]byte, error) {
	if k.key == nil {
		return nil, errors.New("seal: cannot marshal zero IndexKey")
	}
	return []byte("index:" + b64.EncodeToString(k.key()[:])), nil
}

// ParseIndexKey parses the MarshalText form. Surrounding white space is
// ignored. Errors never echo the input.
func ParseIndexKey(s string) (IndexKey, error) {
	enc, ok := strings.CutPrefix(strings.TrimSpace(s), "index:")
	if !ok {
		return IndexKey{}, errors.New(`seal: malformed index key: want "index:<base64url key>"`)
	}
	key, ok := decodeKey(enc)
	if !ok {
		return IndexKey{}, fmt.Errorf("seal: malformed index key: not %d bytes of base64url", KeySize)
	}
	return IndexKey{key: hide(key)}, nil
}

const indexInfo = "claims/seal blind-index v1\x00"

// Index returns the 32-byte blind index of value in domain:
// HMAC-SHA256(HKDF-SHA256(key, info = label|domain), value). It is
// deterministic; different domains give unrelated outputs. It panics on the
// zero IndexKey, which is always a programming error.
func (k IndexKey) Index(domain string, value []byte) []byte {
	if k.key == nil {
		panic("seal: Index on zero IndexKey")
	}
	sub, err := hkdf.Key(sha256.New, k.key()[:], nil, indexInfo+domain, KeySize)
	if err != nil {
		panic("seal: hkdf: " + err.Error()) // only for absurd key lengths
	}
	m := hmac.New(sha256.New, sub)
	clear(sub)
	m.Write(value)
	return m.Sum(nil)
}

// gcmRandom returns AES-256-GCM with random 96-bit nonces prepended to the
// ciphertext. key must be 32 bytes.
func gcmRandom(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("seal: aes: " + err.Error())
	}
	a, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		panic("seal: gcm: " + err.Error())
	}
	return a
}

// gcmExplicit returns AES-256-GCM with caller-supplied 96-bit nonces.
func gcmExplicit(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("seal: aes: " + err.Error())
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		panic("seal: gcm: " + err.Error())
	}
	return a
}
