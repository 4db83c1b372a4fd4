package gray

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mds-dev/mds"
)

// List is a compiled whitelist. Exact entries live in an open-addressing
// table of their 64-bit hashes: membership is one hash and, on average, one
// or two probes, and a million entries take 16 MiB instead of the ~100 MiB
// a map of strings would. Two IDs colliding in 64 bits is a chance of about
// one in 10^13 per lookup at that size; the cost would be one extra device
// in a gray release.
type List struct {
	ID       int64
	AppID    int64
	Name     string
	Kind     mds.WhitelistKind
	Version  int64
	slots    []uint64 // 0 is empty; a hash of 0 is stored as 1
	n        int
	patterns []*regexp.Regexp
}

// ListBuilder collects entries for a List.
type ListBuilder struct {
	l *List
}

// NewListBuilder starts a list sized for about expected entries.
func NewListBuilder(w *mds.Whitelist, expected int) *ListBuilder {
	size := 16
	for size < 2*expected {
		size <<= 1
	}
	return &ListBuilder{l: &List{ID: w.ID, AppID: w.AppID, Name: w.Name, Kind: w.Kind, Version: w.Version, slots: make([]uint64, size)}}
}

// Add adds one entry: an exact ID, or "re:" and a regular expression.
func (b *ListBuilder) Add(entry string) error {
	if expr, ok := strings.CutPrefix(entry, mds.PatternPrefix); ok {
		re, err := regexp.Compile(expr)
		if err != nil {
			return fmt.Errorf("whitelist %d: entry %q: %w", b.l.ID, entry, err)
		}
		b.l.patterns = append(b.l.patterns, re)
		return nil
	}
	if 2*(b.l.n+1) > len(b.l.slots) {
		b.grow()
	}
	if insert(b.l.slots, Hash(entry)) {
		b.l.n++
	}
	return nil
}

func (b *ListBuilder) grow() {
	old := b.l.slots
	b.l.slots = make([]uint64, 2*len(old))
	for _, h := range old {
		if h != 0 {
			insert(b.l.slots, h)
		}
	}
}

// Build returns the list; the builder must not be used afterwards.
func (b *ListBuilder) Build() *List { return b.l }

func insert(slots []uint64, h uint64) bool {
	if h == 0 {
		h = 1
	}
	mask := uint64(len(slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch slots[i] {
		case 0:
			slots[i] = h
			return true
		case h:
			return false
		}
	}
}

// Len returns the number of distinct exact entries.
func (l *List) Len() int { return l.n }

// Contains reports whether id, whose Hash is h, is listed.
func (l *List) Contains(id string, h uint64) bool {
	if id == "" {
		return false
	}
	if h == 0 {
		h = 1
	}
	mask := uint64(len(l.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch l.slots[i] {
		case 0:
			for _, re := range l.patterns {
				if re.MatchString(id) {
					return true
				}
			}
			return false
		case h:
			return true
		}
	}
}
