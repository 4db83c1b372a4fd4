package version

import "strings"

// Semver is a strictly parsed Semantic Versioning 2.0.0 version. Unlike
// Compare, which reads anything a person would call a version, the SEMVER_*
// rule operators follow the specification to the letter, as Unleash does:
// "v2.0.0" and "1.2" are not semantic versions.
type Semver struct {
	major, minor, patch uint64
	pre                 string // dot-separated identifiers, "" for a release
}

// ParseSemver parses MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD].
func ParseSemver(s string) (Semver, bool) {
	var v Semver
	s = stripBuild(s)
	core, pre := splitPre(s)
	hasPre := len(core) < len(s)
	var ok bool
	for i, dst := range [3]*uint64{&v.major, &v.minor, &v.patch} {
		dot := strings.IndexByte(core, '.')
		if (dot < 0) != (i == 2) {
			return v, false // fewer or more than three numbers
		}
		p := core
		if dot >= 0 {
			p, core = core[:dot], core[dot+1:]
		}
		if *dst, ok = semverNumber(p); !ok {
			return v, false
		}
	}
	if hasPre {
		for rest := pre; ; {
			id := rest
			dot := strings.IndexByte(rest, '.')
			if dot >= 0 {
				id, rest = rest[:dot], rest[dot+1:]
			}
			if !validIdentifier(id) {
				return v, false
			}
			if dot < 0 {
				break
			}
		}
	}
	v.pre = pre
	return v, true
}

// semverNumber parses a numeric identifier: digits, no leading zero.
func semverNumber(p string) (uint64, bool) {
	if p == "" || len(p) > 1 && p[0] == '0' || len(p) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(p); i++ {
		if !isDigit(p[i]) {
			return 0, false
		}
		n = n*10 + uint64(p[i]-'0')
	}
	return n, true
}

func validIdentifier(id string) bool {
	if id == "" {
		return false
	}
	numeric := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !isDigit(c) {
			numeric = false
			if !isLetter(c) && c != '-' {
				return false
			}
		}
	}
	return !numeric || len(id) == 1 || id[0] != '0'
}

// CompareSemver orders a and b by semantic version precedence.
func CompareSemver(a, b Semver) int {
	for _, p := range [][2]uint64{{a.major, b.major}, {a.minor, b.minor}, {a.patch, b.patch}} {
		switch {
		case p[0] < p[1]:
			return -1
		case p[0] > p[1]:
			return 1
		}
	}
	switch {
	case a.pre == b.pre:
		return 0
	case a.pre == "":
		return 1
	case b.pre == "":
		return -1
	}
	x, y := a.pre, b.pre
	for x != "" && y != "" {
		var ix, iy string
		ix, x = nextPart(x)
		iy, y = nextPart(y)
		if c := compareIdentifier(ix, iy); c != 0 {
			return c
		}
	}
	// A larger set of identifiers has higher precedence when all before are equal.
	switch {
	case x == "" && y == "":
		return 0
	case x == "":
		return -1
	}
	return 1
}

// compareIdentifier: numeric identifiers compare as numbers and sort
// before alphanumeric ones, which compare in ASCII order.
func compareIdentifier(a, b string) int {
	an, aNum := semverNumber(a)
	bn, bNum := semverNumber(b)
	switch {
	case aNum && bNum:
		switch {
		case an < bn:
			return -1
		case an > bn:
			return 1
		}
		return 0
	case aNum:
		return -1
	case bNum:
		return 1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
