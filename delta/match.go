package delta

import (
	"bytes"
	"encoding/binary"
)

const (
	// seekGain is how many more bytes a match elsewhere in old must cover than the current alignment
	// before the script seeks to it. A seek costs a control entry; bsdiff's 8 makes so many that the
	// control columns outweigh the rest: on pair 2.13.7→2.14.0 the patch is 285,155 bytes at 8,
	// 236,386 at 16, 222,250 at 24 and 227,949 at 40.
	seekGain = 24
	// nearby is how many suffix-array neighbours sharing the longest match are weighed to pick the one
	// nearest the current alignment: the same text often sits in several files (a .js, its .mjs, its
	// map), and the nearest copy makes a short seek that compresses well (without: 2.5% and 3.5%
	// larger patches on the two pairs measured).
	nearby = 16
)

// script is an edit script in the columns a patch stores (see the package doc).
type script struct {
	add, extra, seek []byte // per entry: uvarint, uvarint, zigzag varint
	gaps, runs, diff []byte // per run of nonzero differences: uvarint, uvarint, its bytes
	literal          []byte // the extra bytes of all entries, in order
}

func (s *script) columns() [][]byte {
	return [][]byte{s.add, s.extra, s.seek, s.gaps, s.runs, s.diff}
}

func (s *script) columnBytes() int {
	n := 0
	for _, c := range s.columns() {
		n += len(c)
	}
	return n
}

func (s *script) entry(add, extra, seek int) {
	s.add = binary.AppendUvarint(s.add, uint64(add))
	s.extra = binary.AppendUvarint(s.extra, uint64(extra))
	s.seek = binary.AppendVarint(s.seek, int64(seek))
}

// literalScript writes new as one extra block: the fallback when differences are too dense to pay.
func literalScript(new []byte) *script {
	s := &script{literal: new}
	if len(new) > 0 {
		s.entry(0, len(new), 0)
	}
	return s
}

// runEncoder turns the byte differences of the add blocks, seen as one stream, into runs of nonzero
// bytes. Most differences are zero, and positions plus bytes compress better than the zeros do
// (about 30% on pair 2.13.7→2.14.0).
type runEncoder struct {
	s     *script
	pos   int // position in the difference stream
	end   int // where the last closed run ended
	start int // where the open run started, or -1
}

func (r *runEncoder) put(d byte) {
	switch {
	case d != 0 && r.start < 0:
		r.s.gaps = binary.AppendUvarint(r.s.gaps, uint64(r.pos-r.end))
		r.start = r.pos
		fallthrough
	case d != 0:
		r.s.diff = append(r.s.diff, d)
	case r.start >= 0:
		r.close()
	}
	r.pos++
}

func (r *runEncoder) close() {
	if r.start >= 0 {
		r.s.runs = binary.AppendUvarint(r.s.runs, uint64(r.pos-r.start))
		r.end, r.start = r.pos, -1
	}
}

// diffScript computes the edit script with bsdiff's algorithm (Colin Percival, "Naive differences of
// executable code", 2003): find the longest match of new's next bytes in old, extend it forwards and
// backwards while most bytes agree, and store the approximate copies as differences. It departs from
// bsdiff in seekGain, nearby, agreement and the columns it writes.
func diffScript(old, new []byte) *script {
	s := &script{}
	runs := runEncoder{s: s, start: -1}
	x := newIndex(old)
	var scan, length, pos, lastScan, lastPos, lastOffset int
	for scan < len(new) {
		oldScore := 0
		scan += length
		for sc := scan; scan < len(new); scan++ {
			pos, length = x.longestMatch(new[scan:], scan+lastOffset)
			for ; sc < scan+length; sc++ {
				if sc+lastOffset < len(old) && old[sc+lastOffset] == new[sc] {
					oldScore++
				}
			}
			if length == oldScore && length != 0 || length > oldScore+seekGain {
				break
			}
			if scan+lastOffset < len(old) && old[scan+lastOffset] == new[scan] {
				oldScore--
			}
		}
		if length == oldScore && scan != len(new) {
			continue
		}

		// Extend the previous match forwards and this one backwards, splitting any overlap where
		// it loses the fewest agreeing bytes.
		forward, worth, best := 0, 0, 0
		for i := 0; lastScan+i < scan && lastPos+i < len(old); i++ {
			worth += agreement(old[lastPos+i], new[lastScan+i])
			if worth > best {
				best, forward = worth, i+1
			}
		}
		back := 0
		if scan < len(new) {
			worth, best := 0, 0
			for i := 1; scan >= lastScan+i && pos >= i; i++ {
				worth += agreement(old[pos-i], new[scan-i])
				if worth > best {
					best, back = worth, i
				}
			}
		}
		if overlap := lastScan + forward - (scan - back); overlap > 0 {
			score, best, split := 0, 0, 0
			for i := 0; i < overlap; i++ {
				if new[lastScan+forward-overlap+i] == old[lastPos+forward-overlap+i] {
					score++
				}
				if new[scan-back+i] == old[pos-back+i] {
					score--
				}
				if score > best {
					best, split = score, i+1
				}
			}
			forward += split - overlap
			back -= split
		}

		for i := range forward {
			runs.put(new[lastScan+i] - old[lastPos+i])
		}
		s.literal = append(s.literal, new[lastScan+forward:scan-back]...)
		s.entry(forward, scan-back-(lastScan+forward), pos-back-(lastPos+forward))
		lastScan, lastPos, lastOffset = scan-back, pos-back, pos-scan
	}
	runs.close()
	return s
}

// index is a suffix array of old with, for each two-byte prefix, where its suffixes start in the
// array: the binary search then begins within one bucket, up to 16 probes (each a cache miss) fewer.
type index struct {
	old    []byte
	sa     []int32
	bucket []int32 // bucket[k]: the first suffix whose key is k or more
}

func newIndex(old []byte) *index {
	x := &index{old: old, sa: suffixArray(old), bucket: make([]int32, 1<<16+1)}
	for _, p := range x.sa {
		x.bucket[x.key(old[p:])+1]++
	}
	for i := 1; i < len(x.bucket); i++ {
		x.bucket[i] += x.bucket[i-1]
	}
	return x
}

// key is the first two bytes of a suffix, a one-byte suffix c counting as c followed by 0: keys
// grow along the suffix array, since c sorts before every c followed by a byte.
func (x *index) key(b []byte) int {
	if len(b) == 1 {
		return int(b[0]) << 8
	}
	return int(b[0])<<8 | int(b[1])
}

// longestMatch returns the position and length of the longest prefix of new found in old, preferring
// among equally long ones found near each other in the suffix array the position nearest want.
func (x *index) longestMatch(new []byte, want int) (pos, length int) {
	sa, old := x.sa, x.old
	if len(sa) == 0 || len(new) == 0 {
		return 0, 0
	}
	lo, hi := 0, len(sa)-1
	if len(new) >= 2 {
		k := x.key(new)
		// A suffix sharing new's first two bytes is in bucket k; otherwise the best is at its edges.
		lo, hi = max(int(x.bucket[k])-1, 0), min(int(x.bucket[k+1]), len(sa)-1)
	}
	for hi-lo >= 2 {
		mid := lo + (hi-lo)/2
		if bytes.Compare(old[sa[mid]:], new) < 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	i, length := lo, commonPrefix(old[sa[lo]:], new)
	if n := commonPrefix(old[sa[hi]:], new); n >= length {
		i, length = hi, n
	}
	pos = int(sa[i])
	if length <= seekGain {
		// Too short to start a copy, so where it is does not matter; and where new shares nothing
		// with old, such matches are at every byte (scripting 4 MB of random bytes against 4 MB of
		// others takes 3.6 s weighing their neighbours, 2.1 s not).
		return pos, length
	}
	prefix := new[:length]
	for _, step := range [2]int{-1, 1} {
		for j, k := i+step, 0; j >= 0 && j < len(sa) && k < nearby; j, k = j+step, k+1 {
			p := int(sa[j])
			if !bytes.HasPrefix(old[p:], prefix) {
				break
			}
			if distance(p, want) < distance(pos, want) {
				pos = p
			}
		}
	}
	return pos, length
}

// agreement is what a byte adds to the worth of extending a copy over it. bsdiff charges -1 for a
// differing byte, extending while half the bytes agree; -2 (two thirds) leaves fewer differences to
// store and more literals, which zstd finds in old (patches 1.7% and 1.4% smaller).
func agreement(a, b byte) int {
	if a == b {
		return 1
	}
	return -2
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func distance(a, b int) int {
	if a > b {
		return a - b
	}
	return b - a
}
