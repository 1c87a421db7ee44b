package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/auth"
	"github.com/openclaims/claims/internal/config"
)

// Access tokens live this long; a retired signing key is kept for exactly
// as long (plus the verifier's leeway) so the tokens it signed stay valid
// until they expire, and not longer.
const accessTTL = 10 * time.Minute

// Signing keys live in the keys dir: signing.key is the current key,
// signing-prev.key the one it replaced (its file time is when it retired).
func loadTokens(cfg config.Config, now time.Time) (*auth.Tokens, error) {
	cur, err := loadOrCreateSecret(cfg.KeysDir, "signing.key", cfg.AllowInsecureKeys, func() []byte {
		b, _ := auth.GenerateSigningKey("s1").MarshalText()
		return b
	})
	if err != nil {
		return nil, err
	}
	sk, err := auth.ParseSigningKey(cur)
	if err != nil {
		return nil, fmt.Errorf("signing.key: %w", err)
	}
	var prev []auth.SigningKey
	p := filepath.Join(cfg.KeysDir, "signing-prev.key")
	if st, err := os.Stat(p); err == nil && now.Sub(st.ModTime()) < accessTTL+auth.Leeway {
		b, err := loadOrCreateSecret(cfg.KeysDir, "signing-prev.key", cfg.AllowInsecureKeys, nil)
		if err != nil {
			return nil, err
		}
		pk, err := auth.ParseSigningKey(b)
		if err != nil {
			return nil, fmt.Errorf("signing-prev.key: %w", err)
		}
		prev = append(prev, pk)
	}
	return auth.NewTokens("claims", "claims-api", accessTTL, nil, sk, prev...)
}

// keys manages key material. Encryption key commands come with data
// protection; this one rotates the token signing key.
func keys(ctx context.Context, env Env, args []string) error {
	if ok, err := encryptionKeyCommand(ctx, env, args); ok { // keyring.go
		return err
	}
	if len(args) == 0 || args[0] != "rotate-signing" {
		fmt.Fprintln(env.Stderr, keysUsage)
		return errUsage
	}
	f := newFlags("keys rotate-signing", env)
	if err := f.parse(env, args[1:]); err != nil {
		return err
	}
	cfg, err := f.config(env)
	if err != nil {
		return err
	}
	kid, err := rotateSigning(cfg.KeysDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "signing key rotated: new key %s; the previous key verifies tokens for %s more.\n"+
		"Restart every server node now so they sign with the new key and publish both in /api/v1/.well-known/jwks.json.\n",
		kid, accessTTL+auth.Leeway)
	return nil
}

func rotateSigning(dir string) (string, error) {
	curPath := filepath.Join(dir, "signing.key")
	b, err := os.ReadFile(curPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no signing key in %s: start the server once first", dir)
	}
	if err != nil {
		return "", err
	}
	old, err := auth.ParseSigningKey([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		return "", fmt.Errorf("signing.key: %w", err)
	}
	n, _ := strconv.Atoi(strings.TrimPrefix(old.KID(), "s"))
	kid := "s" + strconv.Itoa(n+1)
	next, _ := auth.GenerateSigningKey(kid).MarshalText()
	// Write the new key beside the old, then retire the old one (its file
	// time marks the retirement) and move the new one in place.
	tmp := filepath.Join(dir, "signing.key.new")
	if err := os.WriteFile(tmp, next, 0o600); err != nil {
		return "", err
	}
	prevPath := filepath.Join(dir, "signing-prev.key")
	if err := os.WriteFile(prevPath, b, 0o600); err != nil {
		return "", err
	}
	now := time.Now()
	if err := os.Chtimes(prevPath, now, now); err != nil {
		return "", err
	}
	return kid, os.Rename(tmp, curPath)
}
