// Package localfs keeps blobs in a local directory, one file per blob named
// by its SHA-256. A blob becomes visible only by an atomic rename of a fully
// written and fsynced temporary file, so a crash or kill at any moment leaves
// either the whole blob or none of it.
package localfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/atomicfile"
)

// BlobStore implements mds.BlobStore over a directory. Several processes
// may share the directory (nodes on one volume): each writes its uploads
// in progress to a temp directory of its own, held by a lock, and Open
// removes the temp directories whose owner is gone.
type BlobStore struct {
	blobs string   // <dir>/blobs/<first two hex digits>/<sha256>
	tmp   string   // <dir>/tmp/<this process>, on the same filesystem so rename is atomic
	held  *os.File // the lock on tmp, held while the store is open
}

var _ mds.BlobStore = (*BlobStore)(nil)

// staleAfter is how old a half-made temp directory (one whose owner died
// before taking its lock) must be before it counts as abandoned.
const staleAfter = 24 * time.Hour

// Open prepares dir for use and removes leftovers of interrupted uploads
// whose process is gone.
func Open(dir string) (*BlobStore, error) {
	b := &BlobStore{blobs: filepath.Join(dir, "blobs")}
	root := filepath.Join(dir, "tmp")
	for _, d := range []string{b.blobs, root} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("localfs: %w", err)
		}
	}
	sweep(root)
	// The directory gets its lock under a name sweeps leave alone, and only
	// then its real name: no other process can ever see it unlocked. The
	// lock belongs to the file, so it survives the rename.
	staging, err := os.MkdirTemp(root, ".new-")
	if err != nil {
		return nil, fmt.Errorf("localfs: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(staging, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("localfs: %w", err)
	}
	if _, err := lock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("localfs: lock %s: %w", staging, err)
	}
	tmp := filepath.Join(root, "p-"+strings.TrimPrefix(filepath.Base(staging), ".new-"))
	if err := os.Rename(staging, tmp); err != nil {
		f.Close()
		return nil, fmt.Errorf("localfs: %w", err)
	}
	b.tmp, b.held = tmp, f
	return b, nil
}

// sweep removes the temp directories under root that no live process
// holds. It is best effort: what it cannot read or remove (another user's
// files, a file server's placeholders) stays, and the store still opens.
func sweep(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		path := filepath.Join(root, e.Name())
		switch {
		case !e.IsDir():
		case strings.HasPrefix(e.Name(), ".new-"):
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleAfter {
				os.RemoveAll(path)
			}
		case strings.HasPrefix(e.Name(), "p-") && isAbandoned(path):
			os.RemoveAll(path)
		}
	}
}

// isAbandoned reports whether dir's lock can be taken, that is, whether its
// owner is gone. The lock is released when the file is closed.
func isAbandoned(dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	got, err := lock(f)
	return err == nil && got
}

// Close releases the store's temp directory; uploads in progress fail.
// Calling it again does nothing.
func (b *BlobStore) Close() error {
	if b.held == nil {
		return nil
	}
	err := errors.Join(os.RemoveAll(b.tmp), b.held.Close())
	b.held = nil
	return err
}

// TempDir is where this store keeps uploads in progress.
func (b *BlobStore) TempDir() string { return b.tmp }

func (b *BlobStore) path(sum string) string {
	return filepath.Join(b.blobs, sum[:2], sum)
}

// Put implements mds.BlobStore.
func (b *BlobStore) Put(ctx context.Context, r io.Reader, want string) (blob mds.Blob, err error) {
	if want != "" && !mds.ValidSHA256(want) {
		return mds.Blob{}, mds.Errorf(mds.EINVALID, "expected sha256 %q must be 64 lowercase hex digits", want)
	}
	f, err := os.CreateTemp(b.tmp, "upload-*")
	if err != nil {
		return mds.Blob{}, fmt.Errorf("localfs: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(f, h), ctxReader{ctx, r}, make([]byte, 256<<10))
	if err != nil {
		return mds.Blob{}, err
	}
	if err := f.Sync(); err != nil {
		return mds.Blob{}, fmt.Errorf("localfs: sync: %w", err)
	}
	if err := f.Close(); err != nil {
		return mds.Blob{}, fmt.Errorf("localfs: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != "" && sum != want {
		return mds.Blob{}, mds.Errorf(mds.EINVALID,
			"content hashes to sha256 %s but %s was expected; the upload was corrupted or the wrong file was sent", sum, want)
	}
	dst := b.path(sum)
	// A new shard directory must itself be durable before a blob in it is.
	switch err := os.Mkdir(filepath.Dir(dst), 0o750); {
	case err == nil:
		if err := syncDir(b.blobs); err != nil {
			return mds.Blob{}, err
		}
	case !errors.Is(err, fs.ErrExist):
		return mds.Blob{}, fmt.Errorf("localfs: %w", err)
	}
	// Renaming over an existing blob is harmless: same name, same content.
	if err := os.Rename(f.Name(), dst); err != nil {
		return mds.Blob{}, fmt.Errorf("localfs: %w", err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return mds.Blob{}, err
	}
	st, err := os.Stat(dst)
	if err != nil {
		return mds.Blob{}, fmt.Errorf("localfs: %w", err)
	}
	return mds.Blob{SHA256: sum, Size: n, ModTime: st.ModTime()}, nil
}

// syncDir makes a rename into dir durable.
func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("localfs: sync dir: %w", err)
	}
	return nil
}

// Open implements mds.BlobStore.
func (b *BlobStore) Open(ctx context.Context, sum string) (io.ReadSeekCloser, mds.Blob, error) {
	if !mds.ValidSHA256(sum) {
		return nil, mds.Blob{}, mds.Errorf(mds.EINVALID, "%q is not a sha256: expected 64 lowercase hex digits", sum)
	}
	f, err := os.Open(b.path(sum))
	if err != nil {
		return nil, mds.Blob{}, notFound(err, sum)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, mds.Blob{}, fmt.Errorf("localfs: %w", err)
	}
	return f, mds.Blob{SHA256: sum, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Stat implements mds.BlobStore.
func (b *BlobStore) Stat(ctx context.Context, sum string) (mds.Blob, error) {
	if !mds.ValidSHA256(sum) {
		return mds.Blob{}, mds.Errorf(mds.EINVALID, "%q is not a sha256: expected 64 lowercase hex digits", sum)
	}
	st, err := os.Stat(b.path(sum))
	if err != nil {
		return mds.Blob{}, notFound(err, sum)
	}
	return mds.Blob{SHA256: sum, Size: st.Size(), ModTime: st.ModTime()}, nil
}

func notFound(err error, sum string) error {
	if errors.Is(err, fs.ErrNotExist) {
		return mds.Errorf(mds.ENOTFOUND, "no blob with sha256 %s; upload it first", sum)
	}
	return fmt.Errorf("localfs: %w", err)
}

// ctxReader stops a long copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
