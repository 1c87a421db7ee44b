package auth

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckPassword(t *testing.T) {
	email := "john.smith@example.com"
	cases := []struct {
		name     string
		password string
		context  []string
		rule     string // "" = accepted
	}{
		{"empty", "", nil, RuleMinLength},
		{"11 ascii", "abcdefghijk", nil, RuleMinLength},
		{"12 ascii", "tbxq-vorm-ple", nil, ""},
		{"11 two-byte runes", strings.Repeat("é", 11), nil, RuleMinLength},
		{"12 two-byte runes (22+ bytes)", strings.Repeat("é", 12), nil, ""},
		{"11 chars NFD (22 code points)", strings.Repeat("e\u0301", 11), nil, RuleMinLength},
		{"12 chars NFD", strings.Repeat("e\u0301", 12), nil, ""},
		{"unicode passphrase", "пароль это не 電池 staple", nil, ""},
		{"emoji", "🐎🔋📎✅🐎🔋📎✅🐎🔋📎✅", nil, ""},
		{"spaces allowed", "a b c d e f g h i j", nil, ""},
		{"no composition rules", "lowercaseonlybutlong", nil, ""},
		{"256 bytes", strings.Repeat("q7", 128), nil, ""},
		{"257 bytes", strings.Repeat("q7", 128) + "x", nil, RuleMaxLength},
		{"huge", strings.Repeat("a", 1<<20), nil, RuleMaxLength},
		{"common password1234", "password1234", nil, RuleCommon},
		{"common case-insensitive", "PassWord1234", nil, RuleCommon},
		{"common qwertyuiop123", "qwertyuiop123", nil, RuleCommon},
		{"common 123456789012", "123456789012", nil, RuleCommon},
		{"common iloveyou1234", "ILOVEYOU1234", nil, RuleCommon},
		{"equals local part", "johnsmith.lol", []string{"johnsmith.lol@example.com"}, RuleContainsContext},
		{"contains local part", "xx-john.smith-xx", []string{email}, RuleContainsContext},
		{"contains piece of local part", "mr-SMITH-goes-to-town", []string{email}, RuleContainsContext},
		{"contains whole email", "a" + email, []string{email}, RuleContainsContext},
		{"contains plain context word", "welcome to openclaims!", []string{"OpenClaims"}, RuleContainsContext},
		{"short context word only blocks equality", "always be closing", []string{"al@example.com"}, ""},
		{"empty context ignored", "tbxq-vorm-ple", []string{"", " "}, ""},
		{"unrelated context", "tbxq-vorm-ple", []string{email}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPassword(tc.password, tc.context...)
			if tc.rule == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v; want *PolicyError %s", err, tc.rule)
			}
			if pe.Rule != tc.rule {
				t.Fatalf("rule = %s; want %s", pe.Rule, tc.rule)
			}
			if pe.Message == "" || (tc.password != "" && strings.Contains(pe.Error(), tc.password)) {
				t.Fatalf("bad message %q", pe.Error())
			}
		})
	}
}

func TestCommonPasswordList(t *testing.T) {
	var n, long int
	seen := map[string]bool{}
	for line := range strings.Lines(commonPasswordsFile) {
		w := strings.TrimRight(line, "\n")
		if w == "" {
			t.Fatal("blank line in list")
		}
		if w != strings.ToLower(w) || w != strings.TrimSpace(w) {
			t.Errorf("entry %q must be lower-case and trimmed", w)
		}
		if seen[w] {
			t.Errorf("duplicate %q", w)
		}
		seen[w] = true
		n++
		if utf8.RuneCountInString(w) >= MinPasswordRunes {
			long++
		}
	}
	if n < 500 {
		t.Fatalf("only %d entries", n)
	}
	if long < 100 {
		t.Fatalf("only %d entries long enough to matter", long)
	}
	for _, w := range []string{"password1234", "qwertyuiop123", "123456789012", "iloveyou1234"} {
		if !seen[w] {
			t.Errorf("%q missing", w)
		}
	}
	// Every listed password long enough to pass the length rule must be
	// refused as common.
	for w := range seen {
		if utf8.RuneCountInString(w) < MinPasswordRunes || len(w) > MaxPasswordBytes {
			continue
		}
		var pe *PolicyError
		if err := CheckPassword(w); !errors.As(err, &pe) || pe.Rule != RuleCommon {
			t.Errorf("listed %q: %v", w, err)
		}
	}
}
