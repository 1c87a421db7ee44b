package auth

import (
	"bytes"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// RFC 6238 Appendix B uses the ASCII secret "12345678901234567890" for SHA1.
var rfcSecret = base32.StdEncoding.EncodeToString([]byte("12345678901234567890"))

var rfcVectors = []struct {
	unix int64
	code string // 8 digits
}{
	{59, "94287082"},
	{1111111109, "07081804"},
	{1111111111, "14050471"},
	{1234567890, "89005924"},
	{2000000000, "69279037"},
}

func TestRFC6238KnownAnswers(t *testing.T) {
	opts := totp.ValidateOpts{Period: 30, Skew: 0, Digits: otp.DigitsEight, Algorithm: otp.AlgorithmSHA1}
	for _, v := range rfcVectors {
		at := time.Unix(v.unix, 0).UTC()
		got, err := totp.GenerateCodeCustom(rfcSecret, at, opts)
		if err != nil || got != v.code {
			t.Errorf("T=%d: got %q, %v; want %s", v.unix, got, err, v.code)
		}
		if ok, err := totp.ValidateCustom(v.code, rfcSecret, at, opts); !ok || err != nil {
			t.Errorf("T=%d: ValidateCustom = %v, %v", v.unix, ok, err)
		}
		// Our 6-digit check on the same secret: RFC 4226 truncation is
		// value mod 10^digits, so the 6-digit code is the last 6 digits.
		step, err := CheckTOTP(rfcSecret, v.code[2:], at, 0)
		if err != nil || step != v.unix/30 {
			t.Errorf("T=%d: CheckTOTP = %d, %v; want step %d", v.unix, step, err, v.unix/30)
		}
	}
}

func codeAt(t *testing.T, secret string, step int64) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, time.Unix(step*30, 0), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCheckTOTP(t *testing.T) {
	secret := rfcSecret
	now := time.Unix(1_800_000_015, 0)
	cur := now.Unix() / 30

	step, err := CheckTOTP(secret, codeAt(t, secret, cur), now, 0)
	if err != nil || step != cur {
		t.Fatalf("current code: %d, %v", step, err)
	}
	// Replay of the same code, even a second later in the same step.
	if _, err := CheckTOTP(secret, codeAt(t, secret, cur), now.Add(time.Second), step); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	// Still inside the skew window one step later: still a replay.
	if _, err := CheckTOTP(secret, codeAt(t, secret, cur), now.Add(30*time.Second), step); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay next step: %v", err)
	}
	// Skew: previous and next step are accepted when fresh.
	for _, s := range []int64{cur - 1, cur + 1} {
		if got, err := CheckTOTP(secret, codeAt(t, secret, s), now, 0); err != nil || got != s {
			t.Fatalf("skew step %d: %d, %v", s, got, err)
		}
	}
	// Stale step: the user already used the next step's code; the
	// (still in-window) code of the earlier step must not work any more.
	if _, err := CheckTOTP(secret, codeAt(t, secret, cur), now, cur+1); !errors.Is(err, ErrReplay) {
		t.Fatalf("stale step: %v", err)
	}
	if _, err := CheckTOTP(secret, codeAt(t, secret, cur-1), now, cur); !errors.Is(err, ErrReplay) {
		t.Fatalf("stale previous step: %v", err)
	}
	// Out of the window.
	for _, s := range []int64{cur - 2, cur + 2, cur - 100} {
		c := codeAt(t, secret, s)
		if c == codeAt(t, secret, cur-1) || c == codeAt(t, secret, cur) || c == codeAt(t, secret, cur+1) {
			continue // 1-in-a-million collision; not what we test
		}
		if _, err := CheckTOTP(secret, c, now, 0); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("step %d (cur %d): %v", s, cur, err)
		}
	}
	// Malformed codes.
	good := codeAt(t, secret, cur)
	for _, c := range []string{"", "12345", "1234567", "abcdef", " " + good[1:], good + " ", "１２３４５６", "-12345"} {
		if _, err := CheckTOTP(secret, c, now, 0); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("code %q: %v", c, err)
		}
	}
}

func TestCheckTOTPBadSecret(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	short := base32.StdEncoding.EncodeToString(make([]byte, 10))
	for _, s := range []string{"", "not base32!", short} {
		// An empty secret is a public HMAC key: its codes must not work.
		code := "000000"
		if s != "not base32!" {
			code = codeAt(t, s, now.Unix()/30)
		}
		_, err := CheckTOTP(s, code, now, 0)
		if err == nil || errors.Is(err, ErrInvalidCode) || errors.Is(err, ErrReplay) {
			t.Errorf("secret %q: err = %v; want a distinct error", s, err)
		}
	}
}

func TestNewEnrollment(t *testing.T) {
	e, err := NewEnrollment("OpenClaims", "jane@example.com")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(e.Secret)
	if err != nil || len(raw) != 20 {
		t.Fatalf("secret: %d bytes, %v", len(raw), err)
	}
	u, err := url.Parse(e.URI)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("URI %q", e.URI)
	}
	q := u.Query()
	if q.Get("secret") != e.Secret || q.Get("issuer") != "OpenClaims" || q.Get("algorithm") != "SHA1" ||
		q.Get("digits") != "6" || q.Get("period") != "30" || !strings.Contains(u.Path, "jane@example.com") {
		t.Fatalf("URI %q", e.URI)
	}
	img, err := png.Decode(bytes.NewReader(e.QRPNG))
	if err != nil || img.Bounds().Dx() != 256 {
		t.Fatalf("QR PNG: %v", err)
	}
	now := time.Unix(1_800_000_000, 0)
	if _, err := CheckTOTP(e.Secret, codeAt(t, e.Secret, now.Unix()/30), now, 0); err != nil {
		t.Fatalf("enrolled secret does not verify: %v", err)
	}
	e2, _ := NewEnrollment("OpenClaims", "jane@example.com")
	if e2.Secret == e.Secret {
		t.Fatal("secret reused")
	}
	if _, err := NewEnrollment("", "x"); err == nil {
		t.Fatal("empty issuer accepted")
	}
	if _, err := NewEnrollment("x", ""); err == nil {
		t.Fatal("empty account accepted")
	}

	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "e", e)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		buf.WriteString(fmt.Sprintf(verb, e))
	}
	if strings.Contains(buf.String(), e.Secret[:10]) || strings.Contains(strings.ToUpper(buf.String()), fmt.Sprintf("%X", e.Secret[:6])) {
		t.Fatalf("secret leaked: %s", buf.String())
	}
}

func TestRecoveryCodes(t *testing.T) {
	codes, hashes := NewRecoveryCodes(10)
	if len(codes) != 10 || len(hashes) != 10 {
		t.Fatal("want 10")
	}
	re := regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){5}$`) // 24 symbols, 120 bits
	seen := map[string]bool{}
	for i, c := range codes {
		if !re.MatchString(c) {
			t.Fatalf("code %q", c)
		}
		if seen[c] {
			t.Fatal("duplicate code")
		}
		seen[c] = true
		if !Equal(hashes[i], HashRecoveryCode(c)) {
			t.Fatal("hash mismatch")
		}
		typed := strings.ToUpper(strings.ReplaceAll(c, "-", " "))
		if !Equal(hashes[i], HashRecoveryCode(typed)) {
			t.Fatalf("%q should match %q", typed, c)
		}
		if Equal(hashes[i], HashRecoveryCode(codes[(i+1)%len(codes)])) {
			t.Fatal("different codes match")
		}
	}
	if !Equal(HashRecoveryCode("0011-abcd-efgh"), HashRecoveryCode("oOIl-ABCD-EFGH")) {
		t.Fatal("look-alike folding")
	}
	if c, h := NewRecoveryCodes(0); c != nil || h != nil {
		t.Fatal("n=0 should return nothing")
	}
}
