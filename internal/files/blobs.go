package files

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// Blobs stores opaque (already encrypted) blobs by server-generated id.
//
// Ids are 32 lowercase hex digits (NewBlobID). Implementations must refuse
// any other id with an error wrapping ErrInvalidID.
type Blobs interface {
	// Create returns a writer for a new blob. Nothing is visible under id
	// until Close succeeds. If a Write failed, Close discards the data and
	// returns the error. The writer should also implement Aborter, so that a
	// write given up for reasons of the caller's (a limit, a bad image)
	// leaves nothing behind; without it the caller must Close and Delete.
	// Create refuses an id that already exists.
	Create(ctx context.Context, id string) (io.WriteCloser, error)
	// Open returns the blob; an unknown id gives an error wrapping
	// fs.ErrNotExist.
	Open(ctx context.Context, id string) (io.ReadCloser, error)
	// Delete removes the blob. Deleting an unknown id is not an error.
	Delete(ctx context.Context, id string) error
	// List calls fn for every committed blob, in no particular order,
	// stopping at the first error fn returns.
	List(ctx context.Context, fn func(id string, modTime time.Time) error) error
}

// Aborter is implemented by writers from Blobs.Create that can discard an
// unfinished blob. After Abort, Close is a no-op.
type Aborter interface {
	Abort() error
}

// ErrInvalidID is wrapped by errors about a malformed blob id.
var ErrInvalidID = errors.New("files: invalid blob id")

// NewBlobID returns a fresh random blob id: 16 bytes from crypto/rand as 32
// lowercase hex digits.
func NewBlobID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ValidBlobID reports whether id has the form of NewBlobID's results.
func ValidBlobID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func checkID(id string) error {
	if !ValidBlobID(id) {
		return fmt.Errorf("%w %q", ErrInvalidID, id)
	}
	return nil
}

const tmpPrefix = ".tmp-"

// LocalBlobs stores blobs in a local directory:
//
//	dir/            0700
//	  ab/           0700, the first two hex digits of the id
//	    ab12...ef   0600, one committed blob
//	    .tmp-...    0600, a blob being written (or left by a crash)
//
// Every file operation goes through an os.Root opened on dir, so no id,
// symlink or ".." can reach outside it; ids are validated as well. A
// LocalBlobs is safe for concurrent use. Close releases the directory handle.
type LocalBlobs struct {
	root *os.Root
}

var _ Blobs = (*LocalBlobs)(nil)

// NewLocalBlobs opens (creating it with mode 0700 if needed) the blob
// directory dir. It does not change the mode of an existing directory.
func NewLocalBlobs(dir string) (*LocalBlobs, error) {
	if dir == "" {
		return nil, errors.New("files: empty blob directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("files: creating blob directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("files: opening blob directory: %w", err)
	}
	return &LocalBlobs{root: root}, nil
}

// Close releases the directory handle.
func (lb *LocalBlobs) Close() error { return lb.root.Close() }

func blobPath(id string) (dir, name string) { return id[:2], path.Join(id[:2], id) }

// Create starts a new blob. See Blobs.Create; the writer implements Aborter.
func (lb *LocalBlobs) Create(ctx context.Context, id string) (io.WriteCloser, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, final := blobPath(id)
	if err := lb.root.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("files: creating blob: %w", err)
	}
	if _, err := lb.root.Lstat(final); err == nil {
		return nil, fmt.Errorf("files: creating blob %s: %w", id, fs.ErrExist)
	}
	tmp := path.Join(dir, tmpPrefix+id+"-"+NewBlobID()[:8])
	f, err := lb.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("files: creating blob: %w", err)
	}
	return &localWriter{root: lb.root, f: f, dir: dir, tmp: tmp, final: final}, nil
}

type localWriter struct {
	root            *os.Root
	f               *os.File
	dir, tmp, final string
	err             error // first write error (sticky)
	done            bool
	result          error
}

func (w *localWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("files: write to closed blob")
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.f.Write(p)
	if err != nil {
		w.err = fmt.Errorf("files: writing blob: %w", err)
	}
	return n, w.err
}

// Abort discards the blob.
func (w *localWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.result = errors.New("files: blob aborted")
	w.f.Close()
	if err := w.root.Remove(w.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("files: discarding blob: %w", err)
	}
	return nil
}

// Close commits the blob: sync, then hard-link the temporary file to its
// final name (which fails rather than replace an existing blob), remove the
// temporary name and sync the directory. After a write error it discards
// the blob and returns that error.
func (w *localWriter) Close() error {
	if w.done {
		return w.result
	}
	if w.err != nil {
		w.Abort()
		w.result = w.err
		return w.err
	}
	w.done = true
	w.result = w.commit()
	if w.result != nil {
		w.root.Remove(w.tmp)
	}
	return w.result
}

func (w *localWriter) commit() error {
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		return fmt.Errorf("files: syncing blob: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("files: closing blob: %w", err)
	}
	if err := w.root.Link(w.tmp, w.final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("files: committing blob: %w", err)
		}
		// A filesystem without hard links: rename instead. The id was
		// checked to be free in Create and is random, so this cannot
		// realistically replace a blob.
		if err := w.root.Rename(w.tmp, w.final); err != nil {
			return fmt.Errorf("files: committing blob: %w", err)
		}
	} else if err := w.root.Remove(w.tmp); err != nil {
		return fmt.Errorf("files: committing blob: %w", err)
	}
	if d, err := w.root.Open(w.dir); err == nil {
		d.Sync() // best effort: durability of the new name
		d.Close()
	}
	return nil
}

// Open opens a committed blob.
func (lb *LocalBlobs) Open(ctx context.Context, id string) (io.ReadCloser, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	_, name := blobPath(id)
	f, err := lb.root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("files: opening blob: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("files: opening blob %s: not a regular file", id)
	}
	return f, nil
}

// Delete removes a blob; an unknown id is not an error.
func (lb *LocalBlobs) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, name := blobPath(id)
	if err := lb.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("files: deleting blob: %w", err)
	}
	return nil
}

// List calls fn for every committed blob. Temporary files and anything that
// does not look like a blob are skipped.
func (lb *LocalBlobs) List(ctx context.Context, fn func(id string, modTime time.Time) error) error {
	return lb.walk(ctx, func(dir string, e fs.DirEntry) error {
		id := e.Name()
		if !ValidBlobID(id) || id[:2] != dir || !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			}
			return fmt.Errorf("files: listing blobs: %w", err)
		}
		return fn(id, fi.ModTime())
	})
}

// RemoveStaleTemp removes temporary files (writes that a crash interrupted)
// last modified before cutoff, and returns how many it removed.
func (lb *LocalBlobs) RemoveStaleTemp(ctx context.Context, cutoff time.Time) (int, error) {
	n := 0
	err := lb.walk(ctx, func(dir string, e fs.DirEntry) error {
		if !strings.HasPrefix(e.Name(), tmpPrefix) || !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			return nil
		}
		if err := lb.root.Remove(path.Join(dir, e.Name())); err == nil {
			n++
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("files: removing stale temporary file: %w", err)
		}
		return nil
	})
	return n, err
}

// walk calls fn for every entry of every two-hex-digit subdirectory.
func (lb *LocalBlobs) walk(ctx context.Context, fn func(dir string, e fs.DirEntry) error) error {
	top, err := readDir(lb.root, ".")
	if err != nil {
		return fmt.Errorf("files: listing blobs: %w", err)
	}
	for _, d := range top {
		if !d.IsDir() || len(d.Name()) != 2 || !ValidBlobID(d.Name()+strings.Repeat("0", 30)) {
			continue
		}
		entries, err := readDir(lb.root, d.Name())
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("files: listing blobs: %w", err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(d.Name(), e); err != nil {
				return err
			}
		}
	}
	return nil
}

func readDir(root *os.Root, name string) ([]fs.DirEntry, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}
