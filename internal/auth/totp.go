package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters (RFC 6238). SHA-1, 6 digits, 30 s is what every
// authenticator app supports; SHA-1's collision weakness does not affect
// HMAC-SHA1 as used here.
const (
	totpPeriod = 30
	totpDigits = otp.DigitsSix
	totpAlg    = otp.AlgorithmSHA1
	// totpSecretBytes is 160 bits, the HMAC-SHA1 block-size sweet spot
	// recommended by RFC 4226 §4.
	totpSecretBytes = 20
	// totpMinSecretBytes: RFC 4226 R6 requires at least 128 bits. Refusing
	// shorter secrets also refuses an empty one, which would otherwise be a
	// valid (public) HMAC key.
	totpMinSecretBytes = 16
	// qrSize is the PNG edge in pixels: large enough for phone cameras.
	qrSize = 256
)

var (
	// ErrInvalidCode means the TOTP code (or its format) is wrong.
	ErrInvalidCode = errors.New("auth: invalid code")
	// ErrReplay means the code was right but its time step was already
	// used (or is older than one already used). Treat it like a wrong code
	// towards the user; it is worth logging.
	ErrReplay = errors.New("auth: code already used")
)

// Enrollment is a fresh TOTP secret to show the user once (as URI and QR
// code) while they set up their authenticator app. The caller stores Secret
// encrypted at rest and only activates it after the user proved possession
// with a first CheckTOTP. All three fields are secret-bearing (URI and QR
// contain the secret), so printing or logging an Enrollment is redacted.
type Enrollment struct {
	Secret string // base32, no padding
	URI    string // otpauth://totp/...
	QRPNG  []byte // PNG of URI
}

// String implements fmt.Stringer with every field redacted.
func (e Enrollment) String() string { return "auth.Enrollment{[REDACTED]}" }

// GoString implements fmt.GoStringer with every field redacted.
func (e Enrollment) GoString() string { return e.String() }

// Format implements fmt.Formatter so no verb prints the secret.
func (e Enrollment) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, e.String()) }

// LogValue implements slog.LogValuer with every field redacted.
func (e Enrollment) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

// NewEnrollment creates a TOTP secret for account (e.g. the e-mail) under
// issuer (the service name shown in the app).
func NewEnrollment(issuer, account string) (Enrollment, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      totpPeriod,
		SecretSize:  totpSecretBytes,
		Digits:      totpDigits,
		Algorithm:   totpAlg,
	})
	if err != nil {
		return Enrollment{}, fmt.Errorf("auth: totp enrollment: %w", err)
	}
	img, err := key.Image(qrSize, qrSize)
	if err != nil {
		return Enrollment{}, fmt.Errorf("auth: totp enrollment: QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Enrollment{}, fmt.Errorf("auth: totp enrollment: PNG: %w", err)
	}
	return Enrollment{Secret: key.Secret(), URI: key.URL(), QRPNG: buf.Bytes()}, nil
}

// CheckTOTP validates code for secret at time now, allowing one time step
// of clock skew either way, and returns the time step (unix time / 30) the
// code matched.
//
// Replay protection: a TOTP code stays valid for up to 90 s and the library
// would happily accept it twice, so CheckTOTP refuses any step <= lastStep
// with ErrReplay. lastStep is the step last accepted for this user (0 if
// none). The caller must persist the returned step atomically with
// compare-and-set (UPDATE ... SET totp_last_step = $new WHERE user = $u AND
// totp_last_step = $old), or two parallel requests with the same code could
// both pass this check.
//
// Errors: ErrInvalidCode for a wrong or malformed code, ErrReplay for a
// reused one; any other error means the stored secret is unusable.
func CheckTOTP(secret, code string, now time.Time, lastStep int64) (step int64, err error) {
	if err := validateTOTPSecret(secret); err != nil {
		return 0, err
	}
	if len(code) != totpDigits.Length() || strings.Trim(code, "0123456789") != "" {
		return 0, ErrInvalidCode
	}
	opts := totp.ValidateOpts{Period: totpPeriod, Digits: totpDigits, Algorithm: totpAlg}
	current := now.Unix() / totpPeriod
	var matched, replayed bool
	// Check all three candidate steps every time (no early exit) and
	// prefer the oldest fresh match, so the step that is consumed is the
	// smallest one consistent with the code.
	for s := current - 1; s <= current+1; s++ {
		if s < 0 {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*totpPeriod, 0), opts)
		if err != nil {
			return 0, fmt.Errorf("auth: totp: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) != 1 {
			continue
		}
		if s <= lastStep {
			replayed = true
			continue
		}
		if !matched {
			matched, step = true, s
		}
	}
	switch {
	case matched:
		return step, nil
	case replayed:
		return 0, ErrReplay
	default:
		return 0, ErrInvalidCode
	}
}

// validateTOTPSecret checks a stored secret the way the otp library will
// read it (trimmed, upper-cased, padding optional) and enforces the minimum
// length the library does not.
func validateTOTPSecret(secret string) error {
	s := strings.TrimRight(strings.ToUpper(strings.TrimSpace(secret)), "=")
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
	defer clear(raw)
	if err != nil || len(raw) < totpMinSecretBytes {
		return errors.New("auth: totp: stored secret is not valid base32 of at least 128 bits")
	}
	return nil
}

// Recovery codes use Crockford's base32 alphabet (lower case): no i, l, o or
// u, so codes read aloud or copied from paper are unambiguous.
const recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// NewRecoveryCodes returns n single-use recovery codes formatted
// "xxxx-xxxx-xxxx-xxxx-xxxx-xxxx" (24 symbols of 5 bits = 120 bits each) to
// show the user once, and their hashes (HashRecoveryCode) to store. Ten is
// the usual n; n <= 0 returns nothing.
//
// At 120 bits a stolen table of unsalted SHA-256 hashes can't be searched
// offline (ASVS V6.5.2 asks for 112), so the fast hash is enough.
func NewRecoveryCodes(n int) (codes []string, hashes [][]byte) {
	if n <= 0 {
		return nil, nil
	}
	codes = make([]string, n)
	hashes = make([][]byte, n)
	buf := make([]byte, 24)
	for i := range n {
		_, _ = rand.Read(buf)
		var b strings.Builder
		for j, r := range buf {
			if j > 0 && j%4 == 0 {
				b.WriteByte('-')
			}
			// 256 is a multiple of 32, so masking keeps the distribution
			// uniform.
			b.WriteByte(recoveryAlphabet[r&31])
		}
		codes[i] = b.String()
		hashes[i] = HashRecoveryCode(codes[i])
	}
	return codes, hashes
}

// HashRecoveryCode returns the storage hash of a recovery code as typed by a
// user: case, spaces and dashes are ignored and the look-alikes o→0, i/l→1
// are folded (Crockford decoding), so a code copied imperfectly from paper
// still matches. Compare with Equal, and delete the stored hash on use.
func HashRecoveryCode(code string) []byte {
	var b strings.Builder
	for _, r := range strings.ToLower(code) {
		switch r {
		case '-', ' ', '\t':
			continue
		case 'o':
			r = '0'
		case 'i', 'l':
			r = '1'
		}
		b.WriteRune(r)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return sum[:]
}
