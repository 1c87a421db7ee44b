package seal

import (
	"cmp"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// ErrOpen is the only error returned for bad input by Open, DEK.Open,
// UnwrapDEK, Rewrap, RewrapDEK and stream reads: wrong key, wrong AAD,
// tampering, truncation, unknown KEK id or malformed bytes alike.
var ErrOpen = errors.New("seal: cannot open sealed value")

// Format bytes: the first byte of everything this package produces.
const (
	fmtField        = 0x01 // KeyRing.Seal
	fmtWrappedDEK   = 0x02 // KeyRing.NewDEK
	fmtSubjectValue = 0x03 // DEK.Seal
	fmtStream       = 0x04 // KeyRing.NewWriter
)

const (
	nonceSize  = 12
	tagSize    = 16
	wrappedLen = nonceSize + KeySize + tagSize // 60
)

const (
	wrapLabel = "claims/seal wrap\x00"
	bodyLabel = "claims/seal body\x00"
)

// wrapAAD = wrapLabel | format | kidLen | kid | aad.
func wrapAAD(format byte, kid string, aad []byte) []byte {
	b := make([]byte, 0, len(wrapLabel)+2+len(kid)+len(aad))
	b = append(b, wrapLabel...)
	b = append(b, format, byte(len(kid)))
	b = append(b, kid...)
	return append(b, aad...)
}

// bodyAAD = bodyLabel | format | aad.
func bodyAAD(format byte, aad []byte) []byte {
	b := make([]byte, 0, len(bodyLabel)+1+len(aad))
	b = append(b, bodyLabel...)
	b = append(b, format)
	return append(b, aad...)
}

// AAD returns "table.column:rowID", the associated data that binds a sealed
// value to its place. table and column must be non-empty identifiers
// ([A-Za-z0-9_-]+), so the encoding is unambiguous whatever rowID contains;
// AAD panics otherwise, since they are constants in code.
func AAD(table, column, rowID string) []byte {
	if !isIdent(table) || !isIdent(column) {
		panic(fmt.Sprintf("seal: AAD table %q and column %q must be identifiers [A-Za-z0-9_-]+", table, column))
	}
	b := make([]byte, 0, len(table)+len(column)+len(rowID)+2)
	b = append(b, table...)
	b = append(b, '.')
	b = append(b, column...)
	b = append(b, ':')
	return append(b, rowID...)
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !identByte(s[i]) {
			return false
		}
	}
	return true
}

type kekEntry struct {
	kek  KEK
	aead func() cipher.AEAD // random-nonce AES-256-GCM under the KEK; see hide
}

// KeyRing holds one primary KEK, which wraps new DEKs, and older KEKs, which
// only unwrap. It is immutable and safe for concurrent use.
type KeyRing struct {
	primary *kekEntry
	keks    map[string]*kekEntry
}

// NewKeyRing returns a KeyRing with primary as the primary KEK. Every KEK
// must be valid and ids must be distinct.
func NewKeyRing(primary KEK, others ...KEK) (*KeyRing, error) {
	kr := &KeyRing{keks: make(map[string]*kekEntry, 1+len(others))}
	for i, k := range append([]KEK{primary}, others...) {
		if !k.valid() {
			return nil, fmt.Errorf("seal: KEK %d is the zero KEK", i)
		}
		if _, dup := kr.keks[k.id]; dup {
			return nil, fmt.Errorf("seal: duplicate KEK id %q", k.id)
		}
		e := &kekEntry{kek: k, aead: hide(gcmRandom(k.key()[:]))}
		kr.keks[k.id] = e
		if i == 0 {
			kr.primary = e
		}
	}
	return kr, nil
}

// Primary returns the primary KEK's id.
func (kr *KeyRing) Primary() string { return kr.primary.kek.id }

// IDs returns the ids of all KEKs, sorted (shorter first, so k2 < k10).
func (kr *KeyRing) IDs() []string {
	ids := make([]string, 0, len(kr.keks))
	for id := range kr.keks {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b))
	})
	return ids
}

// String returns "seal.KeyRing(primary=k2, ids=[k1 k2])"; no key bytes.
func (kr *KeyRing) String() string {
	if kr == nil {
		return "seal.KeyRing(nil)"
	}
	return fmt.Sprintf("seal.KeyRing(primary=%s, ids=%v)", kr.Primary(), kr.IDs())
}

// GoString is like String.
func (kr *KeyRing) GoString() string { return kr.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (kr *KeyRing) LogValue() slog.Value { return slog.StringValue(kr.String()) }

// MarshalJSON returns the redacted form.
func (kr *KeyRing) MarshalJSON() ([]byte, error) { return []byte(`"` + kr.String() + `"`), nil }

// appendHeader appends format | kidLen | kid | wLen | wrap(dek) under the
// primary KEK.
func (kr *KeyRing) appendHeader(dst []byte, format byte, dek *[KeySize]byte, aad []byte) []byte {
	p := kr.primary
	dst = append(dst, format, byte(len(p.kek.id)))
	dst = append(dst, p.kek.id...)
	dst = binary.BigEndian.AppendUint16(dst, wrappedLen)
	return p.aead().Seal(dst, nil, dek[:], wrapAAD(format, p.kek.id, aad))
}

// header is a parsed envelope header. It is unauthenticated until unwrap
// succeeds.
type header struct {
	format  byte
	kid     string
	wrapped []byte
}

// parseHeader splits b into a header and the rest.
func parseHeader(b []byte) (h header, rest []byte, ok bool) {
	if len(b) < 2 {
		return h, nil, false
	}
	h.format, b = b[0], b[1:]
	kidLen := int(b[0])
	b = b[1:]
	if kidLen == 0 || kidLen > maxIDLen || len(b) < kidLen+2+wrappedLen {
		return h, nil, false
	}
	h.kid, b = string(b[:kidLen]), b[kidLen:]
	if !validID(h.kid) || binary.BigEndian.Uint16(b) != wrappedLen {
		return h, nil, false
	}
	b = b[2:]
	h.wrapped, rest = b[:wrappedLen], b[wrappedLen:]
	return h, rest, true
}

// unwrap authenticates the header against aad and returns the DEK.
func (kr *KeyRing) unwrap(h header, aad []byte) (*[KeySize]byte, bool) {
	e, ok := kr.keks[h.kid]
	if !ok {
		return nil, false
	}
	var dek [KeySize]byte
	pt, err := e.aead().Open(dek[:0], nil, h.wrapped, wrapAAD(h.format, h.kid, aad))
	if err != nil || len(pt) != KeySize {
		return nil, false
	}
	return &dek, true
}

// Seal encrypts plaintext under a fresh DEK, wraps the DEK under the primary
// KEK, and binds aad to both layers (see the package documentation for the
// format).
func (kr *KeyRing) Seal(plaintext, aad []byte) ([]byte, error) {
	if kr == nil {
		return nil, errors.New("seal: nil KeyRing")
	}
	var dek [KeySize]byte
	rand.Read(dek[:])
	body := gcmRandom(dek[:])
	out := make([]byte, 0, 2+len(kr.primary.kek.id)+2+wrappedLen+body.Overhead()+len(plaintext))
	out = kr.appendHeader(out, fmtField, &dek, aad)
	clear(dek[:])
	return body.Seal(out, nil, plaintext, bodyAAD(fmtField, aad)), nil
}

// Open reverses Seal with whichever known KEK wrapped the DEK. It returns
// ErrOpen, and nothing else, for any bad input.
func (kr *KeyRing) Open(sealed, aad []byte) ([]byte, error) {
	if kr == nil {
		return nil, ErrOpen
	}
	h, body, ok := parseHeader(sealed)
	if !ok || h.format != fmtField || len(body) < nonceSize+tagSize {
		return nil, ErrOpen
	}
	dek, ok := kr.unwrap(h, aad)
	if !ok {
		return nil, ErrOpen
	}
	a := gcmRandom(dek[:])
	clear(dek[:])
	pt, err := a.Open(nil, nil, body, bodyAAD(fmtField, aad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// KEKIDOf returns the id of the KEK that wraps a value from Seal, a wrapped
// DEK from NewDEK, or a stream from NewWriter (the first bytes of the stream
// suffice: 2 + len(id) + 2 + 60). The id is read from the unauthenticated
// header; it is a hint for `claims keys status`, not a guarantee.
func KEKIDOf(sealed []byte) (string, error) {
	h, _, ok := parseHeader(sealed)
	if !ok || (h.format != fmtField && h.format != fmtWrappedDEK && h.format != fmtStream) {
		return "", ErrOpen
	}
	return h.kid, nil
}

// rewrap re-wraps the DEK in the header of b under the primary KEK and
// returns new header | rest. If b is already under the primary KEK it
// returns a copy of b after checking that its DEK unwraps.
func (kr *KeyRing) rewrap(b, aad []byte, format byte) ([]byte, error) {
	if kr == nil {
		return nil, ErrOpen
	}
	h, rest, ok := parseHeader(b)
	if !ok || h.format != format {
		return nil, ErrOpen
	}
	dek, ok := kr.unwrap(h, aad)
	if !ok {
		return nil, ErrOpen
	}
	defer clear(dek[:])
	if h.kid == kr.primary.kek.id {
		return slices.Clone(b), nil
	}
	out := make([]byte, 0, 2+len(kr.primary.kek.id)+2+wrappedLen+len(rest))
	out = kr.appendHeader(out, format, dek, aad)
	return append(out, rest...), nil
}

// Rewrap re-wraps the DEK of a value from Seal under the current primary KEK.
// The body is copied unchanged and not decrypted (a corrupted body stays
// corrupted). A value already under the primary KEK is returned as a copy.
func (kr *KeyRing) Rewrap(sealed, aad []byte) ([]byte, error) {
	return kr.rewrap(sealed, aad, fmtField)
}

// NewDEK returns a new per-data-subject DEK and its wrapped form, bound to
// aad (for example AAD("policyholders", "dek", id)), for storage in the
// database. Deleting every copy of wrapped shreds the subject's data.
func (kr *KeyRing) NewDEK(aad []byte) (dek DEK, wrapped []byte, err error) {
	if kr == nil {
		return DEK{}, nil, errors.New("seal: nil KeyRing")
	}
	key := newKey()
	wrapped = kr.appendHeader(make([]byte, 0, 2+len(kr.primary.kek.id)+2+wrappedLen), fmtWrappedDEK, key, aad)
	dek = newDEK(key)
	clear(key[:])
	return dek, wrapped, nil
}

// UnwrapDEK reverses NewDEK. It returns ErrOpen for any bad input.
func (kr *KeyRing) UnwrapDEK(wrapped, aad []byte) (DEK, error) {
	if kr == nil {
		return DEK{}, ErrOpen
	}
	h, rest, ok := parseHeader(wrapped)
	if !ok || h.format != fmtWrappedDEK || len(rest) != 0 {
		return DEK{}, ErrOpen
	}
	key, ok := kr.unwrap(h, aad)
	if !ok {
		return DEK{}, ErrOpen
	}
	d := newDEK(key)
	clear(key[:])
	return d, nil
}

// RewrapDEK re-wraps a wrapped DEK from NewDEK under the current primary KEK.
// The DEK itself, and so everything sealed under it, is unchanged.
func (kr *KeyRing) RewrapDEK(wrapped, aad []byte) ([]byte, error) {
	h, rest, ok := parseHeader(wrapped)
	if !ok || len(rest) != 0 || h.format != fmtWrappedDEK {
		return nil, ErrOpen
	}
	return kr.rewrap(wrapped, aad, fmtWrappedDEK)
}
