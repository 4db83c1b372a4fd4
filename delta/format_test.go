package delta

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

// TestLiteralScript checks the fallback Encode uses when differences are too dense to pay; the
// matcher's parameters make it rare enough that no small input reaches it.
func TestLiteralScript(t *testing.T) {
	for _, new := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("new bytes "), 1000)} {
		old := []byte("old bytes")
		patch, err := encodeScript(old, new, literalScript(new))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := Apply(&out, old, bytes.NewReader(patch), int64(len(new))); err != nil || !bytes.Equal(out.Bytes(), new) {
			t.Errorf("%d bytes: got %d bytes, %v", len(new), out.Len(), err)
		}
	}
}

// TestHugeFrameRefused feeds Apply a zstd frame that claims 32 GiB of content: it must refuse it
// without allocating for it.
func TestHugeFrameRefused(t *testing.T) {
	old := []byte("old")
	sum := sha256.Sum256(old)
	p := []byte(Magic)
	p = binary.AppendUvarint(p, uint64(len(old)))
	p = append(p, sum[:]...)
	p = binary.AppendUvarint(p, 1000)
	p = append(p, make([]byte, sha256.Size)...)
	for _, n := range []uint64{1, 1, 1, 0, 0, 0, 0} {
		p = binary.AppendUvarint(p, n)
	}
	// A single-segment frame header with an 8-byte content size, then one raw block of one byte.
	p = append(p, 0x28, 0xb5, 0x2f, 0xfd, 0xe0)
	p = binary.LittleEndian.AppendUint64(p, 32<<30)
	p = append(p, 1<<3|1, 0, 0, 0)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Apply(io.Discard, old, bytes.NewReader(p), 1<<20)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("got %v, want ErrCorrupt", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("allocated %d bytes", n)
	}
}
