package seal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

const (
	indexFile   = "index.key"
	primaryFile = "primary"
	kekPrefix   = "kek-"
	keySuffix   = ".key"
	maxKeyFile  = 4 << 10
)

// Keys is what a keys directory holds.
type Keys struct {
	Ring  *KeyRing
	Index IndexKey
}

func kekFileName(id string) string { return kekPrefix + id + keySuffix }

// kekFileID returns the id in a "kek-<id>.key" file name.
func kekFileID(name string) (string, bool) {
	id, ok := strings.CutPrefix(name, kekPrefix)
	if !ok {
		return "", false
	}
	id, ok = strings.CutSuffix(id, keySuffix)
	return id, ok
}

// LoadOrCreate loads the keys in dir: every "kek-<id>.key", "index.key", and
// the optional "primary" file naming the primary KEK (required if there is
// more than one KEK). On first run (dir missing or holding neither KEKs nor
// an index key) it creates dir with mode 0700, a KEK "k1" and an index key,
// each mode 0600.
//
// It refuses, with an error naming the path and its mode, a directory or key
// file that group or others may access, or a primary file they may write,
// unless allowInsecure is true; then it loads the keys anyway and the caller
// should warn (CheckPermissions gives the details).
//
// It never replaces an existing key. A directory with KEKs but no index key,
// or the reverse, is an error rather than a first run, since generating the
// missing key would silently break existing data or lookups.
func LoadOrCreate(dir string, allowInsecure bool) (Keys, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return Keys{}, fmt.Errorf("seal: creating keys dir: %w", err)
		}
	case err != nil:
		return Keys{}, fmt.Errorf("seal: keys dir: %w", err)
	case !fi.IsDir():
		return Keys{}, fmt.Errorf("seal: keys dir %s is not a directory", dir)
	}
	if !allowInsecure {
		if err := CheckPermissions(dir); err != nil {
			return Keys{}, err
		}
	}

	kekIDs, hasIndex, err := scanDir(dir)
	if err != nil {
		return Keys{}, err
	}
	switch {
	case len(kekIDs) == 0 && !hasIndex:
		if err := createFirstKeys(dir); err != nil {
			return Keys{}, err
		}
		if kekIDs, hasIndex, err = scanDir(dir); err != nil {
			return Keys{}, err
		}
		if len(kekIDs) == 0 || !hasIndex {
			return Keys{}, fmt.Errorf("seal: keys dir %s: first-run keys vanished", dir)
		}
	case len(kekIDs) == 0:
		return Keys{}, fmt.Errorf("seal: keys dir %s has %s but no %s*%s files; refusing to generate a new KEK (restore the KEK files)", dir, indexFile, kekPrefix, keySuffix)
	case !hasIndex:
		return Keys{}, fmt.Errorf("seal: keys dir %s has KEKs but no %s; refusing to generate one, which would break every blind index (restore it)", dir, indexFile)
	}

	keks := make(map[string]KEK, len(kekIDs))
	for _, id := range kekIDs {
		path := filepath.Join(dir, kekFileName(id))
		text, err := readKeyFile(path)
		if err != nil {
			return Keys{}, err
		}
		k, err := ParseKEK(text)
		if err != nil {
			return Keys{}, fmt.Errorf("%s: %w", path, err)
		}
		if k.ID() != id {
			return Keys{}, fmt.Errorf("seal: %s holds KEK %q, want %q", path, k.ID(), id)
		}
		keks[id] = k
	}
	text, err := readKeyFile(filepath.Join(dir, indexFile))
	if err != nil {
		return Keys{}, err
	}
	index, err := ParseIndexKey(text)
	if err != nil {
		return Keys{}, fmt.Errorf("%s: %w", filepath.Join(dir, indexFile), err)
	}

	primary, err := readPrimary(dir, kekIDs)
	if err != nil {
		return Keys{}, err
	}
	others := make([]KEK, 0, len(kekIDs)-1)
	for _, id := range kekIDs {
		if id != primary {
			others = append(others, keks[id])
		}
	}
	ring, err := NewKeyRing(keks[primary], others...)
	if err != nil {
		return Keys{}, err
	}
	return Keys{Ring: ring, Index: index}, nil
}

// CheckPermissions reports (as one error naming each path and its mode)
// whether dir or a key file in it is accessible by group or others, or the
// primary file is writable by them. It returns nil if all is well or on
// Windows, where mode bits mean little.
func CheckPermissions(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	var problems []string
	check := func(path string, fi fs.FileInfo, mask fs.FileMode) {
		if perm := fi.Mode().Perm(); perm&mask != 0 {
			problems = append(problems, fmt.Sprintf("%s has mode %04o (want %04o)", path, perm, perm&^mask))
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("seal: keys dir: %w", err)
	}
	check(dir, fi, 0o077)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("seal: reading keys dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		mask := fs.FileMode(0o077)
		if name == primaryFile {
			mask = 0o022
		} else if _, ok := kekFileID(name); !ok && name != indexFile {
			continue
		}
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path) // follows symlinks, as in Kubernetes secret volumes
		if err != nil {
			return fmt.Errorf("seal: %w", err)
		}
		check(path, fi, mask)
	}
	if len(problems) > 0 {
		return fmt.Errorf("seal: refusing insecure key files (group or others have access; chmod them, or allow insecure keys): %s", strings.Join(problems, "; "))
	}
	return nil
}

// scanDir lists KEK ids (sorted as KeyRing.IDs) and whether index.key exists.
func scanDir(dir string) (ids []string, hasIndex bool, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, false, fmt.Errorf("seal: reading keys dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == indexFile {
			hasIndex = true
			continue
		}
		id, ok := kekFileID(name)
		if !ok {
			continue
		}
		if !validID(id) {
			return nil, false, fmt.Errorf("seal: %s: bad KEK id in file name", filepath.Join(dir, name))
		}
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return ids, hasIndex, nil
}

func readKeyFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("seal: %s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("seal: reading %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return "", fmt.Errorf("seal: %s is too large for a key file", path)
	}
	return string(b), nil
}

func readPrimary(dir string, ids []string) (string, error) {
	path := filepath.Join(dir, primaryFile)
	text, err := readKeyFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if len(ids) == 1 {
			return ids[0], nil
		}
		return "", fmt.Errorf("seal: keys dir %s has %d KEKs but no %q file naming the primary", dir, len(ids), primaryFile)
	case err != nil:
		return "", err
	}
	id := strings.TrimSpace(text)
	if !slices.Contains(ids, id) {
		return "", fmt.Errorf("seal: %s names KEK %q, which has no %s file", path, id, kekFileName(id))
	}
	return id, nil
}

func createFirstKeys(dir string) error {
	ik := GenerateIndexKey()
	text, _ := ik.MarshalText()
	if err := createKeyFile(dir, indexFile, text); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	k := GenerateKEK("k1")
	text, _ = k.MarshalText()
	if err := createKeyFile(dir, kekFileName("k1"), text); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// createKeyFile writes text to dir/name with mode 0600, never replacing an
// existing file (the error then matches fs.ErrExist). The file appears
// complete or not at all: it is written and synced under a temporary name
// and hard-linked into place.
func createKeyFile(dir, name string, text []byte) error {
	tmp, err := writeTemp(dir, text)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("seal: creating key file: %w", err)
	}
	return syncDir(dir)
}

// writeTemp writes text plus a newline to a new mode-0600 file in dir,
// synced, and returns its path.
func writeTemp(dir string, text []byte) (string, error) {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("seal: creating key file: %w", err)
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", fmt.Errorf("seal: writing key file: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := f.Write(append(text, '\n')); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", fmt.Errorf("seal: writing key file: %w", err)
	}
	return name, nil
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("seal: syncing keys dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("seal: syncing keys dir: %w", err)
	}
	return nil
}

// AddKEK writes a new KEK file with the next id (one more than the highest
// "k<N>" present, so k2, k3, ...) and makes it primary. It backs
// `claims keys rotate`. Running servers keep their old ring until they
// reload; in a multi-instance deployment distribute the new KEK to every
// instance before values sealed under it must be readable everywhere.
func AddKEK(dir string) (KEK, error) {
	ids, _, err := scanDir(dir)
	if err != nil {
		return KEK{}, err
	}
	next := 1
	for _, id := range ids {
		if s, ok := strings.CutPrefix(id, "k"); ok {
			if n, err := strconv.Atoi(s); err == nil && n >= next && strconv.Itoa(n) == s {
				next = n + 1
			}
		}
	}
	k := GenerateKEK("k" + strconv.Itoa(next))
	text, _ := k.MarshalText()
	if err := createKeyFile(dir, kekFileName(k.ID()), text); err != nil {
		return KEK{}, err
	}
	if err := SetPrimary(dir, k.ID()); err != nil {
		return KEK{}, err
	}
	return k, nil
}

// SetPrimary makes the existing KEK id the primary one by (atomically)
// rewriting dir's primary file.
func SetPrimary(dir, id string) error {
	if !validID(id) {
		return fmt.Errorf("seal: invalid KEK id %q", id)
	}
	if _, err := os.Stat(filepath.Join(dir, kekFileName(id))); err != nil {
		return fmt.Errorf("seal: no KEK %q: %w", id, err)
	}
	tmp, err := writeTemp(dir, []byte(id))
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, primaryFile)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("seal: writing primary file: %w", err)
	}
	return syncDir(dir)
}

// ParseKEKList parses CLAIMS_KEKS-style text: comma-separated
// "kek:<id>:<base64url>" items, the first of which is primary. Errors never
// echo key material.
func ParseKEKList(s string) (*KeyRing, error) {
	items := strings.Split(s, ",")
	keks := make([]KEK, 0, len(items))
	for i, item := range items {
		k, err := ParseKEK(item)
		if err != nil {
			return nil, fmt.Errorf("seal: KEK list item %d: %w", i+1, err)
		}
		keks = append(keks, k)
	}
	return NewKeyRing(keks[0], keks[1:]...)
}
