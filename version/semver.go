package version

import (
	"fmt"
	"strings"
)

// Semver is a strictly parsed Semantic Versioning 2.0.0 version. Unlike
// Compare, which reads anything a person would call a version, the SEMVER_*
// rule operators follow the specification to the letter, as Unleash does:
// "v2.0.0" and "1.2" are not semantic versions.
type Semver struct {
	major, minor, patch uint64
	pre                 string // dot-separated identifiers, "" for a release
}

// ParseSemver parses MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]. It does not
// allocate, so the check path can parse what a device sends; ValidSemver
// says what is wrong with a string it refuses.
func ParseSemver(s string) (Semver, bool) {
	v, problem := parseSemver(s)
	return v, problem == ""
}

// ValidSemver reports why s is not a semantic version, or nil if it is one.
func ValidSemver(s string) error {
	if _, problem := parseSemver(s); problem != "" {
		return fmt.Errorf("%q is not a semantic version like 1.2.3 or 2.0.0-rc.1: %s", s, problem)
	}
	return nil
}

// parseSemver returns the version, or what is wrong with s as a constant,
// so that refusing a device's value costs no allocation.
func parseSemver(s string) (Semver, string) {
	var v Semver
	rest, build, hasBuild := strings.Cut(s, "+")
	if hasBuild {
		// Build metadata has no say in precedence, but a version that
		// carries malformed metadata is not a semantic version at all.
		if problem := identifiers(build, buildMeta); problem != "" {
			return v, problem
		}
	}
	core, pre, hasPre := strings.Cut(rest, "-")
	for i, dst := range [3]*uint64{&v.major, &v.minor, &v.patch} {
		p, more, dot := strings.Cut(core, ".")
		if dot != (i < 2) {
			return v, "it needs exactly three numbers, MAJOR.MINOR.PATCH"
		}
		var problem string
		if *dst, problem = coreNumber(p); problem != "" {
			return v, problem
		}
		core = more
	}
	if hasPre {
		if problem := identifiers(pre, preRelease); problem != "" {
			return v, problem
		}
	}
	v.pre = pre
	return v, ""
}

// coreNumber parses MAJOR, MINOR or PATCH: digits without a leading zero,
// small enough for a uint64. Nothing real comes near that; a bigger number
// is refused rather than silently wrapped.
func coreNumber(p string) (uint64, string) {
	if p == "" {
		return 0, "MAJOR, MINOR and PATCH must each be a number"
	}
	if !numeric(p) {
		return 0, "MAJOR, MINOR and PATCH must be digits only"
	}
	if len(p) > 1 && p[0] == '0' {
		return 0, "MAJOR, MINOR and PATCH must not have leading zeros"
	}
	var n uint64
	for i := 0; i < len(p); i++ {
		d := uint64(p[i] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, "MAJOR, MINOR and PATCH must each be at most 18446744073709551615"
		}
		n = n*10 + d
	}
	return n, ""
}

// identifierRules are the messages (constants, so that refusing costs no
// allocation) and the one difference between pre-release and build
// identifiers.
type identifierRules struct {
	empty, emptyID, chars string
	pre                   bool
}

var (
	preRelease = identifierRules{"pre-release must not be empty", "pre-release must not have an empty identifier between dots",
		"pre-release may hold only ASCII letters, digits, hyphens and dots", true}
	buildMeta = identifierRules{"build metadata must not be empty", "build metadata must not have an empty identifier between dots",
		"build metadata may hold only ASCII letters, digits, hyphens and dots", false}
)

// identifiers checks dot-separated identifiers of [0-9A-Za-z-], none empty;
// pre-release identifiers that are numeric must not have leading zeros.
func identifiers(s string, rules identifierRules) string {
	if s == "" {
		return rules.empty
	}
	for rest := s; ; {
		id, more, dot := strings.Cut(rest, ".")
		if id == "" {
			return rules.emptyID
		}
		for i := 0; i < len(id); i++ {
			if c := id[i]; !isDigit(c) && !isLetter(c) && c != '-' {
				return rules.chars
			}
		}
		if rules.pre && len(id) > 1 && id[0] == '0' && numeric(id) {
			return "numeric pre-release identifiers must not have leading zeros"
		}
		if !dot {
			return ""
		}
		rest = more
	}
}

func numeric(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
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

// compareIdentifier: numeric identifiers compare as numbers of any length
// and sort before alphanumeric ones, which compare in ASCII order. Numeric
// identifiers have no leading zeros, so the longer is the larger.
func compareIdentifier(a, b string) int {
	aNum, bNum := numeric(a), numeric(b)
	switch {
	case aNum && bNum:
		if len(a) != len(b) {
			if len(a) < len(b) {
				return -1
			}
			return 1
		}
	case aNum:
		return -1
	case bNum:
		return 1
	}
	return strings.Compare(a, b)
}
