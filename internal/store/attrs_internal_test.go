package store

import (
	"encoding/json"
	"testing"
)

func TestAttrsLikeJSON(t *testing.T) {
	for _, m := range []map[string]string{
		{"a": "b"}, {"z": "1", "a": "x<y>&z", "m": "quote\" back\\ \n tab\t", "é": "ünï\u2028\u2029", "bad": "\xff\xfe"},
		{"": ""}, {"k": "\x00\x1f\x7f"},
	} {
		want, _ := json.Marshal(m)
		if got := attrs(m); got != string(want) {
			t.Errorf("attrs(%q) = %s, want %s", m, got, want)
		}
	}
}
