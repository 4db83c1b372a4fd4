package localfs_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/blobtest"
	"github.com/mds-dev/mds/localfs"
)

func TestBlobStore(t *testing.T) {
	blobtest.Run(t, func(t testing.TB) mds.BlobStore {
		b, err := localfs.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}

// TestSharedDirectory checks the temp directory rules: a live store's
// uploads in progress survive another store opening the same directory, and
// a closed (or dead) store's leftovers are removed by the next Open.
func TestSharedDirectory(t *testing.T) {
	dir := t.TempDir()
	a, err := localfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(a.TempDir(), "upload-123")
	if err := os.WriteFile(partial, []byte("half of a package"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := localfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := os.Stat(partial); err != nil {
		t.Fatalf("opening a second store removed the first one's upload in progress: %v", err)
	}
	if a.TempDir() == b.TempDir() {
		t.Fatal("two stores share a temp directory")
	}
	// Stand in for a killed process: drop the lock without cleaning up.
	abandoned := a.TempDir()
	if err := os.WriteFile(filepath.Join(abandoned, "upload-456"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	localfs.ReleaseLock(t, a)
	c, err := localfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := os.Stat(abandoned); !os.IsNotExist(err) {
		t.Errorf("abandoned temp directory survived Open: %v", err)
	}
	if _, err := os.Stat(b.TempDir()); err != nil {
		t.Errorf("live store's temp directory was removed: %v", err)
	}
}

// TestConcurrentOpens opens many stores on one directory at once, as nodes
// starting together would: none may lose its temp directory to another's
// sweep.
func TestConcurrentOpens(t *testing.T) {
	dir := t.TempDir()
	for range 100 {
		var wg sync.WaitGroup
		stores := make([]*localfs.BlobStore, 8)
		for i := range stores {
			wg.Go(func() {
				b, err := localfs.Open(dir)
				if err != nil {
					t.Error(err)
					return
				}
				stores[i] = b
			})
		}
		wg.Wait()
		for _, b := range stores {
			if b == nil {
				continue
			}
			if _, err := b.Put(context.Background(), strings.NewReader("x"), ""); err != nil {
				t.Fatalf("a store lost its temp directory to a concurrent Open: %v", err)
			}
		}
		for _, b := range stores {
			if b != nil {
				b.Close()
				if err := b.Close(); err != nil {
					t.Errorf("second Close: %v", err)
				}
			}
		}
	}
}
