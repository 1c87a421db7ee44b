package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/config"
	"github.com/openclaims/claims/internal/files"
	"github.com/openclaims/claims/internal/kms"
	"github.com/openclaims/claims/internal/seal"
	"github.com/openclaims/claims/internal/store"
)

// Encryption key management: `claims keys status|rotate|reencrypt|retire|
// generate` (docs/data-protection.md). The commands work on the database
// directly while servers keep serving.

// keySource returns where the KEKs come from: Vault/OpenBao transit when
// CLAIMS_KMS_VAULT_ADDR is set, CLAIMS_KEKS when set, else the key files.
func keySource(cfg config.Config) (kms.Source, error) {
	switch {
	case cfg.VaultAddr != "":
		tok, err := os.ReadFile(cfg.VaultTokenFile)
		if err != nil {
			return nil, fmt.Errorf("CLAIMS_KMS_VAULT_TOKEN_FILE: %w", err)
		}
		return kms.Vault{Transit: &kms.Transit{Addr: cfg.VaultAddr, Token: strings.TrimSpace(string(tok)),
			Mount: cfg.VaultMount, Key: cfg.VaultKey}, Dir: cfg.KeysDir, AllowInsecure: cfg.AllowInsecureKeys}, nil
	case cfg.KEKs != "":
		return kms.Env{KEKs: cfg.KEKs, Dir: cfg.KeysDir, AllowInsecure: cfg.AllowInsecureKeys}, nil
	}
	return kms.Files{Dir: cfg.KeysDir, AllowInsecure: cfg.AllowInsecureKeys}, nil
}

// openKeyed loads the keys from the configured source and opens (and
// migrates) the database with them.
func openKeyed(ctx context.Context, cfg config.Config) (*store.DB, seal.Keys, error) {
	src, err := keySource(cfg)
	if err != nil {
		return nil, seal.Keys{}, err
	}
	keys, err := src.Load(ctx)
	if err != nil {
		return nil, seal.Keys{}, fmt.Errorf("keys (%s): %w", src.Name(), err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, seal.Keys{}, err
	}
	db, err := store.Open(ctx, cfg.DatabaseTarget(), store.Options{Keys: keys.Ring, Index: keys.Index})
	if err != nil {
		return nil, seal.Keys{}, err
	}
	if _, err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, seal.Keys{}, fmt.Errorf("migrate: %w", err)
	}
	return db, keys, nil
}

// encryptionKeyCommand runs `claims keys status|rotate|reencrypt|retire|
// generate`; it reports false for other subcommands.
func encryptionKeyCommand(ctx context.Context, env Env, args []string) (bool, error) {
	if len(args) == 0 {
		return false, nil
	}
	switch args[0] {
	case "status":
		return true, keysStatus(ctx, env, args[1:])
	case "rotate":
		return true, keysRotate(ctx, env, args[1:])
	case "reencrypt":
		return true, keysReencrypt(ctx, env, args[1:])
	case "retire":
		return true, keysRetire(ctx, env, args[1:])
	case "generate":
		k := seal.GenerateKEK("k1")
		if len(args) > 1 {
			if err := validKEKID(args[1]); err != nil {
				return true, err
			}
			k = seal.GenerateKEK(args[1])
		}
		text, _ := k.MarshalText()
		fmt.Fprintln(env.Stdout, string(text))
		return true, nil
	}
	return false, nil
}

func validKEKID(id string) error {
	if id == "" || len(id) > 32 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
		return fmt.Errorf("KEK id %q: want 1-32 of [A-Za-z0-9_-]", id)
	}
	return nil
}

const keysUsage = `usage: claims keys <command> [--data-dir D] [--database-url U] [--keys-dir K]
  status              KEK versions, the primary, and what each protects
  rotate              new KEK as primary, then rewrap every data key in one transaction
      --stage         add the new KEK but keep the current primary (step 1 of a rollout to several nodes)
      --activate ID   make staged KEK ID primary and rewrap (step 2)
      --no-add        rewrap to the current primary (after changing CLAIMS_KEKS)
  reencrypt           new subject keys for every policyholder; resumable, in the background
  retire ID           delete KEK ID once nothing uses it
  generate [ID]       print a new KEK for CLAIMS_KEKS
  rotate-signing      new token signing key`

func keyFlags(name string, env Env) (flags, *string) {
	f := newFlags(name, env)
	kd := f.fs.String("keys-dir", "", "keys folder (env CLAIMS_KEYS_DIR, default <data-dir>/keys)")
	return f, kd
}

func keyConfig(f flags, kd *string, env Env) (config.Config, error) {
	cfg, err := loadConfig(env)
	if err != nil {
		return cfg, err
	}
	if *f.dataDir != "" {
		cfg.DataDir = *f.dataDir
	}
	if *f.databaseURL != "" {
		cfg.DatabaseURL = *f.databaseURL
	}
	if *kd != "" {
		cfg.KeysDir = *kd
	}
	return cfg, cfg.Validate()
}

// blobUsage counts document blobs per KEK id (from each stream header).
func blobUsage(dataDir string) (map[string]int, error) {
	out := map[string]int{}
	err := eachBlob(dataDir, func(path, id string) error {
		kid, err := blobKEK(path)
		if err != nil {
			out["?"]++
			return nil
		}
		out[kid]++
		return nil
	})
	return out, err
}

func blobKEK(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hdr := make([]byte, 2+32+2+60)
	n, _ := io.ReadFull(f, hdr)
	return seal.KEKIDOf(hdr[:n])
}

// eachBlob calls fn for every committed blob under <dataDir>/documents.
func eachBlob(dataDir string, fn func(path, id string) error) error {
	root := filepath.Join(dataDir, "documents")
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !files.ValidBlobID(d.Name()) {
			return nil
		}
		return fn(path, d.Name())
	})
}

// rewrapBlobs re-wraps every blob not under the primary KEK: the new file
// is written beside the old one, synced and renamed over it (readers with
// the old file open keep reading the old, equally valid, bytes).
func rewrapBlobs(ring *seal.KeyRing, dataDir string) (int, error) {
	n := 0
	err := eachBlob(dataDir, func(path, id string) error {
		if kid, err := blobKEK(path); err == nil && kid == ring.Primary() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-rewrap-*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		if err := ring.RewrapStream(tmp, src, files.BlobAAD(id)); err != nil {
			tmp.Close()
			return fmt.Errorf("blob %s: %w", id, err)
		}
		if err := tmp.Chmod(0o600); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}

func keysStatus(ctx context.Context, env Env, args []string) error {
	f, kd := keyFlags("keys status", env)
	if err := f.parse(env, args); err != nil {
		return err
	}
	cfg, err := keyConfig(f, kd, env)
	if err != nil {
		return err
	}
	src, err := keySource(cfg)
	if err != nil {
		return err
	}
	db, keys, err := openKeyed(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	u, err := db.KeyUsage(ctx)
	if err != nil {
		return err
	}
	blobs, err := blobUsage(cfg.DataDir)
	if err != nil {
		return err
	}
	printKeyStatus(env.Stdout, src.Name(), keys.Ring, u, blobs)
	return nil
}

func printKeyStatus(w io.Writer, source string, ring *seal.KeyRing, u store.KeyUsage, blobs map[string]int) {
	fmt.Fprintf(w, "KEK source: %s\n", source)
	ids := ring.IDs()
	for _, id := range u.KEKIDs() {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for id := range blobs {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	fmt.Fprintf(w, "%-8s %-8s %10s %13s %8s  %s\n", "KEK", "state", "values", "subject keys", "blobs", "by column")
	for _, id := range ids {
		state := "active"
		switch {
		case id == ring.Primary():
			state = "primary"
		case !slices.Contains(ring.IDs(), id):
			state = "MISSING"
		case u.Total(id) == 0 && blobs[id] == 0:
			state = "unused"
		}
		var cols []string
		for _, c := range store.KEKColumnNames() {
			if n := u.ByKEK[id][c]; n > 0 {
				cols = append(cols, fmt.Sprintf("%s=%d", c, n))
			}
		}
		fmt.Fprintf(w, "%-8s %-8s %10d %13d %8d  %s\n", id, state, u.Total(id), u.SubjectKeys[id], blobs[id], strings.Join(cols, " "))
	}
	var gens []string
	for v, n := range u.Generations {
		gens = append(gens, fmt.Sprintf("v%d: %d", v, n))
	}
	slices.Sort(gens)
	fmt.Fprintf(w, "subject key generations: %s; erased subjects: %d\n", strings.Join(gens, ", "), u.Erased)
	if r := u.Reencrypt; r != nil {
		if r.FinishedAt == 0 {
			fmt.Fprintf(w, "re-encryption to generation %d: UNFINISHED (started %s); run `claims keys reencrypt` to resume\n",
				r.Target, time.UnixMicro(r.StartedAt).UTC().Format(time.RFC3339))
		} else {
			fmt.Fprintf(w, "re-encryption to generation %d: finished %s\n", r.Target, time.UnixMicro(r.FinishedAt).UTC().Format(time.RFC3339))
		}
	}
	if u.Malformed > 0 {
		fmt.Fprintf(w, "WARNING: %d values with an unreadable key header\n", u.Malformed)
	}
}

func keysRotate(ctx context.Context, env Env, args []string) error {
	f, kd := keyFlags("keys rotate", env)
	stage := f.fs.Bool("stage", false, "add a new KEK but keep the current primary")
	activate := f.fs.String("activate", "", "make this (staged) KEK primary, then rewrap")
	noAdd := f.fs.Bool("no-add", false, "rewrap to the current primary without adding a KEK")
	if err := f.parse(env, args); err != nil {
		return err
	}
	cfg, err := keyConfig(f, kd, env)
	if err != nil {
		return err
	}
	src, err := keySource(cfg)
	if err != nil {
		return err
	}
	before, err := src.Load(ctx)
	if err != nil {
		return err
	}
	switch {
	case *stage:
		id, err := src.AddKEK(ctx)
		if err != nil {
			return err
		}
		if err := src.SetPrimary(ctx, before.Ring.Primary()); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "KEK %s added; %s stays primary.\nCopy kek-%s.* to the keys dir of every node and restart them (they can then read values under %s), then run:\n  claims keys rotate --activate %s\n",
			id, before.Ring.Primary(), id, id, id)
		return nil
	case *activate != "":
		if err := src.SetPrimary(ctx, *activate); err != nil {
			return err
		}
	case *noAdd:
	default:
		if _, err := src.AddKEK(ctx); err != nil {
			return err
		}
	}
	db, keys, err := openKeyed(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	done, err := db.RewrapAll(ctx)
	if err != nil {
		return fmt.Errorf("rewrap (nothing changed; the new KEK stays primary, run `claims keys rotate --no-add` to retry): %w", err)
	}
	if cfg.BlobURL != "" {
		fmt.Fprintln(env.Stderr, "note: documents in S3-compatible storage keep their wrapping under the old KEK; keep that KEK (retire is refused)")
	}
	nb, err := rewrapBlobs(keys.Ring, cfg.DataDir)
	if err != nil {
		return fmt.Errorf("rewrap document blobs (database done; re-run `claims keys rotate --no-add`): %w", err)
	}
	total := 0
	for _, n := range done {
		total += n
	}
	fmt.Fprintf(env.Stdout, "KEK %s is primary. Rewrapped %d data keys in one transaction and %d document blobs in %s; no data body was re-encrypted.\n",
		keys.Ring.Primary(), total, nb, time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(env.Stdout, "Restart (or roll) every server node so it wraps new data under the new KEK; nodes still running with the old ring keep writing under the old one until then.")
	fmt.Fprintln(env.Stdout, "`claims keys status` shows when the old KEK protects nothing; then `claims keys retire <id>`.")
	return nil
}

func keysReencrypt(ctx context.Context, env Env, args []string) error {
	f, kd := keyFlags("keys reencrypt", env)
	batch := f.fs.Int("batch", 200, "holders fetched per query")
	if err := f.parse(env, args); err != nil {
		return err
	}
	cfg, err := keyConfig(f, kd, env)
	if err != nil {
		return err
	}
	db, _, err := openKeyed(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	start, last := time.Now(), time.Time{}
	res, err := db.Reencrypt(ctx, store.ReencryptOptions{Batch: *batch, Progress: func(done, total int) {
		if done == total || done%100 == 0 || time.Since(last) > time.Second {
			last = time.Now()
			fmt.Fprintf(env.Stderr, "reencrypt: %d/%d holders\n", done, total)
		}
	}})
	if err != nil {
		return fmt.Errorf("reencrypt stopped after %d holders (run it again to resume): %w", res.Holders, err)
	}
	el := time.Since(start)
	rate := float64(res.Holders) / max(el.Seconds(), 1e-9)
	fmt.Fprintf(env.Stdout, "re-encrypted %d holders (%d values) to subject key generation %d in %s (%.0f holders/s)",
		res.Holders, res.Values, res.Target, el.Round(time.Millisecond), rate)
	if !res.Finished {
		fmt.Fprint(env.Stdout, "; holders created meanwhile by older nodes remain, run it again")
	}
	fmt.Fprintln(env.Stdout)
	return nil
}

func keysRetire(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(env.Stderr, "usage: claims keys retire KID [--data-dir D]")
		return errUsage
	}
	kid := args[0]
	f, kd := keyFlags("keys retire", env)
	if err := f.parse(env, args[1:]); err != nil {
		return err
	}
	cfg, err := keyConfig(f, kd, env)
	if err != nil {
		return err
	}
	src, err := keySource(cfg)
	if err != nil {
		return err
	}
	db, keys, err := openKeyed(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if !slices.Contains(keys.Ring.IDs(), kid) {
		return fmt.Errorf("no KEK %q in %s", kid, src.Name())
	}
	if kid == keys.Ring.Primary() {
		return fmt.Errorf("KEK %s is the primary; rotate first", kid)
	}
	u, err := db.KeyUsage(ctx)
	if err != nil {
		return err
	}
	if cfg.BlobURL != "" {
		// Document blobs in S3 are wrapped under the KEKs too, and this
		// command can't see the bucket: never retire a key that may still
		// protect every stored document.
		return fmt.Errorf("refusing to retire KEK %s: documents live in S3-compatible storage (CLAIMS_BLOB_URL), whose blobs this command cannot check", kid)
	}
	blobs, err := blobUsage(cfg.DataDir)
	if err != nil {
		return err
	}
	if n := u.Total(kid) + blobs[kid]; n > 0 {
		return fmt.Errorf("refusing to retire KEK %s: it still protects %d values (%d subject keys, %d document blobs); run `claims keys rotate --no-add` and check `claims keys status`",
			kid, n, u.SubjectKeys[kid], blobs[kid])
	}
	if err := src.Retire(ctx, kid); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "KEK %s retired (its file is deleted). Backups taken before the rotation still need it: keep an offline escrow copy for as long as you keep those backups.\n", kid)
	return nil
}
