package auth

import (
	_ "embed"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Password length limits, in the spirit of NIST SP 800-63B §5.1.1.2: length
// is what makes memorised secrets strong, so we require a generous minimum
// and impose no composition rules (they push users to predictable patterns
// like "Password1!").
const (
	// MinPasswordRunes is counted in Unicode code points after NFC
	// normalisation, so "é" typed as one precomposed character or as
	// "e"+combining accent counts the same.
	MinPasswordRunes = 12
	// MaxPasswordBytes bounds the raw input. It is far above any human
	// passphrase, and refusing longer input before any normalisation or
	// hashing keeps the cost of a hostile request tiny.
	MaxPasswordBytes = 256
)

// Policy rule identifiers carried in PolicyError.Rule. They are stable so
// HTTP handlers and UIs can map them to localised messages.
const (
	RuleMinLength       = "min_length"
	RuleMaxLength       = "max_length"
	RuleCommon          = "common"
	RuleContainsContext = "contains_context"
)

// PolicyError says which password rule was violated. Message is safe to show
// to the user; it never echoes the password or the context words.
type PolicyError struct {
	Rule    string
	Message string
}

func (e *PolicyError) Error() string { return "auth: password policy: " + e.Message }

// minContextRunes: context words shorter than this are not searched for as
// substrings. A two-letter local part such as "al" would otherwise forbid
// "always", and a short word adds almost no guessability to a 12+ character
// password anyway.
const minContextRunes = 4

//go:embed common-passwords.txt
var commonPasswordsFile string

// commonPasswords is built on first use rather than in init so programs that
// never check a password do not pay for the map.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	m := make(map[string]struct{}, 1024)
	for line := range strings.Lines(commonPasswordsFile) {
		w := strings.TrimSpace(line)
		if w == "" || strings.HasPrefix(w, "#") {
			continue
		}
		m[strings.ToLower(norm.NFC.String(w))] = struct{}{}
	}
	return m
})

// normalizePassword is the one canonical form used both for policy checks and
// for hashing, so the same passphrase typed on systems that emit different
// Unicode normal forms (macOS tends to NFD, most others NFC) verifies.
func normalizePassword(password string) string {
	return norm.NFC.String(password)
}

// CheckPassword applies the password policy to a new password: at least
// MinPasswordRunes characters, at most MaxPasswordBytes bytes, not a known
// common/breached password, and not equal to or containing any of the
// context words (e.g. the e-mail local part, the user's name, the service
// name). Any Unicode is allowed and there are no composition rules.
//
// Context values containing '@' are treated as e-mail addresses: the whole
// address and its local part are checked. Every value (or local part) is
// also split at . _ - + and white space and each piece is checked, so
// "john.smith@example.com" forbids "smith". Pieces shorter than 4 characters
// only forbid an exact match. Comparisons are case-insensitive.
//
// It returns nil or a *PolicyError. Call it only when a password is being
// set or changed, never at login: existing passwords must keep working when
// the list of common passwords grows.
func CheckPassword(password string, context ...string) error {
	// Checked first, on raw bytes, so oversized input is refused before we
	// spend anything on normalisation or hashing.
	if len(password) > MaxPasswordBytes {
		return &PolicyError{Rule: RuleMaxLength, Message: "password must be at most 256 bytes long"}
	}
	p := normalizePassword(password)
	if utf8.RuneCountInString(p) < MinPasswordRunes {
		return &PolicyError{Rule: RuleMinLength, Message: "password must be at least 12 characters long"}
	}
	lower := strings.ToLower(p)
	if _, ok := commonPasswords()[lower]; ok {
		return &PolicyError{Rule: RuleCommon, Message: "password is too common; choose a less predictable one"}
	}
	for _, w := range contextWords(context) {
		if lower == w || (utf8.RuneCountInString(w) >= minContextRunes && strings.Contains(lower, w)) {
			return &PolicyError{Rule: RuleContainsContext, Message: "password must not contain your name, e-mail address or similar personal words"}
		}
	}
	return nil
}

// contextWords expands and normalises caller-provided context values.
func contextWords(context []string) []string {
	var out []string
	add := func(s string) {
		s = strings.ToLower(norm.NFC.String(strings.TrimSpace(s)))
		if s != "" {
			out = append(out, s)
		}
	}
	for _, c := range context {
		add(c)
		local := c
		if l, _, ok := strings.Cut(c, "@"); ok {
			local = l
			add(local)
		}
		// "john.smith", "John Smith": each piece is a guessable word too.
		for _, part := range strings.FieldsFunc(local, func(r rune) bool {
			return r == '.' || r == '_' || r == '-' || r == '+' || unicode.IsSpace(r)
		}) {
			add(part)
		}
	}
	return out
}
