// Package kms is where the key-encryption keys (KEKs) come from. A Source
// yields the key ring and index key that package seal uses; three exist:
//
//   - Files: kek-<id>.key and index.key in the keys dir (seal.LoadOrCreate),
//     mode 0600, refused when group or others can read them. The default.
//   - Env: CLAIMS_KEKS ("kek:<id>:<base64url>,...", first = primary), for
//     platforms that inject secrets as environment variables; the index key
//     still comes from the keys dir.
//   - Vault: HashiCorp Vault or OpenBao transit. The keys dir then holds only
//     transit ciphertexts of the KEKs and the index key (kek-<id>.vault,
//     index.vault); at start-up each is decrypted once through
//     POST /v1/<mount>/decrypt/<key>. Whoever copies the keys dir (or a
//     backup, or a disk image) without a Vault token that may use the
//     transit key gets nothing. Data keys are still wrapped locally, so
//     Vault is not on the request path.
//
// Every source supports Load; AddKEK (rotation) is supported by Files and
// Vault. With Env, rotation means generating a KEK (`claims keys generate`),
// putting it first in CLAIMS_KEKS on every node, and running
// `claims keys rotate --no-add`.
package kms

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/openclaims/claims/internal/seal"
)

// Source yields the keys.
type Source interface {
	// Name describes the source for `claims keys status` (no secrets).
	Name() string
	// Load returns the key ring and index key.
	Load(ctx context.Context) (seal.Keys, error)
	// AddKEK creates a new KEK and makes it primary; it returns its id.
	AddKEK(ctx context.Context) (string, error)
	// SetPrimary makes an existing KEK primary.
	SetPrimary(ctx context.Context, id string) error
	// Retire removes KEK id from the source (the caller checks that no
	// data needs it).
	Retire(ctx context.Context, id string) error
}

// Files is the keys-dir source.
type Files struct {
	Dir           string
	AllowInsecure bool
}

func (f Files) Name() string { return "key files in " + f.Dir }

func (f Files) Load(ctx context.Context) (seal.Keys, error) {
	return seal.LoadOrCreate(f.Dir, f.AllowInsecure)
}

func (f Files) AddKEK(ctx context.Context) (string, error) {
	k, err := seal.AddKEK(f.Dir)
	return k.ID(), err
}

func (f Files) SetPrimary(ctx context.Context, id string) error { return seal.SetPrimary(f.Dir, id) }

func (f Files) Retire(ctx context.Context, id string) error {
	return retireFile(f.Dir, "kek-"+id+".key")
}

// Env is the CLAIMS_KEKS source.
type Env struct {
	KEKs          string // the CLAIMS_KEKS value
	Dir           string // keys dir, for index.key
	AllowInsecure bool
}

func (e Env) Name() string { return "CLAIMS_KEKS (index key in " + e.Dir + ")" }

func (e Env) Load(ctx context.Context) (seal.Keys, error) {
	ring, err := seal.ParseKEKList(e.KEKs)
	if err != nil {
		return seal.Keys{}, fmt.Errorf("CLAIMS_KEKS: %w", err)
	}
	idx, err := loadIndexFile(e.Dir, e.AllowInsecure)
	if err != nil {
		return seal.Keys{}, err
	}
	return seal.Keys{Ring: ring, Index: idx}, nil
}

var errEnvReadOnly = errors.New("kms: CLAIMS_KEKS is read-only here: generate a KEK with `claims keys generate`, put it first in CLAIMS_KEKS on every node, restart, then run `claims keys rotate --no-add`")

func (e Env) AddKEK(ctx context.Context) (string, error)      { return "", errEnvReadOnly }
func (e Env) SetPrimary(ctx context.Context, id string) error { return errEnvReadOnly }
func (e Env) Retire(ctx context.Context, id string) error     { return errEnvReadOnly }

// loadIndexFile reads index.key from dir, creating it on first use.
func loadIndexFile(dir string, insecure bool) (seal.IndexKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return seal.IndexKey{}, err
	}
	if !insecure {
		if err := seal.CheckPermissions(dir); err != nil {
			return seal.IndexKey{}, err
		}
	}
	p := filepath.Join(dir, "index.key")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		k := seal.GenerateIndexKey()
		text, _ := k.MarshalText()
		if err := writeNew(dir, "index.key", text); err != nil {
			return seal.IndexKey{}, err
		}
		return k, nil
	}
	if err != nil {
		return seal.IndexKey{}, err
	}
	return seal.ParseIndexKey(string(b))
}

// writeNew writes dir/name (mode 0600) only if it does not exist, complete
// or not at all.
func writeNew(dir, name string, text []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(text, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Link(tmp, filepath.Join(dir, name))
}

func retireFile(dir, name string) error {
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("kms: %w", err)
	}
	return os.Remove(p)
}

// nextID returns "k<N+1>" for the highest "k<N>" in ids.
func nextID(ids []string) string {
	next := 1
	for _, id := range ids {
		if s, ok := strings.CutPrefix(id, "k"); ok {
			if n, err := strconv.Atoi(s); err == nil && n >= next {
				next = n + 1
			}
		}
	}
	return "k" + strconv.Itoa(next)
}
