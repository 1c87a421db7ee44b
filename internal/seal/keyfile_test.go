package seal

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func mustLoad(t *testing.T, dir string, allowInsecure bool) Keys {
	t.Helper()
	k, err := LoadOrCreate(dir, allowInsecure)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "keys")
	k1 := mustLoad(t, dir, false)
	if k1.Ring.Primary() != "k1" || !slices.Equal(k1.Ring.IDs(), []string{"k1"}) {
		t.Fatalf("first run ring = %v", k1.Ring)
	}
	if runtime.GOOS != "windows" {
		if m := fileMode(t, dir); m != 0o700 {
			t.Errorf("dir mode %04o", m)
		}
		for _, f := range []string{"kek-k1.key", "index.key"} {
			if m := fileMode(t, filepath.Join(dir, f)); m != 0o600 {
				t.Errorf("%s mode %04o", f, m)
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("dir holds %d entries, want 2 (no temp files left)", len(entries))
	}

	// Second load returns the same keys.
	k2 := mustLoad(t, dir, false)
	aad := AAD("t", "c", "1")
	s := mustSeal(t, k1.Ring, []byte("x"), aad)
	if got, err := k2.Ring.Open(s, aad); err != nil || string(got) != "x" {
		t.Errorf("reloaded ring cannot open: %v", err)
	}
	if !bytes.Equal(k1.Index.Index("email", []byte("a")), k2.Index.Index("email", []byte("a"))) {
		t.Error("reloaded index key differs")
	}
	text, _ := os.ReadFile(filepath.Join(dir, "kek-k1.key"))
	if !strings.HasPrefix(string(text), "kek:k1:") || !strings.HasSuffix(string(text), "\n") {
		t.Errorf("kek file format: %d bytes", len(text))
	}
}

func TestLoadOrCreatePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("mode bits")
	}
	for _, tc := range []struct {
		name string
		file string // relative to dir; "" is dir itself
		mode os.FileMode
		ok   bool
	}{
		{"kek 0644", "kek-k1.key", 0o644, false},
		{"kek 0640", "kek-k1.key", 0o640, false},
		{"kek 0604", "kek-k1.key", 0o604, false},
		{"kek 0400", "kek-k1.key", 0o400, true},
		{"index 0644", "index.key", 0o644, false},
		{"dir 0755", "", 0o755, false},
		{"dir 0750", "", 0o750, false},
		{"primary 0644", "primary", 0o644, true},
		{"primary 0666", "primary", 0o666, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			mustLoad(t, dir, false)
			if err := SetPrimary(dir, "k1"); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, tc.file)
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreate(dir, false)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("insecure keys accepted")
			}
			wantPath := path
			if tc.file == "" {
				wantPath = dir
			}
			if msg := err.Error(); !strings.Contains(msg, wantPath) || !strings.Contains(msg, formatMode(tc.mode)) {
				t.Errorf("error does not name %s and mode %s: %v", wantPath, formatMode(tc.mode), err)
			}
			if k, err := LoadOrCreate(dir, true); err != nil || k.Ring.Primary() != "k1" {
				t.Errorf("allowInsecure: %v", err)
			}
			if err := CheckPermissions(dir); err == nil {
				t.Error("CheckPermissions found nothing")
			}
		})
	}
}

func formatMode(m os.FileMode) string {
	const digits = "01234567"
	p := m.Perm()
	return string([]byte{'0', digits[p>>6&7], digits[p>>3&7], digits[p&7]})
}

func TestLoadOrCreateErrors(t *testing.T) {
	write := func(t *testing.T, path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setup := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "keys")
		mustLoad(t, dir, false)
		return dir
	}
	k2 := GenerateKEK("k2")
	k2text, _ := k2.MarshalText()
	cases := []struct {
		name   string
		mutate func(t *testing.T, dir string)
		want   string
	}{
		{"missing index", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "index.key")) }, "index.key"},
		{"missing keks", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "kek-k1.key")) }, "KEK"},
		{"two keks no primary", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "kek-k2.key"), string(k2text)) }, "primary"},
		{"primary unknown", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "primary"), "k9\n") }, "k9"},
		{"id mismatch", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "kek-k3.key"), string(k2text)) }, "kek-k3.key"},
		{"garbage kek", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "kek-k1.key"), "nonsense") }, "kek-k1.key"},
		{"garbage index", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "index.key"), "index:xx") }, "index.key"},
		{"bad id file", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "kek-a b.key"), "x") }, "kek-a b.key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := setup(t)
			tc.mutate(t, dir)
			_, err := LoadOrCreate(dir, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
			// Nothing was generated to paper over the problem.
			if tc.name == "missing index" {
				if _, err := os.Stat(filepath.Join(dir, "index.key")); err == nil {
					t.Error("index key was regenerated")
				}
			}
		})
	}
	f := filepath.Join(t.TempDir(), "file")
	write(t, f, "")
	if _, err := LoadOrCreate(f, false); err == nil {
		t.Error("file as keys dir accepted")
	}
}

func TestAddKEK(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	first := mustLoad(t, dir, false)
	aad := AAD("policyholders", "email", "7")
	s1 := mustSeal(t, first.Ring, []byte("alice@example.com"), aad)
	idx1 := first.Index.Index("email", []byte("alice@example.com"))

	k, err := AddKEK(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID() != "k2" {
		t.Fatalf("AddKEK id = %q", k.ID())
	}
	if runtime.GOOS != "windows" {
		if m := fileMode(t, filepath.Join(dir, "kek-k2.key")); m != 0o600 {
			t.Errorf("new kek mode %04o", m)
		}
	}
	second := mustLoad(t, dir, false)
	if second.Ring.Primary() != "k2" || !slices.Equal(second.Ring.IDs(), []string{"k1", "k2"}) {
		t.Fatalf("after rotate: %v", second.Ring)
	}
	if got, err := second.Ring.Open(s1, aad); err != nil || string(got) != "alice@example.com" {
		t.Fatalf("old value after rotate: %v", err)
	}
	if !bytes.Equal(idx1, second.Index.Index("email", []byte("alice@example.com"))) {
		t.Error("rotation changed blind indexes")
	}
	s2, err := second.Ring.Rewrap(s1, aad)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := KEKIDOf(s2); id != "k2" {
		t.Errorf("rewrapped under %q", id)
	}

	// Ids keep counting past gaps and non-numeric ids; k10 sorts after k9.
	for want := 3; want <= 10; want++ {
		k, err := AddKEK(dir)
		if err != nil {
			t.Fatal(err)
		}
		if k.ID() != "k"+strconv.Itoa(want) {
			t.Fatalf("AddKEK id = %q, want k%d", k.ID(), want)
		}
	}
	third := mustLoad(t, dir, false)
	if third.Ring.Primary() != "k10" || len(third.Ring.IDs()) != 10 {
		t.Errorf("ring = %v", third.Ring)
	}
	if err := SetPrimary(dir, "k1"); err != nil {
		t.Fatal(err)
	}
	if p := mustLoad(t, dir, false).Ring.Primary(); p != "k1" {
		t.Errorf("SetPrimary: primary %q", p)
	}
	if err := SetPrimary(dir, "k99"); err == nil {
		t.Error("SetPrimary of a missing KEK succeeded")
	}
	if _, err := AddKEK(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("AddKEK on a missing dir succeeded")
	}
}
