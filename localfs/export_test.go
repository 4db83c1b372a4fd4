package localfs

import "testing"

// ReleaseLock drops b's lock and leaves its temp directory behind, as a
// killed process would.
func ReleaseLock(t *testing.T, b *BlobStore) {
	t.Helper()
	if err := b.held.Close(); err != nil {
		t.Fatal(err)
	}
}
