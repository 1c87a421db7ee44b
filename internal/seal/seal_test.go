package seal

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

func mustRing(t testing.TB, primary KEK, others ...KEK) *KeyRing {
	t.Helper()
	kr, err := NewKeyRing(primary, others...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func mustSeal(t testing.TB, kr *KeyRing, pt, aad []byte) []byte {
	t.Helper()
	s, err := kr.Seal(pt, aad)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantErrOpen fails unless err is exactly ErrOpen (no wrapping, no detail).
func wantErrOpen(t testing.TB, what string, got []byte, err error) {
	t.Helper()
	if err != ErrOpen {
		t.Errorf("%s: err = %v, want ErrOpen", what, err)
	}
	if got != nil {
		t.Errorf("%s: returned %d bytes of plaintext with an error", what, len(got))
	}
}

func TestSealRoundTrip(t *testing.T) {
	kr := mustRing(t, GenerateKEK("k1"))
	aad := AAD("policyholders", "email", "42")
	for _, tc := range []struct {
		name string
		pt   []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"short", []byte("alice@example.com")},
		{"binary", []byte{0, 1, 2, 255, 254}},
		{"large", bytes.Repeat([]byte("diagnosis "), 100_000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSeal(t, kr, tc.pt, aad)
			if want := 2 + 2 + 2 + wrappedLen + nonceSize + tagSize + len(tc.pt); len(s) != want {
				t.Errorf("len = %d, want %d", len(s), want)
			}
			if len(tc.pt) > 8 && bytes.Contains(s, tc.pt[:8]) {
				t.Error("ciphertext contains plaintext")
			}
			got, err := kr.Open(s, aad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.pt) {
				t.Fatal("round trip mismatch")
			}
			if id, err := KEKIDOf(s); err != nil || id != "k1" {
				t.Errorf("KEKIDOf = %q, %v", id, err)
			}
		})
	}
	// Same plaintext twice gives different ciphertexts (fresh DEK and nonces).
	a, b := mustSeal(t, kr, []byte("x"), aad), mustSeal(t, kr, []byte("x"), aad)
	if bytes.Equal(a, b) {
		t.Error("sealing is deterministic")
	}
}

func TestOpenWrongAAD(t *testing.T) {
	kr := mustRing(t, GenerateKEK("k1"))
	s := mustSeal(t, kr, []byte("123-45-6789"), AAD("policyholders", "national_id", "42"))
	for _, tc := range []struct {
		name string
		aad  []byte
	}{
		{"other row", AAD("policyholders", "national_id", "43")},
		{"other column", AAD("policyholders", "email", "42")},
		{"other table", AAD("claimants", "national_id", "42")},
		{"row prefix", AAD("policyholders", "national_id", "4")},
		{"row suffix", AAD("policyholders", "national_id", "420")},
		{"nil", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kr.Open(s, tc.aad)
			wantErrOpen(t, "Open", got, err)
			_, err = kr.Rewrap(s, tc.aad)
			wantErrOpen(t, "Rewrap", nil, err)
		})
	}
}

func TestAAD(t *testing.T) {
	if got := string(AAD("claims", "notes", "c-1:x.y")); got != "claims.notes:c-1:x.y" {
		t.Errorf("AAD = %q", got)
	}
	for _, tc := range [][2]string{{"a.b", "c"}, {"a", "b:c"}, {"", "c"}, {"a", ""}, {"a b", "c"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AAD(%q, %q) did not panic", tc[0], tc[1])
				}
			}()
			AAD(tc[0], tc[1], "1")
		}()
	}
}

// Flip every bit of a sealed value: header, wrapped DEK and body.
func TestOpenBitFlips(t *testing.T) {
	kr := mustRing(t, GenerateKEK("k1"), GenerateKEK("k2"))
	aad := AAD("t", "c", "1")
	s := mustSeal(t, kr, []byte("account 12345678"), aad)
	hdrEnd := 2 + 2 + 2 + wrappedLen
	regions := map[string][2]int{
		"format":      {0, 1},
		"kid":         {1, 4},
		"wrapped len": {4, 6},
		"wrapped DEK": {6, hdrEnd},
		"body":        {hdrEnd, len(s)},
	}
	for name, r := range regions {
		t.Run(name, func(t *testing.T) {
			for i := r[0]; i < r[1]; i++ {
				for bit := range 8 {
					m := slices.Clone(s)
					m[i] ^= 1 << bit
					if got, err := kr.Open(m, aad); err != ErrOpen || got != nil {
						t.Fatalf("byte %d bit %d: Open = %d bytes, %v", i, bit, len(got), err)
					}
				}
			}
		})
	}
}

func TestOpenTruncatedAndMalformed(t *testing.T) {
	kr := mustRing(t, GenerateKEK("k1"))
	aad := AAD("t", "c", "1")
	s := mustSeal(t, kr, []byte("some plaintext"), aad)
	for _, n := range []int{0, 1, 2, 3, 4, 5, 6, 30, 65, 66, 67, 77, 78, len(s) - 16, len(s) - 1} {
		got, err := kr.Open(s[:n], aad)
		wantErrOpen(t, "truncated", got, err)
	}
	got, err := kr.Open(append(slices.Clone(s), 0), aad)
	wantErrOpen(t, "extended", got, err)
	var nilRing *KeyRing
	got, err = nilRing.Open(s, aad)
	wantErrOpen(t, "nil ring", got, err)
	// A wrapped DEK from NewDEK and DEK-sealed values are not field values.
	dek, wrapped, err := kr.NewDEK(aad)
	if err != nil {
		t.Fatal(err)
	}
	got, err = kr.Open(wrapped, aad)
	wantErrOpen(t, "wrapped DEK as field", got, err)
	ds, _ := dek.Seal([]byte("x"), aad)
	got, err = kr.Open(ds, aad)
	wantErrOpen(t, "DEK value as field", got, err)
	// Changing the format byte to another known format must fail too.
	m := slices.Clone(s)
	m[0] = fmtWrappedDEK
	_, err = kr.UnwrapDEK(m[:2+2+2+wrappedLen], aad)
	wantErrOpen(t, "field header as wrapped DEK", nil, err)
}

func TestOpenUnknownKEK(t *testing.T) {
	k1, k2 := GenerateKEK("k1"), GenerateKEK("k2")
	aad := AAD("t", "c", "1")
	s := mustSeal(t, mustRing(t, k1), []byte("x"), aad)
	got, err := mustRing(t, k2).Open(s, aad)
	wantErrOpen(t, "unknown id", got, err)
	// Same id, different key bytes.
	got, err = mustRing(t, GenerateKEK("k1")).Open(s, aad)
	wantErrOpen(t, "same id other key", got, err)
}

func TestRotation(t *testing.T) {
	k1, k2 := GenerateKEK("k1"), GenerateKEK("k2")
	aad := AAD("claims", "diagnosis", "c-9")
	pt := []byte("fractured tibia")

	old := mustRing(t, k1)
	s1 := mustSeal(t, old, pt, aad)

	rotated := mustRing(t, k2, k1)
	if rotated.Primary() != "k2" || !slices.Equal(rotated.IDs(), []string{"k1", "k2"}) {
		t.Fatalf("ring = %v", rotated)
	}
	if got, err := rotated.Open(s1, aad); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("k1 value under k2 ring: %q, %v", got, err)
	}
	if id, _ := KEKIDOf(mustSeal(t, rotated, pt, aad)); id != "k2" {
		t.Errorf("new value under %q, want k2", id)
	}

	s2, err := rotated.Rewrap(s1, aad)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := KEKIDOf(s2); id != "k2" {
		t.Errorf("rewrapped under %q, want k2", id)
	}
	hdr1, hdr2 := 2+2+2+wrappedLen, 2+2+2+wrappedLen
	if !bytes.Equal(s1[hdr1:], s2[hdr2:]) {
		t.Error("Rewrap changed the body")
	}
	// Rewrap of a value already under the primary is a no-op copy.
	s3, err := rotated.Rewrap(s2, aad)
	if err != nil || !bytes.Equal(s3, s2) {
		t.Errorf("second Rewrap: %v", err)
	}

	onlyK2 := mustRing(t, k2)
	if got, err := onlyK2.Open(s2, aad); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("rewrapped value after removing k1: %q, %v", got, err)
	}
	got, err := onlyK2.Open(s1, aad)
	wantErrOpen(t, "k1 value after removing k1", got, err)
}

func TestNewKeyRingErrors(t *testing.T) {
	k1 := GenerateKEK("k1")
	if _, err := NewKeyRing(KEK{}); err == nil {
		t.Error("zero KEK accepted")
	}
	if _, err := NewKeyRing(k1, GenerateKEK("k1")); err == nil {
		t.Error("duplicate id accepted")
	}
	if _, err := NewKeyRing(k1, KEK{}); err == nil {
		t.Error("zero other KEK accepted")
	}
	kr := mustRing(t, GenerateKEK("k10"), GenerateKEK("k2"), k1)
	if got := kr.IDs(); !slices.Equal(got, []string{"k1", "k2", "k10"}) {
		t.Errorf("IDs = %v", got)
	}
}

func TestKEKText(t *testing.T) {
	k := GenerateKEK("k7")
	text, err := k.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(text), "kek:k7:") || len(text) != len("kek:k7:")+43 {
		t.Errorf("text = %d bytes, prefix %q", len(text), text[:7])
	}
	k2, err := ParseKEK(" " + string(text) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if k2.ID() != "k7" || *k2.key() != *k.key() {
		t.Error("ParseKEK round trip mismatch")
	}
	// Padded base64 is accepted too.
	if _, err := ParseKEK(string(text) + "="); err != nil {
		t.Errorf("padded: %v", err)
	}
	secret := strings.TrimPrefix(string(text), "kek:k7:")
	for _, bad := range []string{
		"", "kek:", "kek:k7", "kek::" + secret, "kek:k 7:" + secret, "kek:" + strings.Repeat("k", 33) + ":" + secret,
		"KEK:k7:" + secret, "kek:k7:" + secret[:42], "kek:k7:" + secret + "AA", "kek:k7:" + secret[:42] + "!",
		"kek:k7:+" + secret[1:], "index:" + secret,
	} {
		_, err := ParseKEK(bad)
		if err == nil {
			t.Errorf("ParseKEK(%q) accepted", bad)
		}
		if err != nil && len(secret) > 0 && strings.Contains(err.Error(), secret[:20]) {
			t.Errorf("error echoes key material: %v", err)
		}
	}
	if _, err := (KEK{}).MarshalText(); err == nil {
		t.Error("zero KEK marshaled")
	}
	defer func() {
		if recover() == nil {
			t.Error("GenerateKEK with bad id did not panic")
		}
	}()
	GenerateKEK("k:1")
}

func TestParseKEKList(t *testing.T) {
	k1, k2 := GenerateKEK("k1"), GenerateKEK("k2")
	t1, _ := k1.MarshalText()
	t2, _ := k2.MarshalText()
	kr, err := ParseKEKList(string(t2) + ", " + string(t1) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if kr.Primary() != "k2" || !slices.Equal(kr.IDs(), []string{"k1", "k2"}) {
		t.Errorf("ring = %v", kr)
	}
	s := mustSeal(t, mustRing(t, k1), []byte("x"), nil)
	if _, err := kr.Open(s, nil); err != nil {
		t.Errorf("open with parsed ring: %v", err)
	}
	for _, bad := range []string{"", ",", string(t1) + ",", string(t1) + "," + string(t1), "kek:k1:short"} {
		if _, err := ParseKEKList(bad); err == nil {
			t.Errorf("ParseKEKList(%q) accepted", bad)
		} else if strings.Contains(err.Error(), string(t1[7:27])) {
			t.Errorf("error echoes key material: %v", err)
		}
	}
}

func TestDEK(t *testing.T) {
	k1, k2 := GenerateKEK("k1"), GenerateKEK("k2")
	kr1 := mustRing(t, k1)
	subject := AAD("policyholders", "dek", "ph-7")
	dek, wrapped, err := kr1.NewDEK(subject)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := KEKIDOf(wrapped); id != "k1" {
		t.Errorf("KEKIDOf(wrapped) = %q", id)
	}
	field := AAD("policyholders", "address", "ph-7")
	s, err := dek.Seal([]byte("1 Main St"), field)
	if err != nil {
		t.Fatal(err)
	}
	if s[0] != fmtSubjectValue || len(s) != 1+nonceSize+tagSize+9 {
		t.Errorf("DEK.Seal format: % x", s[:1])
	}
	if got, err := dek.Open(s, field); err != nil || string(got) != "1 Main St" {
		t.Fatalf("DEK.Open = %q, %v", got, err)
	}

	// Unwrap in a later request, after rotation to k2.
	kr2 := mustRing(t, k2, k1)
	dek2, err := kr2.UnwrapDEK(wrapped, subject)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := dek2.Open(s, field); err != nil || string(got) != "1 Main St" {
		t.Fatalf("unwrapped DEK Open = %q, %v", got, err)
	}
	rewrapped, err := kr2.RewrapDEK(wrapped, subject)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := KEKIDOf(rewrapped); id != "k2" {
		t.Errorf("RewrapDEK under %q", id)
	}
	dek3, err := mustRing(t, k2).UnwrapDEK(rewrapped, subject)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := dek3.Open(s, field); err != nil || string(got) != "1 Main St" {
		t.Fatalf("rewrapped DEK Open = %q, %v", got, err)
	}

	// Failures.
	cases := []struct {
		name string
		fn   func() error
	}{
		{"unwrap other subject", func() error { _, err := kr1.UnwrapDEK(wrapped, AAD("policyholders", "dek", "ph-8")); return err }},
		{"unwrap without k1", func() error { _, err := mustRing(t, k2).UnwrapDEK(wrapped, subject); return err }},
		{"unwrap truncated", func() error { _, err := kr1.UnwrapDEK(wrapped[:len(wrapped)-1], subject); return err }},
		{"unwrap extended", func() error { _, err := kr1.UnwrapDEK(append(slices.Clone(wrapped), 0), subject); return err }},
		{"unwrap field value", func() error { _, err := kr1.UnwrapDEK(mustSeal(t, kr1, nil, subject), subject); return err }},
		{"rewrap other subject", func() error { _, err := kr2.RewrapDEK(wrapped, field); return err }},
		{"open wrong aad", func() error { _, err := dek.Open(s, subject); return err }},
		{"open other DEK", func() error {
			other, _, _ := kr1.NewDEK(subject)
			_, err := other.Open(s, field)
			return err
		}},
		{"open truncated", func() error { _, err := dek.Open(s[:len(s)-1], field); return err }},
		{"open short", func() error { _, err := dek.Open(s[:10], field); return err }},
		{"open zero DEK", func() error { _, err := DEK{}.Open(s, field); return err }},
		{"open field value", func() error { _, err := dek.Open(mustSeal(t, kr1, nil, field), field); return err }},
	}
	for _, tc := range cases {
		if err := tc.fn(); err != ErrOpen {
			t.Errorf("%s: err = %v, want ErrOpen", tc.name, err)
		}
	}
	for i := range s {
		m := slices.Clone(s)
		m[i] ^= 0x80
		if _, err := dek.Open(m, field); err != ErrOpen {
			t.Fatalf("flip byte %d: %v", i, err)
		}
	}
	for i := range wrapped {
		m := slices.Clone(wrapped)
		m[i] ^= 0x01
		if _, err := kr1.UnwrapDEK(m, subject); err != ErrOpen {
			t.Fatalf("flip wrapped byte %d: %v", i, err)
		}
	}
	if _, err := (DEK{}).Seal(nil, nil); err == nil {
		t.Error("zero DEK sealed")
	}
}

func TestKEKIDOf(t *testing.T) {
	kr := mustRing(t, GenerateKEK("prod-2024_a"))
	s := mustSeal(t, kr, []byte("x"), nil)
	if id, err := KEKIDOf(s); err != nil || id != "prod-2024_a" {
		t.Errorf("KEKIDOf = %q, %v", id, err)
	}
	for _, bad := range [][]byte{nil, {1}, {1, 0}, s[:10], {9, 1, 'k', 0, 60}} {
		if _, err := KEKIDOf(bad); !errors.Is(err, ErrOpen) {
			t.Errorf("KEKIDOf(% x) err = %v", bad, err)
		}
	}
	m := slices.Clone(s)
	m[2] = ':'
	if _, err := KEKIDOf(m); err == nil {
		t.Error("KEKIDOf accepted invalid id")
	}
}

func TestBlindIndex(t *testing.T) {
	k := GenerateIndexKey()
	a := k.Index("email", []byte("alice@example.com"))
	if len(a) != 32 {
		t.Fatalf("len = %d", len(a))
	}
	if !bytes.Equal(a, k.Index("email", []byte("alice@example.com"))) {
		t.Error("not deterministic")
	}
	text, _ := k.MarshalText()
	k2, err := ParseIndexKey(string(text) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, k2.Index("email", []byte("alice@example.com"))) {
		t.Error("parsed key gives a different index")
	}
	seen := map[string]string{}
	for _, tc := range []struct{ domain, value string }{
		{"email", "alice@example.com"},
		{"email", "bob@example.com"},
		{"national_id", "alice@example.com"},
		{"emai", "lalice@example.com"},
		{"", "emailalice@example.com"},
		{"policy_number", "P-1"},
		{"policy_number", "P-2"},
	} {
		x := string(k.Index(tc.domain, []byte(tc.value)))
		if prev, dup := seen[x]; dup {
			t.Errorf("%s/%s collides with %s", tc.domain, tc.value, prev)
		}
		seen[x] = tc.domain + "/" + tc.value
	}
	if bytes.Equal(a, GenerateIndexKey().Index("email", []byte("alice@example.com"))) {
		t.Error("different keys give the same index")
	}
	for _, bad := range []string{"", "index:", "index:AAAA", "kek:k1:" + strings.TrimPrefix(string(text), "index:")} {
		if _, err := ParseIndexKey(bad); err == nil {
			t.Errorf("ParseIndexKey(%q) accepted", bad)
		}
	}
}

// The KeyRing and DEK are shared by every request; run under -race.
func TestConcurrentUse(t *testing.T) {
	kr := mustRing(t, GenerateKEK("k2"), GenerateKEK("k1"))
	dek, _, _ := kr.NewDEK(nil)
	done := make(chan error)
	for g := range 8 {
		go func() {
			var err error
			for i := range 200 {
				aad := AAD("t", "c", string(rune('a'+g))+string(rune('a'+i%26)))
				var s, got []byte
				if s, err = kr.Seal([]byte("v"), aad); err != nil {
					break
				}
				if got, err = kr.Open(s, aad); err != nil || string(got) != "v" {
					break
				}
				if s, err = dek.Seal([]byte("w"), aad); err != nil {
					break
				}
				if got, err = dek.Open(s, aad); err != nil || string(got) != "w" {
					break
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
