package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/openclaims/claims/internal/backup"
	"github.com/openclaims/claims/internal/config"
	"github.com/openclaims/claims/internal/store"
)

// `claims backup create|verify|restore|keygen` (docs/data-protection.md).

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func backupCmd(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(env.Stderr, "usage: claims backup create [--out FILE] [--recipient age1...] | verify FILE --identity FILE | restore FILE --identity FILE --data-dir NEW [--keys-dir K] | keygen")
		return errUsage
	}
	switch args[0] {
	case "keygen":
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "# public key (CLAIMS_BACKUP_RECIPIENTS): %s\n%s\n", id.Recipient(), id)
		fmt.Fprintln(env.Stderr, "Keep the AGE-SECRET-KEY line offline, away from the backups and the keys dir; it is needed to restore.")
		return nil
	case "create":
		return backupCreate(ctx, env, args[1:])
	case "verify":
		return backupVerify(ctx, env, args[1:])
	case "restore":
		return backupRestore(ctx, env, args[1:])
	}
	return fmt.Errorf("unknown backup command %q", args[0])
}

// fileFirst moves a leading positional FILE after the flags.
func fileFirst(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

func backupCreate(ctx context.Context, env Env, args []string) error {
	f, kd := keyFlags("backup create", env)
	out := f.fs.String("out", "", "backup file (default <CLAIMS_BACKUP_DIR>/claims-<time>.age; - for standard output)")
	var recips multiFlag
	f.fs.Var(&recips, "recipient", "age public key to encrypt to (repeatable; default CLAIMS_BACKUP_RECIPIENTS)")
	if err := f.parse(env, args); err != nil {
		return err
	}
	cfg, err := keyConfig(f, kd, env)
	if err != nil {
		return err
	}
	if len(recips) > 0 {
		cfg.BackupRecipients = recips
	}
	path := *out
	if path == "" {
		if cfg.BackupDir == "" {
			return errors.New("backup create: give --out FILE or set CLAIMS_BACKUP_DIR")
		}
		path = filepath.Join(cfg.BackupDir, backup.FileName(time.Now()))
	}
	db, _, err := openKeyed(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	m, err := createBackup(ctx, cfg, db, path, env)
	if err != nil {
		return err
	}
	if path != "-" {
		fmt.Fprintf(env.Stdout, "backup written: %s (%s, schema %d, %d files, KEKs needed: %s)\n", path, m.Engine, m.SchemaVersion, len(m.Files), strings.Join(m.KEKIDs, ","))
	}
	return nil
}

// createBackup writes one backup to path ("-" = stdout), via a temporary
// file renamed into place, and refreshes the erasure register copy in the
// keys dir.
func createBackup(ctx context.Context, cfg config.Config, db *store.DB, path string, env Env) (backup.Manifest, error) {
	recips, err := backup.ParseRecipients(cfg.BackupRecipients)
	if err != nil {
		return backup.Manifest{}, err
	}
	signer, err := backup.LoadOrCreateSigningKey(cfg.KeysDir)
	if err != nil {
		return backup.Manifest{}, err
	}
	if _, err := backup.SyncRegisterFile(ctx, db, cfg.KeysDir); err != nil {
		return backup.Manifest{}, err
	}
	u, err := db.KeyUsage(ctx)
	if err != nil {
		return backup.Manifest{}, err
	}
	kids := u.KEKIDs()
	blobs, err := blobUsage(cfg.DataDir)
	if err != nil {
		return backup.Manifest{}, err
	}
	for id := range blobs {
		if !strings.Contains(","+strings.Join(kids, ",")+",", ","+id+",") {
			kids = append(kids, id)
		}
	}
	opt := backup.CreateOptions{DataDir: cfg.DataDir, Recipients: recips, Signer: signer, KEKIDs: kids, Progress: env.Stderr}
	if path == "-" {
		return backup.Create(ctx, env.Stdout, db, opt)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return backup.Manifest{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".claims-backup-*")
	if err != nil {
		return backup.Manifest{}, err
	}
	defer os.Remove(tmp.Name())
	m, err := backup.Create(ctx, tmp, db, opt)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return m, err
	}
	return m, os.Rename(tmp.Name(), path)
}

func readIdentities(path string) ([]age.Identity, error) {
	if path == "" {
		return nil, errors.New("give --identity FILE (the AGE-SECRET-KEY from `claims backup keygen`)")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return age.ParseIdentities(f)
}

func backupVerify(ctx context.Context, env Env, args []string) error {
	file, rest := fileFirst(args)
	f, kd := keyFlags("backup verify", env)
	identity := f.fs.String("identity", "", "age identity file")
	if err := f.parse(env, rest); err != nil {
		return err
	}
	if file == "" && f.fs.NArg() > 0 {
		file = f.fs.Arg(0)
	}
	cfg, err := keyConfig(f, kd, env)
	if err != nil {
		return err
	}
	ids, err := readIdentities(*identity)
	if err != nil {
		return err
	}
	pub, err := backup.PublicKey(cfg.KeysDir)
	if err != nil {
		return err
	}
	in, err := os.Open(file)
	if err != nil {
		return err
	}
	defer in.Close()
	m, err := backup.Verify(ctx, in, ids, pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "backup OK: %s database, schema %d, made %s, %d files, every checksum and the signature verified; KEKs needed: %s\n",
		m.Engine, m.SchemaVersion, m.CreatedAt.Format(time.RFC3339), len(m.Files), strings.Join(m.KEKIDs, ","))
	return nil
}

func backupRestore(ctx context.Context, env Env, args []string) error {
	file, rest := fileFirst(args)
	f, kd := keyFlags("backup restore", env)
	identity := f.fs.String("identity", "", "age identity file")
	if err := f.parse(env, rest); err != nil {
		return err
	}
	if file == "" && f.fs.NArg() > 0 {
		file = f.fs.Arg(0)
	}
	if *f.dataDir == "" {
		return errors.New("backup restore: give --data-dir NEW (an empty folder)")
	}
	cfg, err := keyConfig(f, kd, env)
	if err != nil {
		return err
	}
	ids, err := readIdentities(*identity)
	if err != nil {
		return err
	}
	pub, err := backup.PublicKey(cfg.KeysDir)
	if err != nil {
		return err
	}
	src, err := keySource(cfg)
	if err != nil {
		return err
	}
	keys, err := src.Load(ctx)
	if err != nil {
		return err
	}
	reg, err := backup.ReadRegisterFile(filepath.Join(cfg.KeysDir, backup.RegisterFile))
	if err != nil {
		return err
	}
	in, err := os.Open(file)
	if err != nil {
		return err
	}
	defer in.Close()
	m, rep, err := backup.Restore(ctx, in, backup.RestoreOptions{Identities: ids, PublicKey: pub, DataDir: cfg.DataDir,
		DatabaseURL: cfg.DatabaseURL, Keys: keys, Register: reg, KeysDir: cfg.KeysDir, Progress: env.Stderr})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "restored backup of %s into %s: %d files, %d documents; erasure register re-applied (%d entries, %d subjects erased again)\n",
		m.CreatedAt.Format(time.RFC3339), cfg.DataDir, rep.Files, rep.Documents, rep.RegisterLength, rep.ReErased)
	return nil
}

// startBackupLoop runs scheduled backups every cfg.BackupInterval, keeping
// cfg.BackupKeep files, and keeps the erasure register copy in the keys dir
// current (every few seconds). It returns a function that waits for it to stop.
// registerSyncEvery is how often serve copies the erasure register.
const registerSyncEvery = 3 * time.Second

func startBackupLoop(ctx context.Context, cfg config.Config, db *store.DB, log *slog.Logger) func() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The erasure register is copied to the keys dir within seconds of an
		// erasure on any node (the database is shared), so it outlives any
		// restore of an older backup.
		reg := time.NewTicker(registerSyncEvery)
		defer reg.Stop()
		var bk <-chan time.Time
		if cfg.BackupInterval > 0 {
			t := time.NewTicker(cfg.BackupInterval)
			defer t.Stop()
			bk = t.C
			log.Info("scheduled backups", "every", cfg.BackupInterval, "dir", cfg.BackupDir, "keep", cfg.BackupKeep)
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-reg.C:
				if _, err := backup.SyncRegisterFile(ctx, db, cfg.KeysDir); err != nil && ctx.Err() == nil {
					log.Error("erasure register sync failed", "err", err)
				}
			case <-bk:
				path := filepath.Join(cfg.BackupDir, backup.FileName(time.Now()))
				m, err := createBackup(ctx, cfg, db, path, Env{})
				if err != nil {
					log.Error("scheduled backup failed", "err", err)
					continue
				}
				pruned, err := backup.Prune(cfg.BackupDir, cfg.BackupKeep)
				if err != nil {
					log.Error("pruning backups failed", "err", err)
				}
				log.Info("backup written", "file", path, "files", len(m.Files), "pruned", pruned)
			}
		}
	}()
	return wg.Wait
}
