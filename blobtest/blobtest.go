// Package blobtest is the conformance suite every mds.BlobStore passes.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/mds-dev/mds"
)

// Run runs the suite against stores made by open; each call returns an empty store.
func Run(t *testing.T, open func(t testing.TB) mds.BlobStore) {
	t.Run("PutOpen", func(t *testing.T) { testPutOpen(t, open(t)) })
	t.Run("WrongHashKeepsNothing", func(t *testing.T) { testWrongHash(t, open(t)) })
	t.Run("FailedReadKeepsNothing", func(t *testing.T) { testFailedRead(t, open(t)) })
	t.Run("Dedup", func(t *testing.T) { testDedup(t, open(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, open(t)) })
}

// Sum returns the hex SHA-256 of b.
func Sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func content(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func testPutOpen(t *testing.T, s mds.BlobStore) {
	ctx := context.Background()
	data := content(3<<20 + 17)
	blob, err := s.Put(ctx, bytes.NewReader(data), Sum(data))
	if err != nil {
		t.Fatal(err)
	}
	if blob.SHA256 != Sum(data) || blob.Size != int64(len(data)) {
		t.Fatalf("Put = %+v, want sha %s size %d", blob, Sum(data), len(data))
	}
	st, err := s.Stat(ctx, blob.SHA256)
	if err != nil || st.Size != blob.Size {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
	r, got, err := s.Open(ctx, blob.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got.Size != int64(len(data)) {
		t.Errorf("Open size %d, want %d", got.Size, len(data))
	}
	// Resumed downloads seek into the middle.
	if _, err := r.Seek(1<<20, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rest, data[1<<20:]) {
		t.Error("content read after Seek differs from what was put")
	}
}

func testWrongHash(t *testing.T, s mds.BlobStore) {
	ctx := context.Background()
	data := content(1000)
	wrong := Sum([]byte("something else"))
	_, err := s.Put(ctx, bytes.NewReader(data), wrong)
	if mds.ErrorCode(err) != mds.EINVALID {
		t.Fatalf("Put with wrong hash: %v, want EINVALID", err)
	}
	for _, sum := range []string{wrong, Sum(data)} {
		if _, err := s.Stat(ctx, sum); mds.ErrorCode(err) != mds.ENOTFOUND {
			t.Errorf("Stat(%s) after failed Put: %v, want ENOTFOUND", sum[:8], err)
		}
	}
	if _, err := s.Put(ctx, bytes.NewReader(data), "not-a-hash"); mds.ErrorCode(err) != mds.EINVALID {
		t.Errorf("Put with malformed expected hash: %v, want EINVALID", err)
	}
}

type failingReader struct {
	r     io.Reader
	after int
}

var errBroken = errors.New("connection reset")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errBroken
	}
	if len(p) > f.after {
		p = p[:f.after]
	}
	n, err := f.r.Read(p)
	f.after -= n
	return n, err
}

func testFailedRead(t *testing.T, s mds.BlobStore) {
	ctx := context.Background()
	data := content(2 << 20)
	_, err := s.Put(ctx, &failingReader{r: bytes.NewReader(data), after: 1 << 20}, "")
	if !errors.Is(err, errBroken) {
		t.Fatalf("Put from a broken reader: %v, want the reader's error", err)
	}
	if _, err := s.Stat(ctx, Sum(data)); mds.ErrorCode(err) != mds.ENOTFOUND {
		t.Errorf("blob visible after a failed Put: %v", err)
	}
	if _, err := s.Stat(ctx, Sum(data[:1<<20])); mds.ErrorCode(err) != mds.ENOTFOUND {
		t.Errorf("partial blob visible after a failed Put: %v", err)
	}
}

func testDedup(t *testing.T, s mds.BlobStore) {
	ctx := context.Background()
	data := content(64 << 10)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := s.Put(ctx, bytes.NewReader(data), ""); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	r, _, err := s.Open(ctx, Sum(data))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, _ := io.ReadAll(r)
	if !bytes.Equal(got, data) {
		t.Error("concurrent puts of the same content corrupted it")
	}
}

func testNotFound(t *testing.T, s mds.BlobStore) {
	ctx := context.Background()
	if _, _, err := s.Open(ctx, Sum([]byte("never stored"))); mds.ErrorCode(err) != mds.ENOTFOUND {
		t.Errorf("Open of missing blob: %v, want ENOTFOUND", err)
	}
	if _, _, err := s.Open(ctx, "../../etc/passwd"); mds.ErrorCode(err) != mds.EINVALID {
		t.Errorf("Open of a path: %v, want EINVALID", err)
	}
}
