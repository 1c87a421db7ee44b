// Package backup writes and restores encrypted, signed backups of a claims
// installation (docs/data-protection.md, decision 0003).
//
// A backup is one file: a tar stream encrypted with age
// (filippo.io/age, X25519 recipients) holding
//
//	db/claims.db                  SQLite: a consistent snapshot (VACUUM INTO)
//	db/NNN-<table>.jsonl          PostgreSQL: every table, exported in one
//	                              REPEATABLE READ read-only transaction,
//	                              in foreign-key order
//	documents/<ab>/<blob id>      the document blobs, as stored (already
//	                              encrypted under the KEKs)
//	erasure-register.jsonl        ids and times of erased subjects
//	manifest.json                 format, time, engine, schema version, the
//	                              ids (never the keys) of the KEKs the data
//	                              needs, and every file's size and SHA-256
//	manifest.sig                  Ed25519 signature of manifest.json by
//	                              <keys-dir>/backup-signing.key
//
// No key is ever written: not the KEKs, not the index key, not the signing
// key. Sensitive columns stay sealed inside the backup; restoring needs the
// same keys dir (or KMS), which is kept apart from the backups.
package backup

import (
	"archive/tar"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/openclaims/claims/internal/store"
)

// Format names the archive layout.
const Format = "claims-backup/1"

// Manifest describes a backup; it is signed.
type Manifest struct {
	Format        string      `json:"format"`
	CreatedAt     time.Time   `json:"createdAt"`
	Engine        string      `json:"engine"`
	SchemaVersion int         `json:"schemaVersion"`
	KEKIDs        []string    `json:"kekIds"` // ids only: which KEKs a restore needs
	Signer        string      `json:"signer"` // hex Ed25519 public key
	Files         []FileEntry `json:"files"`
}

// FileEntry is one archived file.
type FileEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// SigningKeyFile is the Ed25519 key that signs manifests, in the keys dir.
const SigningKeyFile = "backup-signing.key"

// RegisterFile is the copy of the erasure register kept in the keys dir,
// outside every backup.
const RegisterFile = "erasure-register.jsonl"

// LoadOrCreateSigningKey reads <keysDir>/backup-signing.key ("ed25519:" and
// the base64url seed), creating it (mode 0600) on first use.
func LoadOrCreateSigningKey(keysDir string) (ed25519.PrivateKey, error) {
	p := filepath.Join(keysDir, SigningKeyFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		seed := make([]byte, ed25519.SeedSize)
		rand.Read(seed)
		if err := os.MkdirAll(keysDir, 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("backup: create %s: %w", p, err)
		}
		_, werr := f.WriteString("ed25519:" + base64.RawURLEncoding.EncodeToString(seed) + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, err
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("backup: %s has mode %04o: it must not be accessible by group or others", p, st.Mode().Perm())
	}
	enc, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "ed25519:")
	seed, err := base64.RawURLEncoding.DecodeString(enc)
	if !ok || err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("backup: %s is not an ed25519 seed", p)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// PublicKey returns the manifest verification key from the keys dir.
func PublicKey(keysDir string) (ed25519.PublicKey, error) {
	if _, err := os.Stat(filepath.Join(keysDir, SigningKeyFile)); err != nil {
		return nil, fmt.Errorf("backup: no %s in %s: verify and restore need the keys dir the backup was made with", SigningKeyFile, keysDir)
	}
	k, err := LoadOrCreateSigningKey(keysDir)
	if err != nil {
		return nil, err
	}
	return k.Public().(ed25519.PublicKey), nil
}

// ParseRecipients parses age X25519 public keys ("age1...").
func ParseRecipients(list []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, s := range list {
		r, err := age.ParseX25519Recipient(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("backup recipient %q: %w", s, err)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("backup: no recipients (set CLAIMS_BACKUP_RECIPIENTS or pass --recipient; `claims backup keygen` makes one)")
	}
	return out, nil
}

// CreateOptions configure Create.
type CreateOptions struct {
	DataDir    string // documents come from <DataDir>/documents
	Recipients []age.Recipient
	Signer     ed25519.PrivateKey
	KEKIDs     []string // from store.KeyUsage
	Progress   io.Writer
	Now        func() time.Time
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "backup: "+format+"\n", args...)
	}
}

// Create writes an encrypted backup of db and the documents to w.
func Create(ctx context.Context, w io.Writer, db *store.DB, opt CreateOptions) (Manifest, error) {
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	m := Manifest{Format: Format, CreatedAt: now().UTC(), Engine: string(db.Dialect()), KEKIDs: opt.KEKIDs,
		Signer: hex.EncodeToString(opt.Signer.Public().(ed25519.PublicKey))}
	applied, _, err := db.SchemaVersion(ctx)
	if err != nil {
		return m, err
	}
	m.SchemaVersion = applied
	tmpParent := opt.DataDir
	if st, err := os.Stat(tmpParent); err != nil || !st.IsDir() {
		tmpParent = ""
	}
	tmp, err := os.MkdirTemp(tmpParent, ".backup-tmp-*")
	if err != nil {
		return m, err
	}
	defer os.RemoveAll(tmp)

	// 1. The database snapshot, to temporary files.
	var dbFiles []string
	switch db.Dialect() {
	case store.SQLite:
		p := filepath.Join(tmp, "claims.db")
		progress(opt.Progress, "snapshot of the SQLite database (VACUUM INTO)")
		if _, err := db.SQL().ExecContext(ctx, `VACUUM INTO ?`, p); err != nil {
			return m, fmt.Errorf("backup: VACUUM INTO: %w", err)
		}
		dbFiles = []string{"db/claims.db"}
	case store.Postgres:
		progress(opt.Progress, "export of every PostgreSQL table in one REPEATABLE READ transaction")
		names, err := exportPostgres(ctx, db, tmp, opt.Progress)
		if err != nil {
			return m, err
		}
		for _, n := range names {
			dbFiles = append(dbFiles, "db/"+n)
		}
	}
	reg, err := db.ErasureRegister(ctx)
	if err != nil {
		return m, err
	}
	if err := writeRegister(filepath.Join(tmp, RegisterFile), reg); err != nil {
		return m, err
	}

	aw, err := age.Encrypt(w, opt.Recipients...)
	if err != nil {
		return m, err
	}
	tw := tar.NewWriter(aw)
	add := func(name, src string) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: st.Size(), ModTime: m.CreatedAt, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(tw, h), f)
		if err != nil {
			return fmt.Errorf("backup: %s: %w", name, err)
		}
		if n != st.Size() {
			return fmt.Errorf("backup: %s changed size while being archived", name)
		}
		m.Files = append(m.Files, FileEntry{Path: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	}
	for _, name := range dbFiles {
		if err := add(name, filepath.Join(tmp, path.Base(name))); err != nil {
			return m, err
		}
	}
	if err := add(RegisterFile, filepath.Join(tmp, RegisterFile)); err != nil {
		return m, err
	}
	// 2. The document blobs (immutable once committed; new ones written
	// meanwhile are simply not included).
	docs := filepath.Join(opt.DataDir, "documents")
	var blobs []string
	if opt.DataDir != "" {
		_ = filepath.WalkDir(docs, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if !d.IsDir() && !strings.HasPrefix(d.Name(), ".") && d.Type().IsRegular() {
				blobs = append(blobs, p)
			}
			return nil
		})
	}
	sort.Strings(blobs)
	for i, p := range blobs {
		if err := ctx.Err(); err != nil {
			return m, err
		}
		rel, _ := filepath.Rel(docs, p)
		if err := add("documents/"+filepath.ToSlash(rel), p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // swept meanwhile
			}
			return m, err
		}
		if (i+1)%500 == 0 || i+1 == len(blobs) {
			progress(opt.Progress, "documents %d/%d", i+1, len(blobs))
		}
	}
	// 3. The signed manifest, last.
	mb, _ := json.MarshalIndent(m, "", "  ")
	sig := ed25519.Sign(opt.Signer, mb)
	for _, f := range []struct {
		name string
		b    []byte
	}{{"manifest.json", mb}, {"manifest.sig", []byte(hex.EncodeToString(sig) + "\n")}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.b)), ModTime: m.CreatedAt, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return m, err
		}
		if _, err := tw.Write(f.b); err != nil {
			return m, err
		}
	}
	if err := tw.Close(); err != nil {
		return m, err
	}
	if err := aw.Close(); err != nil {
		return m, err
	}
	progress(opt.Progress, "done: %d files", len(m.Files))
	return m, nil
}

// ErrVerify wraps every integrity failure.
var ErrVerify = errors.New("backup: verification failed")

func verifyErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrVerify, fmt.Sprintf(format, args...))
}

// validName reports whether an archive member name is one Create writes.
func validName(name string) bool {
	if name != path.Clean(name) || strings.HasPrefix(name, "/") || strings.Contains(name, "..") || strings.Contains(name, "\\") {
		return false
	}
	switch {
	case name == "manifest.json", name == "manifest.sig", name == RegisterFile:
		return true
	case strings.HasPrefix(name, "db/"), strings.HasPrefix(name, "documents/"):
		return strings.Count(name, "/") <= 2
	}
	return false
}

// walk decrypts r and calls fn for every data member (path, reader); it
// then checks the manifest and signature against the hashes seen. fn may
// be nil (verify only).
func walk(ctx context.Context, r io.Reader, ids []age.Identity, pub ed25519.PublicKey, fn func(name string, r io.Reader) error) (Manifest, error) {
	var m Manifest
	ar, err := age.Decrypt(r, ids...)
	if err != nil {
		return m, verifyErr("cannot decrypt with the given identity: %v", err)
	}
	tr := tar.NewReader(ar)
	seen := map[string]FileEntry{}
	var mb, sig []byte
	for {
		if err := ctx.Err(); err != nil {
			return m, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, verifyErr("archive: %v", err)
		}
		if h.Typeflag != tar.TypeReg || !validName(h.Name) {
			return m, verifyErr("unexpected archive member %q", h.Name)
		}
		if _, dup := seen[h.Name]; dup || (h.Name == "manifest.json" && mb != nil) {
			return m, verifyErr("duplicate archive member %q", h.Name)
		}
		switch h.Name {
		case "manifest.json":
			if mb, err = io.ReadAll(io.LimitReader(tr, 64<<20)); err != nil {
				return m, verifyErr("manifest: %v", err)
			}
			continue
		case "manifest.sig":
			if sig, err = io.ReadAll(io.LimitReader(tr, 1<<10)); err != nil {
				return m, verifyErr("signature: %v", err)
			}
			continue
		}
		if mb != nil {
			return m, verifyErr("member %q after the manifest", h.Name)
		}
		hs := sha256.New()
		src := io.TeeReader(tr, hs)
		if fn != nil {
			if err := fn(h.Name, src); err != nil {
				return m, err
			}
		}
		n, err := io.Copy(io.Discard, src) // whatever fn did not read
		if err != nil {
			return m, verifyErr("%s: %v", h.Name, err)
		}
		_ = n
		seen[h.Name] = FileEntry{Path: h.Name, Size: h.Size, SHA256: hex.EncodeToString(hs.Sum(nil))}
	}
	if mb == nil || sig == nil {
		return m, verifyErr("no signed manifest (truncated backup?)")
	}
	s, err := hex.DecodeString(strings.TrimSpace(string(sig)))
	if err != nil || !ed25519.Verify(pub, mb, s) {
		return m, verifyErr("the manifest signature does not verify with %s in the keys dir", SigningKeyFile)
	}
	if err := json.Unmarshal(mb, &m); err != nil || m.Format != Format {
		return m, verifyErr("manifest: unknown format")
	}
	if len(m.Files) != len(seen) {
		return m, verifyErr("manifest lists %d files, archive has %d", len(m.Files), len(seen))
	}
	for _, f := range m.Files {
		got, ok := seen[f.Path]
		if !ok {
			return m, verifyErr("%s is missing", f.Path)
		}
		if got.SHA256 != f.SHA256 || got.Size != f.Size {
			return m, verifyErr("%s: checksum mismatch", f.Path)
		}
	}
	return m, nil
}

// Verify decrypts r and checks every checksum and the manifest signature,
// without restoring anything.
func Verify(ctx context.Context, r io.Reader, ids []age.Identity, pub ed25519.PublicKey) (Manifest, error) {
	return walk(ctx, r, ids, pub, nil)
}

// writeRegister writes entries as JSON lines to p (mode 0600), atomically.
func writeRegister(p string, entries []store.RegisterEntry) error {
	var b strings.Builder
	for _, e := range entries {
		line, _ := json.Marshal(e)
		b.Write(line)
		b.WriteByte('\n')
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func parseRegister(r io.Reader) ([]store.RegisterEntry, error) {
	var out []store.RegisterEntry
	dec := json.NewDecoder(r)
	for {
		var e store.RegisterEntry
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return out, fmt.Errorf("erasure register: %w", err)
		}
		if e.HolderID != "" {
			out = append(out, e)
		}
	}
}

// ReadRegisterFile reads a register file; a missing file is empty.
func ReadRegisterFile(p string) ([]store.RegisterEntry, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseRegister(f)
}

// MergeRegister returns the union of register lists by holder id (earliest
// time wins), sorted by time.
func MergeRegister(lists ...[]store.RegisterEntry) []store.RegisterEntry {
	by := map[string]store.RegisterEntry{}
	for _, l := range lists {
		for _, e := range l {
			if old, ok := by[string(e.HolderID)]; !ok || e.ErasedAt.Before(old.ErasedAt) {
				if ok && e.UserID == "" {
					e.UserID = old.UserID
				}
				by[string(e.HolderID)] = e
			}
		}
	}
	out := make([]store.RegisterEntry, 0, len(by))
	for _, e := range by {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b store.RegisterEntry) int {
		if c := a.ErasedAt.Compare(b.ErasedAt); c != 0 {
			return c
		}
		return strings.Compare(string(a.HolderID), string(b.HolderID))
	})
	return out
}

// SyncRegisterFile merges the database's erasure register into the file
// copy in the keys dir, which outlives any database restore.
func SyncRegisterFile(ctx context.Context, db *store.DB, keysDir string) (int, error) {
	p := filepath.Join(keysDir, RegisterFile)
	have, err := ReadRegisterFile(p)
	if err != nil {
		return 0, err
	}
	fromDB, err := db.ErasureRegister(ctx)
	if err != nil {
		return 0, err
	}
	all := MergeRegister(have, fromDB)
	if len(all) == len(have) {
		return len(all), nil
	}
	return len(all), writeRegister(p, all)
}
