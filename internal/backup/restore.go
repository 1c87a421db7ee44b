package backup

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/openclaims/claims/internal/files"
	"github.com/openclaims/claims/internal/seal"
	"github.com/openclaims/claims/internal/store"
)

// RestoreOptions configure Restore.
type RestoreOptions struct {
	Identities []age.Identity
	PublicKey  ed25519.PublicKey
	// DataDir must not exist or be empty (a keys folder inside it is
	// allowed); a live installation is refused.
	DataDir string
	// DatabaseURL is a PostgreSQL database to restore into (it must be
	// empty); "" restores the SQLite file into DataDir.
	DatabaseURL string
	Keys        seal.Keys
	// Register is the erasure register kept outside the backups
	// (<keys-dir>/erasure-register.jsonl); it is re-applied after the
	// restore together with the register inside the backup.
	Register []store.RegisterEntry
	KeysDir  string // allowed inside DataDir
	Progress io.Writer
}

// RestoreReport says what a restore did.
type RestoreReport struct {
	Files          int
	Documents      int
	ReErased       int // subjects erased again from the register
	RegisterLength int
}

// checkEmpty refuses a data dir holding anything but the keys dir.
func checkEmpty(dataDir, keysDir string) error {
	entries, err := os.ReadDir(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	absKeys, _ := filepath.Abs(keysDir)
	for _, e := range entries {
		p, _ := filepath.Abs(filepath.Join(dataDir, e.Name()))
		if p == absKeys {
			continue
		}
		return fmt.Errorf("backup: refusing to restore into %s: it is not empty (found %s); restore into a new, empty data dir", dataDir, e.Name())
	}
	return nil
}

// Restore decrypts and verifies r into an empty data dir (and, for
// PostgreSQL, an empty database), then re-applies the erasure register.
// Nothing is put in place before the whole archive has verified.
func Restore(ctx context.Context, r io.Reader, opt RestoreOptions) (Manifest, RestoreReport, error) {
	var rep RestoreReport
	if err := checkEmpty(opt.DataDir, opt.KeysDir); err != nil {
		return Manifest{}, rep, err
	}
	if err := os.MkdirAll(opt.DataDir, 0o700); err != nil {
		return Manifest{}, rep, err
	}
	stage, err := os.MkdirTemp(opt.DataDir, ".restore-*")
	if err != nil {
		return Manifest{}, rep, err
	}
	defer os.RemoveAll(stage)
	var inArchive []store.RegisterEntry
	m, err := walk(ctx, r, opt.Identities, opt.PublicKey, func(name string, src io.Reader) error {
		if name == RegisterFile {
			var err error
			inArchive, err = parseRegister(src)
			return err
		}
		p := filepath.Join(stage, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, src); err != nil {
			f.Close()
			return err
		}
		rep.Files++
		if rep.Files%500 == 0 {
			progress(opt.Progress, "extracted %d files", rep.Files)
		}
		return errors.Join(f.Sync(), f.Close())
	})
	if err != nil {
		return m, rep, err
	}
	progress(opt.Progress, "archive verified: %d files, signed manifest of %s", len(m.Files), m.CreatedAt.Format(time.RFC3339))
	for _, id := range m.KEKIDs {
		if !slices.Contains(opt.Keys.Ring.IDs(), id) {
			return m, rep, fmt.Errorf("backup: the data needs KEK %s, which the keys given do not hold (restore with the keys dir or KMS of the installation, including retired KEKs kept in escrow)", id)
		}
	}
	wantEngine := string(store.SQLite)
	if opt.DatabaseURL != "" {
		wantEngine = string(store.Postgres)
	}
	if m.Engine != wantEngine {
		return m, rep, fmt.Errorf("backup: the backup is of a %s database; restore it into %s", m.Engine, m.Engine)
	}

	var db *store.DB
	switch m.Engine {
	case string(store.SQLite):
		target := filepath.Join(opt.DataDir, "claims.db")
		if err := os.Rename(filepath.Join(stage, "db", "claims.db"), target); err != nil {
			return m, rep, err
		}
		if db, err = store.Open(ctx, target, store.Options{Keys: opt.Keys.Ring, Index: opt.Keys.Index}); err != nil {
			return m, rep, err
		}
		defer db.Close()
		if _, err := db.Migrate(ctx); err != nil {
			return m, rep, err
		}
	case string(store.Postgres):
		if db, err = store.Open(ctx, opt.DatabaseURL, store.Options{Keys: opt.Keys.Ring, Index: opt.Keys.Index}); err != nil {
			return m, rep, err
		}
		defer db.Close()
		if _, err := db.Migrate(ctx); err != nil {
			return m, rep, err
		}
		empty, err := postgresEmpty(ctx, db)
		if err != nil {
			return m, rep, err
		}
		if !empty {
			return m, rep, errors.New("backup: refusing to restore into a PostgreSQL database that holds data (a live installation?); create an empty database")
		}
		applied, _, err := db.SchemaVersion(ctx)
		if err != nil {
			return m, rep, err
		}
		if applied != m.SchemaVersion {
			return m, rep, fmt.Errorf("backup: the backup has schema version %d, this binary %d; restore with the release that made it, then upgrade", m.SchemaVersion, applied)
		}
		var files []string
		entries, _ := os.ReadDir(filepath.Join(stage, "db"))
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".jsonl") {
				files = append(files, e.Name())
			}
		}
		if err := importPostgres(ctx, db, filepath.Join(stage, "db"), files, opt.Progress); err != nil {
			return m, rep, err
		}
	default:
		return m, rep, fmt.Errorf("backup: unknown engine %q", m.Engine)
	}
	if _, err := os.Stat(filepath.Join(stage, "documents")); err == nil {
		if err := os.Rename(filepath.Join(stage, "documents"), filepath.Join(opt.DataDir, "documents")); err != nil {
			return m, rep, err
		}
		for _, f := range m.Files {
			if strings.HasPrefix(f.Path, "documents/") {
				rep.Documents++
			}
		}
	}
	fromDB, err := db.ErasureRegister(ctx)
	if err != nil {
		return m, rep, err
	}
	all := MergeRegister(opt.Register, inArchive, fromDB)
	rep.RegisterLength = len(all)
	if rep.ReErased, err = db.ApplyErasureRegister(ctx, all); err != nil {
		return m, rep, err
	}
	progress(opt.Progress, "erasure register re-applied: %d entries, %d subjects erased again", len(all), rep.ReErased)
	// Erased subjects' documents must not come back with the restore.
	if dir := filepath.Join(opt.DataDir, "documents"); rep.Documents > 0 {
		blobs, err := db.ErasedBlobs(ctx)
		if err != nil {
			return m, rep, err
		}
		lb, err := files.NewLocalBlobs(dir)
		if err != nil {
			return m, rep, err
		}
		defer lb.Close()
		for _, b := range blobs {
			if err := lb.Delete(ctx, b); err != nil {
				return m, rep, fmt.Errorf("delete erased document %s: %w", b, err)
			}
		}
		progress(opt.Progress, "erased documents removed: %d", len(blobs))
	}
	return m, rep, nil
}

// Prune deletes the oldest "claims-*.age" files in dir beyond keep.
func Prune(dir string, keep int) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "claims-") && strings.HasSuffix(e.Name(), ".age") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names) // timestamped names sort by time
	n := 0
	for len(names) > keep {
		if err := os.Remove(filepath.Join(dir, names[0])); err != nil {
			return n, err
		}
		names = names[1:]
		n++
	}
	return n, nil
}

// FileName is the name of a scheduled backup made at t.
func FileName(t time.Time) string {
	return "claims-" + t.UTC().Format("20060102T150405.000000Z") + ".age"
}
