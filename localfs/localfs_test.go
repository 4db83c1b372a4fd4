package localfs_test

import (
	"os"
	"path/filepath"
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
		return b
	})
}

// TestOpenClearsInterruptedUploads stands in for a process killed mid-Put:
// its temporary file must not survive the next start.
func TestOpenClearsInterruptedUploads(t *testing.T) {
	dir := t.TempDir()
	b, err := localfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(b.TempDir(), "upload-123")
	if err := os.WriteFile(partial, []byte("half of a package"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := localfs.Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("interrupted upload still present after Open: %v", err)
	}
}
