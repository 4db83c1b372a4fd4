package version

// Key is a version prepared for repeated comparison. Most versions are a few
// small numbers ("2.14.1", "11"); those pack into one integer and compare in
// a single instruction. Anything else keeps its text and compares by Compare.
type Key struct {
	raw    string
	packed uint64
	simple bool
}

// NewKey prepares s for comparison.
func NewKey(s string) Key {
	k := Key{raw: s}
	k.packed, k.simple = pack(s)
	return k
}

// String returns the version as given.
func (k Key) String() string { return k.raw }

// CompareKeys orders keys exactly as Compare orders their strings.
func CompareKeys(a, b Key) int {
	if a.simple && b.simple {
		switch {
		case a.packed < b.packed:
			return -1
		case a.packed > b.packed:
			return 1
		}
		return 0
	}
	return Compare(a.raw, b.raw)
}

// pack encodes up to four dot-separated numbers below 65536 into 16 bits
// each, most significant first; missing parts are zero, as Compare treats
// them. A leading "v" and "+build" metadata are ignored, as in Compare.
func pack(s string) (uint64, bool) {
	s = stripBuild(trimV(s))
	if s == "" {
		return 0, false
	}
	var packed uint64
	parts := 0
	for s != "" {
		var p string
		p, s = nextPart(s)
		if p == "" || parts == 4 {
			return 0, false
		}
		var n uint64
		for i := 0; i < len(p); i++ {
			if !isDigit(p[i]) {
				return 0, false
			}
			n = n*10 + uint64(p[i]-'0')
			if n > 0xffff {
				return 0, false
			}
		}
		packed |= n << (48 - 16*parts)
		parts++
	}
	return packed, true
}
