package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/openclaims/claims/internal/config"
)

// auditKey loads (creating on first use) the Ed25519 key that signs audit
// checkpoints. It lives in the keys dir, apart from the database it vouches
// for.
func auditKey(cfg config.Config) (ed25519.PrivateKey, error) {
	b, err := loadOrCreateSecret(cfg.KeysDir, "audit-signing.key", cfg.AllowInsecureKeys, func() []byte {
		seed := make([]byte, ed25519.SeedSize)
		rand.Read(seed)
		return []byte(base64.RawURLEncoding.EncodeToString(seed))
	})
	if err != nil {
		return nil, err
	}
	seed, err := base64.RawURLEncoding.DecodeString(string(b))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit-signing.key is not a valid key")
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// checkpointLoop signs an audit checkpoint every interval until ctx ends.
func checkpointLoop(ctx context.Context, a *app, interval time.Duration) {
	key, err := auditKey(a.cfg)
	if err != nil {
		a.log.Error("audit checkpoints disabled", "err", err)
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := a.flow.Checkpoint(ctx, key, "a1"); err != nil && ctx.Err() == nil {
			a.log.Error("audit checkpoint", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
