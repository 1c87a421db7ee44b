package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/auth"
	"github.com/openclaims/claims/internal/config"
	"github.com/openclaims/claims/internal/files"
	"github.com/openclaims/claims/internal/live"
	"github.com/openclaims/claims/internal/scan"
	"github.com/openclaims/claims/internal/seal"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/workflow"
)

type cfgT = config.Config

func loadConfig(env Env) (config.Config, error) { return config.Load(env.Getenv) }

// app is the wired object graph.
type app struct {
	cfg    config.Config
	log    *slog.Logger
	keys   seal.Keys
	db     *store.DB
	tokens *auth.Tokens
	flow   *workflow.Service
	events live.Bus // LISTEN/NOTIFY on PostgreSQL, in-process on SQLite

	// Claim documents (docscan.go): blobs under <data-dir>/documents.
	blobs   *files.LocalBlobs
	docs    *files.Pipeline
	scanner scan.Scanner
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openApp loads keys, opens and (optionally) migrates the database, and
// builds the workflow service.
func openApp(ctx context.Context, env Env, cfg config.Config, migrate bool) (*app, error) {
	a := &app{cfg: cfg, log: newLogger(cfg, env.Stderr)}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	src, err := keySource(cfg)
	if err != nil {
		return nil, err
	}
	if a.keys, err = src.Load(ctx); err != nil {
		return nil, fmt.Errorf("keys (%s): %w", src.Name(), err)
	}
	if cfg.AllowInsecureKeys {
		if perr := seal.CheckPermissions(cfg.KeysDir); perr != nil {
			a.log.Warn("INSECURE KEY FILES ALLOWED (development only)", "problem", perr.Error())
		}
	}
	pepper, err := loadOrCreateSecret(cfg.KeysDir, "pepper.key", cfg.AllowInsecureKeys, func() []byte {
		b := make([]byte, 32)
		rand.Read(b)
		return []byte(base64.RawURLEncoding.EncodeToString(b))
	})
	if err != nil {
		return nil, err
	}
	if a.tokens, err = loadTokens(cfg, time.Now()); err != nil {
		return nil, err
	}
	a.db, err = store.Open(ctx, cfg.DatabaseTarget(), store.Options{Keys: a.keys.Ring, Index: a.keys.Index})
	if err != nil {
		return nil, err
	}
	if migrate {
		if _, err := a.db.Migrate(ctx); err != nil {
			a.db.Close()
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	if cfg.DatabaseURL != "" {
		pg, err := live.NewPostgres(ctx, cfg.DatabaseURL, a.log)
		if err != nil {
			a.db.Close()
			return nil, fmt.Errorf("event bus: %w", err)
		}
		a.events = pg
	} else {
		a.events = live.NewLocal()
	}
	if err := a.openDocuments(); err != nil {
		a.db.Close()
		return nil, err
	}
	a.flow = workflow.New(workflow.Config{DB: a.db, Hasher: auth.NewHasher(pepper, cfg.BcryptCost, hashConcurrency()), Tokens: a.tokens, Events: a.events, Log: a.log, Identity: identityPolicy(a.cfg),
		Documents: a.docs, Scanner: a.scanner, DocumentLimits: a.documentLimits()})
	return a, nil
}

// Close stops the event bus (sending what it still holds), then closes the
// database.
func (a *app) Close() error { return errors.Join(a.events.Close(), a.db.Close()) }

// loadOrCreateSecret reads dir/name, creating it with generate() and mode
// 0600 on first run. A file readable by group or others is refused unless
// insecure (development) is set.
func loadOrCreateSecret(dir, name string, insecure bool, generate func() []byte) ([]byte, error) {
	p := filepath.Join(dir, name)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) && generate == nil {
		return nil, fmt.Errorf("%s is missing", p)
	}
	if errors.Is(err, fs.ErrNotExist) {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", p, err)
		}
		b = generate()
		if _, err := f.Write(b); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 && !insecure {
		return nil, fmt.Errorf("%s has mode %s: key files must not be readable by group or others (chmod 600 %s)", p, st.Mode().Perm(), p)
	}
	return []byte(strings.TrimSpace(string(b))), nil
}
