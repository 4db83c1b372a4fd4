// Package delta encodes and applies the patches that update an H5 offline package on a device from
// the version it holds to a newer one. Both sides work on a package's canonical bytes; the server
// encodes, the device applies.
//
// # Format
//
// A patch is a bsdiff-style edit script (Colin Percival's matching over a suffix array of the old
// bytes) stored as columns and compressed with zstd. Patch sizes in bytes, measured on canonical
// stored zips of element-plus's dist/ (about 20 MB; the package deflated is about 4.5 MB):
//
//	                                  2.13.7→2.14.0   2.14.0→2.14.1
//	this format                             222,250          57,453
//	zstd -19 --long=27 --patch-from         277,554          80,184
//	bsdiff                                  351,111          78,630
//	xdelta3 -9                              375,226         102,684
//	Go zstd (klauspost) patch-from          391,922         137,390
//
// zstd "patch-from" (the old bytes as a raw dictionary) would need nothing but a zstd decoder on the
// device, but the Go encoder lacks the reference encoder's optimal parser and loses by 40–70%. The
// edit script wins because JavaScript bundles change in many small places (every file carries the
// version): a copy with byte differences covers them without a new match each time. Encoding such
// a pair takes 3–4 s of CPU, where bsdiff takes 14 s or more and zstd -19 16 s; applying it 0.1 s.
//
// All integers are unsigned LEB128 varints ("uvarint") unless said otherwise. A patch is:
//
//	magic         the 4 bytes "MDD\x01"
//	old size      uvarint, then old's SHA-256 (32 bytes)
//	new size      uvarint, then new's SHA-256 (32 bytes)
//	column sizes  7 uvarints: the decompressed sizes of add, extra, seek, gaps, runs, diff, literal
//	body          zstd frames which, decompressed with old as a raw-content dictionary, yield the
//	              seven columns one after the other (an empty column has no frame)
//
// The entries of the script are (add, extra, seek), one from each of the first three columns (seek
// is a zigzag varint, as Go's binary.AppendVarint writes). With oldPos starting at 0, an entry
// writes add bytes, each old[oldPos+i] plus (mod 256) the next byte of the difference stream; then
// extra bytes taken in order from the literal column; then moves oldPos by add+seek. Add blocks lie
// within old, and oldPos within [0, len(old)]. The difference stream is the concatenation of all add
// blocks' differences, stored as its runs of nonzero bytes: for each run, gaps holds how many zero
// bytes precede it since the previous run ended, runs its length (at least 1), and diff its bytes.
// Every column must be consumed exactly, and the output must have new's size and SHA-256.
//
// A device therefore needs SHA-256, a zstd decoder that keeps a raw-content dictionary for every
// frame (libzstd's ZSTD_DCtx_loadDictionary, not ZSTD_DCtx_refPrefix, which serves one frame) and a
// loop of a few lines. It holds old and the six small columns in memory and streams the literal
// column and the output.
//
// Apply refuses a patch made for other old bytes (ErrWrongBase) before writing anything, and one
// whose output does not match its recorded hash (ErrCorrupt) after writing it; callers still check
// the SHA-256 their signed answer names, and discard what Apply wrote on any error.
package delta

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"

	"github.com/klauspost/compress/zstd"
)

// Magic opens every patch; its last byte is the format version.
const Magic = "MDD\x01"

// MaxInput bounds len(old)+len(new) for Encode, which needs about 8 bytes of memory per input byte
// at peak (the suffix array and its construction, zstd's tables and window; 260–400 MB for the
// 40 MB pairs above), so at most about 1 GB.
const MaxInput = 128 << 20

var (
	// ErrCorrupt reports a patch that is malformed or does not reproduce the new bytes it recorded.
	ErrCorrupt = errors.New("delta: corrupt patch")
	// ErrTooLarge reports input beyond MaxInput, or a patch whose output would exceed the caller's max.
	ErrTooLarge = errors.New("delta: too large")
	// ErrWrongBase reports a patch made for other old bytes.
	ErrWrongBase = errors.New("delta: patch is for other old bytes")
)

// columnSlack lets the columns of a tiny output exceed its size. Beyond size+columnSlack the script
// costs more than the bytes it describes, so Encode stores them as literals instead; Apply holds
// the columns in memory and refuses larger ones.
const columnSlack = 64

// chunk is how much Apply buffers before writing.
const chunk = 64 << 10

// Encode returns the patch that turns old into new. It is deterministic: the same inputs give the
// same patch.
func Encode(old, new []byte) ([]byte, error) {
	if int64(len(old))+int64(len(new)) > MaxInput {
		return nil, fmt.Errorf("%w: %d old + %d new bytes exceed %d", ErrTooLarge, len(old), len(new), MaxInput)
	}
	s := diffScript(old, new)
	if s.columnBytes() > len(new)+columnSlack {
		s = literalScript(new)
	}
	return encodeScript(old, new, s)
}

// encodeScript returns the patch that stores s, the script that turns old into new.
func encodeScript(old, new []byte, s *script) ([]byte, error) {
	p := []byte(Magic)
	oldSum, newSum := sha256.Sum256(old), sha256.Sum256(new)
	p = binary.AppendUvarint(p, uint64(len(old)))
	p = append(p, oldSum[:]...)
	p = binary.AppendUvarint(p, uint64(len(new)))
	p = append(p, newSum[:]...)
	for _, c := range s.columns() {
		p = binary.AppendUvarint(p, uint64(len(c)))
	}
	p = binary.AppendUvarint(p, uint64(len(s.literal)))

	// One frame per column keeps each column's statistics its own (1–3% smaller than one frame for
	// all). Only the literals find much in old, but giving every frame the dictionary costs nothing
	// in size and lets one encoder serve them all: the best level allocates ~70 MB of tables.
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false), // the output's SHA-256 covers everything
		zstd.WithWindowSize(window(int64(len(old)), int64(len(new)))),
		zstd.WithEncoderDictRaw(0, old))
	if err != nil {
		return nil, fmt.Errorf("delta: zstd encoder: %w", err)
	}
	defer enc.Close()
	for _, c := range append(s.columns(), s.literal) {
		if len(c) > 0 {
			p = enc.EncodeAll(c, p)
		}
	}
	return p, nil
}

// window returns the zstd window for a patch: a power of two that spans old and the largest frame
// (the literals, or columns up to newSize+columnSlack), within zstd's limits. Encode writes frames
// no larger; Apply refuses larger ones.
func window(oldSize, newSize int64) int {
	w := 1 << bits.Len64(uint64(oldSize+newSize+columnSlack-1))
	return min(max(w, zstd.MinWindowSize), zstd.MaxWindowSize)
}

// maxSize bounds every size and position a patch states, keeping their sums far from overflow.
const maxSize = 1 << 40

// header is what precedes the compressed body.
type header struct {
	oldSize, newSize int64
	oldSum, newSum   [sha256.Size]byte
	columns          [6]int64 // add, extra, seek, gaps, runs, diff
	literal          int64
}

func readHeader(r *bufio.Reader) (*header, error) {
	var magic [len(Magic)]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || string(magic[:]) != Magic {
		return nil, fmt.Errorf("%w: not a delta patch", ErrCorrupt)
	}
	bad := false
	size := func() int64 {
		u, err := binary.ReadUvarint(r)
		bad = bad || err != nil || u > maxSize
		return int64(u)
	}
	sum := func(s []byte) {
		_, err := io.ReadFull(r, s)
		bad = bad || err != nil
	}
	h := &header{}
	h.oldSize = size()
	sum(h.oldSum[:])
	h.newSize = size()
	sum(h.newSum[:])
	for i := range h.columns {
		h.columns[i] = size()
	}
	h.literal = size()
	if bad {
		return nil, fmt.Errorf("%w: bad header", ErrCorrupt)
	}
	return h, nil
}

// Apply writes the bytes that patch turns old into, to w, and returns how many it wrote. It refuses a
// patch that is malformed, made for other old bytes, or whose output would exceed max bytes, with an
// error (never a panic) and without writing more than max bytes; on error, the caller must discard
// what was written. Besides old, it holds at most zstd's window (len(old) plus the output's size,
// rounded up to a power of two) and the columns (the output's size plus 64 bytes); on the pairs
// above, it needs about 5 MB beyond old.
func Apply(w io.Writer, old []byte, patch io.Reader, max int64) (int64, error) {
	r := bufio.NewReader(patch)
	h, err := readHeader(r)
	if err != nil {
		return 0, err
	}
	if h.oldSize != int64(len(old)) || sha256.Sum256(old) != h.oldSum {
		return 0, ErrWrongBase
	}
	if h.newSize > max {
		return 0, fmt.Errorf("%w: patch makes %d bytes, more than %d", ErrTooLarge, h.newSize, max)
	}
	var columnBytes int64
	for _, n := range h.columns {
		columnBytes += n
	}
	if columnBytes > h.newSize+columnSlack || h.literal > h.newSize {
		return 0, fmt.Errorf("%w: columns too large for the output", ErrCorrupt)
	}

	limit := uint64(window(h.oldSize, h.newSize))
	dec, err := zstd.NewReader(r,
		zstd.WithDecoderDictRaw(0, old),
		zstd.WithDecoderMaxWindow(limit),
		zstd.WithDecoderMaxMemory(limit), // also bounds a frame that states its size instead of a window
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true))
	if err != nil {
		return 0, fmt.Errorf("delta: zstd decoder: %w", err)
	}
	defer dec.Close()

	// The columns grow as their bytes arrive, so a header that lies about their sizes costs no memory.
	var cols [6]column
	for i, n := range h.columns {
		var b bytes.Buffer
		if _, err := io.CopyN(&b, dec, n); err != nil {
			return 0, fmt.Errorf("%w: column %d: %v", ErrCorrupt, i, err)
		}
		cols[i] = column(b.Bytes())
	}
	add, extra, seek := &cols[0], &cols[1], &cols[2]
	diff := differences{gaps: &cols[3], runs: &cols[4], diff: &cols[5], limit: h.newSize}
	literal := &io.LimitedReader{R: corruptOnError{dec}, N: h.literal}
	out := &output{w: w, hash: sha256.New()}
	buf := make([]byte, min(chunk, h.newSize+1)) // never empty, as io.CopyBuffer wants
	var oldPos int64
	for len(*add) > 0 {
		a, ok1 := add.uvarint()
		x, ok2 := extra.uvarint()
		s, ok3 := seek.varint()
		if !ok1 || !ok2 || !ok3 || a > h.newSize-out.n || x > h.newSize-out.n-a || a > int64(len(old))-oldPos {
			return out.n, fmt.Errorf("%w: bad entry", ErrCorrupt)
		}
		for a > 0 {
			b := buf[:min(a, int64(len(buf)))]
			copy(b, old[oldPos:])
			if err := diff.apply(b); err != nil {
				return out.n, err
			}
			if _, err := out.Write(b); err != nil {
				return out.n, err
			}
			oldPos += int64(len(b))
			a -= int64(len(b))
		}
		if n, err := io.CopyBuffer(out, io.LimitReader(literal, x), buf); err != nil {
			return out.n, err
		} else if n != x {
			return out.n, fmt.Errorf("%w: literal column ends early", ErrCorrupt)
		}
		if oldPos += s; oldPos < 0 || oldPos > int64(len(old)) {
			return out.n, fmt.Errorf("%w: seek outside old", ErrCorrupt)
		}
	}
	if len(*extra) > 0 || len(*seek) > 0 || !diff.done() || literal.N != 0 || out.n != h.newSize {
		return out.n, fmt.Errorf("%w: columns disagree", ErrCorrupt)
	}
	var one [1]byte
	if _, err := io.ReadFull(dec, one[:]); err != io.EOF {
		return out.n, fmt.Errorf("%w: data after the script", ErrCorrupt)
	}
	if !bytes.Equal(out.hash.Sum(nil), h.newSum[:]) {
		return out.n, fmt.Errorf("%w: output does not match its hash", ErrCorrupt)
	}
	return out.n, nil
}

// column is a decompressed column, consumed from the front.
type column []byte

func (c *column) uvarint() (int64, bool) {
	v, n := binary.Uvarint(*c)
	if n <= 0 || v > maxSize {
		return 0, false
	}
	*c = (*c)[n:]
	return int64(v), true
}

func (c *column) varint() (int64, bool) {
	v, n := binary.Varint(*c)
	if n <= 0 || v > maxSize || v < -maxSize {
		return 0, false
	}
	*c = (*c)[n:]
	return v, true
}

// differences adds the difference stream, kept as runs, to the add blocks in order.
type differences struct {
	gaps, runs, diff *column
	limit            int64 // the stream's greatest possible length
	pos              int64 // where the next block starts in the stream
	start, left      int64 // the unapplied part of the current run; left is 0 between runs
	end              int64 // where the current run ends
}

// apply adds the differences for the next len(b) bytes of the stream to b.
func (d *differences) apply(b []byte) error {
	end := d.pos + int64(len(b))
	for {
		if d.left == 0 {
			if len(*d.gaps) == 0 {
				break
			}
			gap, ok1 := d.gaps.uvarint()
			n, ok2 := d.runs.uvarint()
			if !ok1 || !ok2 || n == 0 || n > int64(len(*d.diff)) || d.end+gap >= d.limit {
				return fmt.Errorf("%w: bad difference run", ErrCorrupt)
			}
			d.start, d.left = d.end+gap, n
			d.end = d.start + n
		}
		if d.start >= end {
			break
		}
		n := min(d.left, end-d.start)
		at := b[d.start-d.pos:]
		for i, v := range (*d.diff)[:n] {
			at[i] += v
		}
		*d.diff = (*d.diff)[n:]
		d.start += n
		d.left -= n
	}
	d.pos = end
	return nil
}

// done reports whether every run was applied.
func (d *differences) done() bool {
	return d.left == 0 && len(*d.gaps) == 0 && len(*d.runs) == 0 && len(*d.diff) == 0
}

// corruptOnError marks the errors of a body reader as ErrCorrupt, apart from the writer's.
type corruptOnError struct{ r io.Reader }

func (c corruptOnError) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return n, err
}

// output writes to w, counting and hashing what it writes.
type output struct {
	w    io.Writer
	hash hash.Hash
	n    int64
}

func (o *output) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	o.hash.Write(p[:n])
	o.n += int64(n)
	return n, err
}
