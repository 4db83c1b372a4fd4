// Package version compares the version strings that apps and operating
// systems report ("1.10.0", "2.3.1-beta.2", "11", "9.1", "v4.0") the way a
// person reads them, without allocating: 1.10.0 > 1.9.2, 11 > 9.1, 1.0 == 1.0.0.
//
// Rules, in order:
//   - a leading "v" or "V" is ignored, and so is "+build" metadata;
//   - the release part is split at dots; missing trailing parts count as 0;
//   - within a part, runs of digits compare as numbers of any length and other
//     runs as text ("1.0b2" < "1.0b10"); a part that ends where the other goes
//     on with text is the newer ("1.0b2" < "1.0");
//   - a version with a pre-release ("-beta.1") sorts before the same version
//     without one, and pre-releases compare part by part as above.
package version

import (
	"fmt"
	"strings"
)

// MaxLen bounds what Valid accepts so that stored and compared strings stay small.
const MaxLen = 64

// Valid reports whether s is a version this package can compare
// meaningfully: at most MaxLen bytes of digits, letters and ".-+_", starting
// with a digit (after an optional "v"), shaped RELEASE[-PRERELEASE][+BUILD]
// where each of the three is dot-separated parts none of which is empty.
// Compare reads anything, but "1..4" or "1.0-" compare by accident of how
// they happen to split, so nothing that stores or matches a version
// accepts them.
func Valid(s string) error {
	if wellFormed(s) {
		return nil
	}
	return invalid(s)
}

// wellFormed is Valid's answer in one pass over s, without allocating: the
// check path calls Valid on every device's versions. invalid says why a
// version is not, and the two agree (FuzzValid).
func wellFormed(s string) bool {
	if s == "" || len(s) > MaxLen {
		return false
	}
	t := trimV(s)
	if t == "" || !isDigit(t[0]) {
		return false
	}
	// Most versions are digits and dots ("2.14.1", "15"): settle those in
	// a tight loop, and hand the rest on where it stopped.
	n, i := 0, 0 // n is the length of the current dot-separated part
	for ; i < len(t); i++ {
		if c := t[i]; isDigit(c) {
			n++
		} else if c == '.' && n > 0 {
			n = 0
		} else {
			break
		}
	}
	if i == len(t) {
		return n > 0
	}
	const release, pre, build = 0, 1, 2
	part := release // where we are
	for ; i < len(t); i++ {
		switch c := t[i]; {
		case c == '.':
			if n == 0 {
				return false
			}
			n = 0
		case c == '-' && part == release:
			if n == 0 {
				return false
			}
			part, n = pre, 0
		case c == '+':
			if part == build || n == 0 {
				return false
			}
			part, n = build, 0
		case isDigit(c) || isLetter(c) || c == '_' || c == '-':
			n++
		default:
			return false
		}
	}
	return n > 0
}

// invalid says why s is not a version; nil if it is one.
func invalid(s string) error {
	if s == "" {
		return fmt.Errorf("version is empty")
	}
	if len(s) > MaxLen {
		return fmt.Errorf("version %.20q… is longer than %d characters", s, MaxLen)
	}
	t := trimV(s)
	if t == "" || !isDigit(t[0]) {
		return fmt.Errorf("version %q must start with a digit, like 1.2.3", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && !isLetter(c) && c != '.' && c != '-' && c != '+' && c != '_' {
			return fmt.Errorf("version %q has %q; use digits, letters and . - + _", s, c)
		}
	}
	rest, build, hasBuild := strings.Cut(t, "+")
	release, pre, hasPre := strings.Cut(rest, "-")
	if problem := dotted(release); problem != "" {
		return fmt.Errorf("version %q %s; write it like 1.2.3", s, problem)
	}
	if hasPre {
		if pre == "" {
			return fmt.Errorf("version %q has nothing after \"-\"; write a pre-release like 1.0-beta.1, or drop the -", s)
		}
		if problem := dotted(pre); problem != "" {
			return fmt.Errorf("version %q: its pre-release %q %s", s, pre, problem)
		}
	}
	if hasBuild {
		switch {
		case build == "":
			return fmt.Errorf("version %q has nothing after \"+\"; write build metadata like 1.0+build.5, or drop the +", s)
		case strings.IndexByte(build, '+') >= 0:
			return fmt.Errorf("version %q has more than one \"+\"; only one may start the build metadata", s)
		}
		if problem := dotted(build); problem != "" {
			return fmt.Errorf("version %q: its build metadata %q %s", s, build, problem)
		}
	}
	return nil
}

// dotted says what is wrong with s as dot-separated non-empty parts, or
// returns "".
func dotted(s string) string {
	switch {
	case strings.HasPrefix(s, "."):
		return "starts with a dot"
	case strings.HasSuffix(s, "."):
		return "ends with a dot"
	case strings.Contains(s, ".."):
		return "has an empty part between two dots"
	}
	return ""
}

// Compare returns -1, 0 or +1 as a is older than, the same as, or newer than b.
func Compare(a, b string) int {
	a, b = stripBuild(trimV(a)), stripBuild(trimV(b))
	ar, ap := splitPre(a)
	br, bp := splitPre(b)
	if c := compareParts(ar, br); c != 0 {
		return c
	}
	switch {
	case ap == "" && bp == "":
		return 0
	case ap == "":
		return 1
	case bp == "":
		return -1
	}
	return compareParts(ap, bp)
}

func compareParts(a, b string) int {
	for a != "" || b != "" {
		var pa, pb string
		pa, a = nextPart(a)
		pb, b = nextPart(b)
		if c := comparePart(pa, pb); c != 0 {
			return c
		}
	}
	return 0
}

// comparePart compares one dot-separated part; an absent part is "0". Runs of
// digits compare as numbers and runs of other characters as text, so
// "0b2" < "0b10"; where one part ends and the other goes on with text, the one
// that ended is newer ("0" > "0b2", as a final release follows its betas).
func comparePart(a, b string) int {
	if a == "" {
		a = "0"
	}
	if b == "" {
		b = "0"
	}
	for {
		var na, nb string
		na, a = leadingDigits(a)
		nb, b = leadingDigits(b)
		if c := compareNumeric(na, nb); c != 0 {
			return c
		}
		switch {
		case a == "" && b == "":
			return 0
		case a == "":
			return 1
		case b == "":
			return -1
		}
		var ta, tb string
		ta, a = leadingText(a)
		tb, b = leadingText(b)
		if ta != tb {
			if ta < tb {
				return -1
			}
			return 1
		}
	}
}

// compareNumeric compares two digit strings as numbers of any length.
func compareNumeric(a, b string) int {
	a, b = trimZeros(a), trimZeros(b)
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func nextPart(s string) (part, rest string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func leadingDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func leadingText(s string) (text, rest string) {
	i := 0
	for i < len(s) && !isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func splitPre(s string) (release, pre string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func stripBuild(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '+' {
			return s[:i]
		}
	}
	return s
}

func trimV(s string) string {
	if len(s) > 0 && (s[0] == 'v' || s[0] == 'V') {
		return s[1:]
	}
	return s
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	if s == "" {
		return "0"
	}
	return s
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// Range is a closed interval of versions; an empty bound is open on that side.
type Range struct {
	Min string `json:"min,omitempty"`
	Max string `json:"max,omitempty"`
}

// Contains reports whether v lies within r.
func (r Range) Contains(v string) bool { return r.Keys().Contains(NewKey(v)) }

// Keys prepares r for repeated use.
func (r Range) Keys() KeyRange {
	var k KeyRange
	if r.Min != "" {
		k.min, k.hasMin = NewKey(r.Min), true
	}
	if r.Max != "" {
		k.max, k.hasMax = NewKey(r.Max), true
	}
	return k
}

// KeyRange is a Range prepared for repeated comparison.
type KeyRange struct {
	min, max       Key
	hasMin, hasMax bool
}

// Contains reports whether v lies within r.
func (r KeyRange) Contains(v Key) bool {
	return (!r.hasMin || CompareKeys(v, r.min) >= 0) && (!r.hasMax || CompareKeys(v, r.max) <= 0)
}

// Validate checks both bounds and their order.
func (r Range) Validate() error {
	if r.Min == "" && r.Max == "" {
		return fmt.Errorf("version range needs a min, a max or both")
	}
	for _, v := range []string{r.Min, r.Max} {
		if v == "" {
			continue
		}
		if err := Valid(v); err != nil {
			return err
		}
	}
	if r.Min != "" && r.Max != "" && Compare(r.Min, r.Max) > 0 {
		return fmt.Errorf("version range %s..%s is empty: min is newer than max", r.Min, r.Max)
	}
	return nil
}

// String renders r as the CLI accepts it: "1.0.0..1.9.9", "1.0.0..", "..2.0".
func (r Range) String() string { return r.Min + ".." + r.Max }

// ParseRange parses the String form.
func ParseRange(s string) (Range, error) {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '.' && s[i+1] == '.' {
			r := Range{Min: s[:i], Max: s[i+2:]}
			return r, r.Validate()
		}
	}
	return Range{}, fmt.Errorf("version range %q: write it as MIN..MAX, MIN.. or ..MAX", s)
}
