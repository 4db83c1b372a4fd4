package mds

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mds-dev/mds/version"
)

// Rule is one condition on what a device reports. Values hold the operand:
// a list for IN, NOT_IN and the STR_ operators (any may match), one value
// for comparisons, two (min, max) for ranges, CIDR blocks for IN_CIDR.
type Rule struct {
	Field           string   `json:"field"`
	Operator        Operator `json:"operator"`
	Values          []string `json:"values"`
	Inverted        bool     `json:"inverted,omitempty"`
	CaseInsensitive bool     `json:"case_insensitive,omitempty"`
}

// Operator is how a rule compares. Names follow Unleash where it has the
// operator, so rules mean the same in both.
type Operator string

const (
	OpIn            Operator = "IN"
	OpNotIn         Operator = "NOT_IN"
	OpStrContains   Operator = "STR_CONTAINS"
	OpStrStartsWith Operator = "STR_STARTS_WITH"
	OpStrEndsWith   Operator = "STR_ENDS_WITH"
	OpRegex         Operator = "REGEX"
	OpNumEq         Operator = "NUM_EQ"
	OpNumGt         Operator = "NUM_GT"
	OpNumGte        Operator = "NUM_GTE"
	OpNumLt         Operator = "NUM_LT"
	OpNumLte        Operator = "NUM_LTE"
	OpNumRange      Operator = "NUM_RANGE"
	OpVersionEq     Operator = "VERSION_EQ"
	OpVersionGt     Operator = "VERSION_GT"
	OpVersionGte    Operator = "VERSION_GTE"
	OpVersionLt     Operator = "VERSION_LT"
	OpVersionLte    Operator = "VERSION_LTE"
	OpVersionRange  Operator = "VERSION_RANGE"
	OpSemverEq      Operator = "SEMVER_EQ"
	OpSemverGt      Operator = "SEMVER_GT"
	OpSemverGte     Operator = "SEMVER_GTE"
	OpSemverLt      Operator = "SEMVER_LT"
	OpSemverLte     Operator = "SEMVER_LTE"
	OpDateAfter     Operator = "DATE_AFTER"
	OpDateBefore    Operator = "DATE_BEFORE"
	OpInCIDR        Operator = "IN_CIDR"

	// OpCIDR is the name mds gave IN_CIDR before Unleash had the operator.
	// It is still read, and Validate rewrites it to OpInCIDR, so that a
	// rule has one spelling however it was written.
	OpCIDR Operator = "CIDR"
)

// Operators lists the operators a rule may use, in their canonical
// spelling, for validation and documentation.
var Operators = []Operator{OpIn, OpNotIn, OpStrContains, OpStrStartsWith, OpStrEndsWith, OpRegex,
	OpNumEq, OpNumGt, OpNumGte, OpNumLt, OpNumLte, OpNumRange,
	OpVersionEq, OpVersionGt, OpVersionGte, OpVersionLt, OpVersionLte, OpVersionRange,
	OpSemverEq, OpSemverGt, OpSemverGte, OpSemverLt, OpSemverLte, OpDateAfter, OpDateBefore, OpInCIDR}

// Fields a rule may read. Custom attributes are "attr.<name>".
const (
	FieldRegion     = "region"
	FieldCity       = "city"
	FieldModel      = "model"
	FieldBrand      = "brand"
	FieldOSVersion  = "os_version"
	FieldAppVersion = "app_version"
	FieldBuild      = "build"
	FieldNetwork    = "network"
	FieldChannel    = "channel"
	FieldLanguage   = "language"
	FieldUserID     = "user_id"
	FieldDeviceID   = "device_id"
	FieldPlatform   = "platform"
	FieldIP         = "ip"    // the address the check came from
	FieldNow        = "now"   // the time of the check, for DATE_ operators
	AttrPrefix      = "attr." // + the attribute name the device sends
)

// Fields lists the built-in field names, for validation and documentation.
var Fields = []string{FieldRegion, FieldCity, FieldModel, FieldBrand, FieldOSVersion, FieldAppVersion, FieldBuild,
	FieldNetwork, FieldChannel, FieldLanguage, FieldUserID, FieldDeviceID, FieldPlatform, FieldIP, FieldNow}

var attrNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// Limits of a rule's operand.
const (
	MaxRuleValues = 10_000
	// MaxRuleValueLen bounds one value in bytes. A device's fields are at
	// most MaxDeviceField bytes, so only a regular expression has a use
	// for more, and this leaves it ample room.
	MaxRuleValueLen = 1024
)

// Validate checks a rule completely, so that a rule it accepts always
// compiles and means what it says: a known field and operator, the operand
// count the operator needs, and every value (numbers, versions, times, CIDR
// blocks, regular expressions, ranges whose min is not above their max).
// It normalises in place what has one obvious meaning: values are trimmed
// of surrounding white space (a value copied as " Shanghai" never matches
// otherwise), CIDR is spelt IN_CIDR, and case_insensitive is cleared on
// operators it does not affect. Values are copied before they are
// trimmed, so a slice the caller shares is never written to.
func (r *Rule) Validate() error {
	if name, ok := strings.CutPrefix(r.Field, AttrPrefix); ok {
		if !attrNamePattern.MatchString(name) {
			return Errorf(EINVALID, "attribute name %q must be 1-64 letters, digits or _ . : -", name)
		}
	} else if !knownField(r.Field) {
		return Errorf(EINVALID, "field %q is not one of %s, or attr.<name>", r.Field, strings.Join(Fields, ", "))
	}
	if len(r.Values) > MaxRuleValues {
		return Errorf(EINVALID, "%d values; at most %d", len(r.Values), MaxRuleValues)
	}
	if r.Operator == OpCIDR {
		r.Operator = OpInCIDR
	}
	want, ok := operandCount(r.Operator)
	if !ok {
		names := make([]string, len(Operators))
		for i, op := range Operators {
			names[i] = string(op)
		}
		return Errorf(EINVALID, "operator %q is not known; use one of %s", r.Operator, strings.Join(names, ", "))
	}
	switch {
	case want == -1 && len(r.Values) == 0 && r.Operator != OpIn && r.Operator != OpNotIn:
		// An empty IN matches nothing and an empty NOT_IN everything, as
		// in Unleash; the string and CIDR operators need something to test.
		return Errorf(EINVALID, "%s needs at least one value", r.Operator)
	case want > 0 && len(r.Values) != want:
		return Errorf(EINVALID, "%s needs exactly %d value(s), got %d", r.Operator, want, len(r.Values))
	}
	if !foldable(r.Operator) {
		r.CaseInsensitive = false
	}
	r.trimValues()
	bad := func(format string, args ...any) error {
		return Errorf(EINVALID, "%s %s: %s", r.Field, r.Operator, fmt.Sprintf(format, args...))
	}
	for i, v := range r.Values {
		if v == "" {
			return bad("value %d is empty or only white space; remove it or give a value", i+1)
		}
		if problem := textProblem(v, MaxRuleValueLen, false); problem != "" {
			return bad("value %d %s", i+1, problem)
		}
	}
	if r.Field == FieldNetwork && (r.Operator == OpIn || r.Operator == OpNotIn) {
		// Devices' network names are normalised, so the rule's are too: a
		// rule on "LTE" means the devices that say LTE.
		vals := append([]string(nil), r.Values...)
		for i, v := range vals {
			n := NormalizeNetwork(v)
			if n == NetworkUnknown && !strings.EqualFold(v, NetworkUnknown) {
				return bad("%q is not a network devices report; use wifi, 2g, 3g, 4g, 5g, ethernet or unknown", v)
			}
			vals[i] = n
		}
		r.Values = vals
	}
	vals := r.Values
	switch r.Operator {
	case OpRegex:
		if _, err := CompileRegex(vals[0], r.CaseInsensitive); err != nil {
			return bad("%q is not a valid regular expression (RE2 syntax): %v", vals[0], err)
		}
	case OpNumEq, OpNumGt, OpNumGte, OpNumLt, OpNumLte, OpNumRange:
		var nums [2]float64
		for i, v := range vals {
			n, ok := ParseNumber(v)
			if !ok {
				return bad("%q is not a number; write a plain decimal like 12, -3.5 or 1e6", v)
			}
			nums[i] = n
		}
		if r.Operator == OpNumRange && nums[0] > nums[1] {
			return bad("range %s..%s is empty: the min is above the max", vals[0], vals[1])
		}
	case OpVersionEq, OpVersionGt, OpVersionGte, OpVersionLt, OpVersionLte, OpVersionRange:
		for _, v := range vals {
			if err := version.Valid(v); err != nil {
				return bad("%v", err)
			}
		}
		if r.Operator == OpVersionRange && version.Compare(vals[0], vals[1]) > 0 {
			return bad("range %s..%s is empty: the min is newer than the max", vals[0], vals[1])
		}
	case OpSemverEq, OpSemverGt, OpSemverGte, OpSemverLt, OpSemverLte:
		if err := version.ValidSemver(vals[0]); err != nil {
			return bad("%v", err)
		}
	case OpDateAfter, OpDateBefore:
		if _, ok := ParseTime(vals[0]); !ok {
			return bad("%q is not an RFC 3339 time like 2026-12-01T00:00:00Z or 2026-12-01T08:00:00+08:00", vals[0])
		}
	case OpInCIDR:
		for _, v := range vals {
			if _, ok := ParseCIDR(v); !ok {
				return bad("%q is not a CIDR block like 10.0.0.0/8 or 2001:db8::/32, or an address", v)
			}
		}
	}
	return nil
}

// trimValues trims the values, copying them first if any changes.
func (r *Rule) trimValues() {
	for i, v := range r.Values {
		if t := strings.TrimSpace(v); t != v {
			vals := append([]string(nil), r.Values...)
			for j := i; j < len(vals); j++ {
				vals[j] = strings.TrimSpace(vals[j])
			}
			r.Values = vals
			return
		}
	}
}

func knownField(f string) bool {
	for _, k := range Fields {
		if f == k {
			return true
		}
	}
	return false
}

// operandCount says how many values an operator takes; -1 means one or more.
func operandCount(op Operator) (int, bool) {
	switch op {
	case OpIn, OpNotIn, OpStrContains, OpStrStartsWith, OpStrEndsWith, OpInCIDR:
		return -1, true
	case OpRegex, OpNumEq, OpNumGt, OpNumGte, OpNumLt, OpNumLte, OpVersionEq, OpVersionGt, OpVersionGte,
		OpVersionLt, OpVersionLte, OpSemverEq, OpSemverGt, OpSemverGte, OpSemverLt, OpSemverLte, OpDateAfter, OpDateBefore:
		return 1, true
	case OpNumRange, OpVersionRange:
		return 2, true
	}
	return 0, false
}

// foldable reports whether case_insensitive changes what op does.
func foldable(op Operator) bool {
	switch op {
	case OpIn, OpNotIn, OpStrContains, OpStrStartsWith, OpStrEndsWith, OpRegex:
		return true
	}
	return false
}

// ParseNumber parses a number as the NUM_ operators read one, in a rule
// and from a device alike: a plain decimal, that is an optional sign,
// digits, an optional fraction and an optional exponent ("12", "-3.5",
// "1e6"), and finite. strconv.ParseFloat alone would also take "inf",
// "NaN", "0x1p3" and "1_000", which no one means as a number to compare.
// It does not allocate for what it refuses, so a device that sends text
// where a number is expected costs the check path nothing.
func ParseNumber(s string) (float64, bool) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	if i = digits(s, i); i < 0 {
		return 0, false
	}
	if i < len(s) && s[i] == '.' {
		if i = digits(s, i+1); i < 0 {
			return 0, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i = digits(s, i); i < 0 {
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) { // out of range, like 1e999
		return 0, false
	}
	return f, true
}

// digits returns the index after the run of at least one digit at s[i:],
// or -1 if there is none.
func digits(s string, i int) int {
	j := i
	for j < len(s) && '0' <= s[j] && s[j] <= '9' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// ParseTime parses a time as the DATE_ operators read one, in a rule and
// from a device alike: RFC 3339, with an optional fraction of a second.
func ParseTime(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}

// ParseCIDR parses an IN_CIDR operand: a block ("10.0.0.0/8",
// "2001:db8::/32"), masked to its network, or a single address. IPv4
// blocks and addresses written as IPv4-mapped IPv6 are read as IPv4,
// because the address of a check is, and a mapped block would otherwise
// never match anything. Zones ("fe80::1%eth0") are refused: an address of a
// check never has one.
func ParseCIDR(s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// CompileRegex compiles a REGEX operand as the rule matches it: RE2
// syntax, unanchored, and case-insensitive when the rule is, by the (?i)
// flag that Unleash's case-insensitive regular expressions also set.
func CompileRegex(expr string, caseInsensitive bool) (*regexp.Regexp, error) {
	if caseInsensitive {
		expr = "(?i)" + expr
	}
	return regexp.Compile(expr)
}

// String renders r in the form ParseRule reads, the one the command line
// takes: "[not ]FIELD OPERATOR[/i] V1,V2,…", e.g. "os_version VERSION_GTE 12"
// or "not city IN/i Shanghai,Beijing". A rule whose values hold a comma,
// which that form cannot carry, renders as the API's JSON, which ParseRule
// reads too; so ParseRule(r.String()) gives back any valid r (an empty
// list of values comes back empty rather than nil).
func (r Rule) String() string {
	for _, v := range r.Values {
		if strings.Contains(v, ",") || v == "" || strings.TrimSpace(v) != v {
			var b strings.Builder
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false) // "<" reads better than "\u003c"
			if enc.Encode(r) != nil {
				break // a Rule always encodes
			}
			return strings.TrimSuffix(b.String(), "\n")
		}
	}
	return r.text(r.Values, "")
}

// Summary renders r as String does when it has at most max values, and
// otherwise its first max values and how many there are: for people
// reading an explanation, not for parsing back.
func (r Rule) Summary(max int) string {
	if len(r.Values) <= max {
		return r.String()
	}
	return r.text(r.Values[:max], fmt.Sprintf(",… (%d values)", len(r.Values)))
}

func (r Rule) text(vals []string, tail string) string {
	var b strings.Builder
	if r.Inverted {
		b.WriteString("not ")
	}
	b.WriteString(r.Field)
	b.WriteByte(' ')
	b.WriteString(string(r.Operator))
	if r.CaseInsensitive {
		b.WriteString("/i")
	}
	if len(vals) > 0 {
		b.WriteByte(' ')
		b.WriteString(strings.Join(vals, ","))
	}
	b.WriteString(tail)
	return b.String()
}

// ParseRule reads a rule as people write it on a command line:
//
//	[not ]FIELD OPERATOR[/i] [VALUE[,VALUE…]]
//
// e.g. "os_version VERSION_GTE 12", "city IN Shanghai, New York",
// "not model STR_STARTS_WITH/i sm-". "/i" compares case-insensitively, the
// operator may be written in lower case, and values are trimmed. A text
// that starts with "{" is read as the API's JSON instead, for values that
// contain commas; a misspelt JSON key is an error rather than a rule that
// silently lacks it. The rule is validated, and so normalised.
func ParseRule(text string) (Rule, error) {
	var r Rule
	s := strings.TrimSpace(text)
	if strings.HasPrefix(s, "{") {
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return Rule{}, Errorf(EINVALID, "rule %s: %v", s, err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return Rule{}, Errorf(EINVALID, "rule %s: text after the JSON object", s)
		}
	} else {
		if rest, ok := strings.CutPrefix(s, "not "); ok {
			r.Inverted, s = true, strings.TrimSpace(rest)
		}
		parts := strings.SplitN(s, " ", 3)
		if len(parts) < 2 {
			return Rule{}, Errorf(EINVALID, "rule %q: write FIELD OPERATOR VALUES, e.g. \"os_version VERSION_GTE 12\"", text)
		}
		r.Field = parts[0]
		op, fold := strings.CutSuffix(parts[1], "/i")
		r.Operator, r.CaseInsensitive = Operator(strings.ToUpper(op)), fold
		r.Values = []string{}
		if len(parts) == 3 && strings.TrimSpace(parts[2]) != "" {
			for v := range strings.SplitSeq(parts[2], ",") {
				r.Values = append(r.Values, strings.TrimSpace(v))
			}
		}
	}
	if err := r.Validate(); err != nil {
		return Rule{}, Errorf(EINVALID, "rule %q: %s", strings.TrimSpace(text), ErrorMessage(err))
	}
	return r, nil
}
