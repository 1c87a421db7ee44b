package seal

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// secretForms returns the encodings of key under which it could leak.
func secretForms(key []byte) []string {
	forms := []string{
		base64.RawURLEncoding.EncodeToString(key),
		base64.RawStdEncoding.EncodeToString(key),
		hex.EncodeToString(key),
		strings.ToUpper(hex.EncodeToString(key)),
		fmt.Sprint(key),         // [1 2 3 ...]
		fmt.Sprintf("%#v", key), // []byte{0x1, ...}
		fmt.Sprintf("%v", *(*[KeySize]byte)(key)),
		string(key),
	}
	// Also a long prefix of each, in case of truncation.
	for _, f := range forms[:4] {
		forms = append(forms, f[:16])
	}
	return forms
}

type holder struct {
	Exported KEK
	hidden   KEK
	dek      DEK
	idx      IndexKey
	ring     *KeyRing
	ringVal  KeyRing
}

func TestNoKeyBytesInOutput(t *testing.T) {
	k1, k2 := GenerateKEK("k1"), GenerateKEK("k2")
	kr := mustRing(t, k2, k1)
	dek, _, err := kr.NewDEK(nil)
	if err != nil {
		t.Fatal(err)
	}
	ik := GenerateIndexKey()
	keys := Keys{Ring: kr, Index: ik}
	sw, err := kr.NewWriter(io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	w, _ := kr.NewWriter(&stream, nil)
	w.Close()
	sr, err := kr.NewReader(&stream, nil)
	if err != nil {
		t.Fatal(err)
	}

	var secrets []string
	for _, k := range [][]byte{k1.key()[:], k2.key()[:], dek.s().key[:], ik.key()[:]} {
		secrets = append(secrets, secretForms(k)...)
	}

	values := map[string]any{
		"KEK":         k1,
		"*KEK":        &k1,
		"DEK":         dek,
		"*DEK":        &dek,
		"IndexKey":    ik,
		"*IndexKey":   &ik,
		"KeyRing":     kr,
		"KeyRing val": *kr,
		"Keys":        keys,
		"*Keys":       &keys,
		"[]KEK":       []KEK{k1, k2},
		"map":         map[string]any{"a": k1, "b": dek, "c": ik},
		"holder":      holder{Exported: k1, hidden: k2, dek: dek, idx: ik, ring: kr, ringVal: *kr},
		"*holder":     &holder{Exported: k1, hidden: k2, dek: dek, idx: ik, ring: kr, ringVal: *kr},
		"writer":      sw,
		"reader":      sr,
	}
	for name, v := range values {
		var outs []string
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			outs = append(outs, verb+" "+fmt.Sprintf(verb, v))
		}
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "v", v, slog.Any("any", v), slog.Group("g", "v", v))
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "v", v, slog.Any("any", v))
		outs = append(outs, "slog "+buf.String())
		if j, err := json.Marshal(v); err == nil {
			outs = append(outs, "json "+string(j))
		}
		for _, out := range outs {
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("%s: output contains key bytes: %s", name, out)
				}
			}
		}
	}

	for _, tc := range []struct {
		v    any
		want string
	}{
		{k1, "seal.KEK(k1)"},
		{dek, "seal.DEK"},
		{ik, "seal.IndexKey"},
		{kr, "seal.KeyRing(primary=k2, ids=[k1 k2])"},
	} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if got := fmt.Sprintf(verb, tc.v); got != tc.want {
				t.Errorf("%s = %q, want %q", verb, got, tc.want)
			}
		}
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "k", tc.v)
		if !strings.Contains(buf.String(), tc.want) {
			t.Errorf("slog = %q, want %q", buf.String(), tc.want)
		}
	}
}
