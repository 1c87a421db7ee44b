package kms

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/seal"
)

// Transit is a client of the Vault / OpenBao transit secrets engine over
// its HTTP API (the same on both):
//
//	POST {Addr}/v1/{Mount}/encrypt/{Key}  {"plaintext": "<base64>"}    -> {"data": {"ciphertext": "vault:v1:..."}}
//	POST {Addr}/v1/{Mount}/decrypt/{Key}  {"ciphertext": "vault:v1:..."} -> {"data": {"plaintext": "<base64>"}}
//
// with the token in the X-Vault-Token header. Errors come back as
// {"errors": ["..."]} with a 4xx/5xx status.
type Transit struct {
	Addr  string // https://vault.example:8200
	Token string
	Mount string // default "transit"
	Key   string // transit key name
	HTTP  *http.Client
}

func (t *Transit) call(ctx context.Context, op string, body, out any) error {
	mount := t.Mount
	if mount == "" {
		mount = "transit"
	}
	u := strings.TrimRight(t.Addr, "/") + "/v1/" + strings.Trim(mount, "/") + "/" + op + "/" + url.PathEscape(t.Key)
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", t.Token)
	req.Header.Set("Content-Type", "application/json")
	hc := t.HTTP
	if hc == nil {
		// Never follow redirects: a redirect could carry the token to
		// another host (ASVS V15.3.2).
		hc = &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("kms: transit %s: %w", op, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("kms: transit %s: %w", op, err)
	}
	if res.StatusCode/100 != 2 {
		var e struct {
			Errors []string `json:"errors"`
		}
		_ = json.Unmarshal(raw, &e)
		return fmt.Errorf("kms: transit %s: HTTP %d: %s", op, res.StatusCode, strings.Join(e.Errors, "; "))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("kms: transit %s: bad response: %w", op, err)
	}
	return nil
}

// Encrypt returns the transit ciphertext ("vault:v<N>:...") of plaintext.
func (t *Transit) Encrypt(ctx context.Context, plaintext []byte) (string, error) {
	var out struct {
		Data struct {
			Ciphertext string `json:"ciphertext"`
		} `json:"data"`
	}
	if err := t.call(ctx, "encrypt", map[string]string{"plaintext": base64.StdEncoding.EncodeToString(plaintext)}, &out); err != nil {
		return "", err
	}
	if !strings.HasPrefix(out.Data.Ciphertext, "vault:") {
		return "", errors.New("kms: transit encrypt: no ciphertext in the response")
	}
	return out.Data.Ciphertext, nil
}

// Decrypt reverses Encrypt.
func (t *Transit) Decrypt(ctx context.Context, ciphertext string) ([]byte, error) {
	var out struct {
		Data struct {
			Plaintext string `json:"plaintext"`
		} `json:"data"`
	}
	if err := t.call(ctx, "decrypt", map[string]string{"ciphertext": ciphertext}, &out); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(out.Data.Plaintext)
}

// Vault is the transit-protected source: the keys dir holds
// kek-<id>.vault, index.vault (transit ciphertexts of the seal text forms)
// and primary.
type Vault struct {
	Transit       *Transit
	Dir           string
	AllowInsecure bool
}

func (v Vault) Name() string {
	return fmt.Sprintf("Vault/OpenBao transit key %q at %s (ciphertexts in %s)", v.Transit.Key, v.Transit.Addr, v.Dir)
}

func (v Vault) scan() (ids []string, hasIndex bool, err error) {
	entries, err := os.ReadDir(v.Dir)
	if err != nil {
		return nil, false, err
	}
	for _, e := range entries {
		name := e.Name()
		if name == "index.vault" {
			hasIndex = true
		} else if id, ok := strings.CutPrefix(name, "kek-"); ok {
			if id, ok = strings.CutSuffix(id, ".vault"); ok {
				ids = append(ids, id)
			}
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return ids, hasIndex, nil
}

func (v Vault) put(ctx context.Context, name string, text []byte) error {
	ct, err := v.Transit.Encrypt(ctx, text)
	if err != nil {
		return err
	}
	return writeNew(v.Dir, name, []byte(ct))
}

func (v Vault) get(ctx context.Context, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(v.Dir, name))
	if err != nil {
		return "", err
	}
	pt, err := v.Transit.Decrypt(ctx, strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return string(pt), nil
}

// Load decrypts the KEKs and the index key through transit; on first use
// (no .vault files) it generates k1 and an index key and stores their
// transit ciphertexts.
func (v Vault) Load(ctx context.Context) (seal.Keys, error) {
	if err := os.MkdirAll(v.Dir, 0o700); err != nil {
		return seal.Keys{}, err
	}
	if !v.AllowInsecure {
		if err := seal.CheckPermissions(v.Dir); err != nil {
			return seal.Keys{}, err
		}
	}
	ids, hasIndex, err := v.scan()
	if err != nil {
		return seal.Keys{}, err
	}
	switch {
	case len(ids) == 0 && !hasIndex:
		ik := seal.GenerateIndexKey()
		text, _ := ik.MarshalText()
		if err := v.put(ctx, "index.vault", text); err != nil {
			return seal.Keys{}, err
		}
		k := seal.GenerateKEK("k1")
		text, _ = k.MarshalText()
		if err := v.put(ctx, "kek-k1.vault", text); err != nil {
			return seal.Keys{}, err
		}
		ids = []string{"k1"}
	case len(ids) == 0 || !hasIndex:
		return seal.Keys{}, fmt.Errorf("kms: %s has only part of the Vault-protected keys (kek-*.vault and index.vault); restore them", v.Dir)
	}
	keks := map[string]seal.KEK{}
	for _, id := range ids {
		text, err := v.get(ctx, "kek-"+id+".vault")
		if err != nil {
			return seal.Keys{}, err
		}
		k, err := seal.ParseKEK(text)
		if err != nil || k.ID() != id {
			return seal.Keys{}, fmt.Errorf("kms: kek-%s.vault does not hold KEK %s", id, id)
		}
		keks[id] = k
	}
	text, err := v.get(ctx, "index.vault")
	if err != nil {
		return seal.Keys{}, err
	}
	idx, err := seal.ParseIndexKey(text)
	if err != nil {
		return seal.Keys{}, err
	}
	primary := ids[0]
	if b, err := os.ReadFile(filepath.Join(v.Dir, "primary")); err == nil {
		primary = strings.TrimSpace(string(b))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return seal.Keys{}, err
	} else if len(ids) > 1 {
		return seal.Keys{}, fmt.Errorf("kms: %s has %d KEKs but no primary file", v.Dir, len(ids))
	}
	p, ok := keks[primary]
	if !ok {
		return seal.Keys{}, fmt.Errorf("kms: primary KEK %q has no kek-%s.vault", primary, primary)
	}
	var others []seal.KEK
	for _, id := range ids {
		if id != primary {
			others = append(others, keks[id])
		}
	}
	ring, err := seal.NewKeyRing(p, others...)
	if err != nil {
		return seal.Keys{}, err
	}
	return seal.Keys{Ring: ring, Index: idx}, nil
}

func (v Vault) AddKEK(ctx context.Context) (string, error) {
	ids, _, err := v.scan()
	if err != nil {
		return "", err
	}
	k := seal.GenerateKEK(nextID(ids))
	text, _ := k.MarshalText()
	if err := v.put(ctx, "kek-"+k.ID()+".vault", text); err != nil {
		return "", err
	}
	return k.ID(), v.SetPrimary(ctx, k.ID())
}

func (v Vault) SetPrimary(ctx context.Context, id string) error {
	if _, err := os.Stat(filepath.Join(v.Dir, "kek-"+id+".vault")); err != nil {
		return fmt.Errorf("kms: no KEK %q: %w", id, err)
	}
	tmp := filepath.Join(v.Dir, ".primary.tmp")
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(v.Dir, "primary"))
}

func (v Vault) Retire(ctx context.Context, id string) error {
	return retireFile(v.Dir, "kek-"+id+".vault")
}
