// Package gray is the targeting engine every kind of delivery shares: it
// compiles rules, whitelists, sticky percentages, ramps and capped windows
// into a form that decides, for one device, in well under a microsecond and
// without allocating. It is pure: time comes in with the input, and the only
// state it touches, window admissions, goes through the Admitter it is given.
package gray

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/version"
)

// Input is what a decision is made on: the device's report, where the check
// came from and when. It caches derived values across the rules and tasks
// of one check, so pass it by pointer and reuse it.
type Input struct {
	Device *mds.Device
	// IP is where the check came from, IPv4 as IPv4: NewInput unmaps an
	// IPv4-mapped IPv6 address, so that "ip IN 1.2.3.4" and IN_CIDR read
	// one address however the connection carried it. Set it directly and
	// it must already be unmapped.
	IP  netip.Addr
	Now time.Time

	// Results of shared rules (see Catalog): bit i of known says rule i
	// of catalog was evaluated, bit i of result what it gave.
	catalog       *Catalog
	known, result uint64

	// Whitelist answers, by list, for the lists several tasks share.
	lists  [4]listAnswer
	nLists int

	// Derived once per check, however many tasks and rules ask.
	appVersion, osVersion      version.Key
	appVersionParsed, osParsed bool
	deviceHash, userHash       uint64
	deviceHashed, userHashed   bool

	// The last rollout bucket worked out: tasks that share a salt (an
	// app's configuration tasks, mds.ConfigCohort) share the bucket.
	bucketSalt, bucketKey string
	bucketOf              int
	bucketKnown           bool
}

// bucket is Bucket(salt, key), worked out once for a run of tasks of one
// salt.
func (in *Input) bucket(salt, key string) int {
	if !in.bucketKnown || in.bucketSalt != salt || in.bucketKey != key {
		in.bucketSalt, in.bucketKey, in.bucketOf, in.bucketKnown = salt, key, Bucket(salt, key), true
	}
	return in.bucketOf
}

// NewInput prepares an input for d. Every caller, the check and explain
// and preview alike, comes through here, so the address is normalised in
// this one place.
func NewInput(d *mds.Device, ip netip.Addr, now time.Time) Input {
	return Input{Device: d, IP: ip.Unmap(), Now: now}
}

// AppVersion returns the device's app version prepared for comparison.
func (in *Input) AppVersion() version.Key {
	if !in.appVersionParsed {
		in.appVersion = version.NewKey(in.Device.AppVersion)
		in.appVersionParsed = true
	}
	return in.appVersion
}

// osVersionKey returns the device's OS version prepared for comparison,
// and whether it is a version at all.
func (in *Input) osVersionKey() (version.Key, bool) {
	if !in.osParsed {
		in.osParsed = true
		if version.Valid(in.Device.OSVersion) == nil {
			in.osVersion = version.NewKey(in.Device.OSVersion)
		}
	}
	return in.osVersion, in.osVersion != version.Key{}
}

type listAnswer struct {
	list *List
	hit  bool
}

// listed reports whether the device (or its user) is on l, and the ID
// looked up. Answers are remembered for a few lists, so that tasks sharing
// a whitelist, and its regular expressions, cost one lookup per check.
func (in *Input) listed(l *List) (string, bool) {
	id, h := in.idHash(l.Kind)
	for i := range in.nLists {
		if in.lists[i].list == l {
			return id, in.lists[i].hit
		}
	}
	hit := l.Contains(id, h)
	if in.nLists < len(in.lists) {
		in.lists[in.nLists] = listAnswer{l, hit}
		in.nLists++
	}
	return id, hit
}

// idHash returns the Hash of the device or user ID a whitelist of kind
// lists, computed once per check.
func (in *Input) idHash(kind mds.WhitelistKind) (string, uint64) {
	if kind == mds.WhitelistUsers {
		if !in.userHashed {
			in.userHash, in.userHashed = Hash(in.Device.UserID), true
		}
		return in.Device.UserID, in.userHash
	}
	if !in.deviceHashed {
		in.deviceHash, in.deviceHashed = Hash(in.Device.DeviceID), true
	}
	return in.Device.DeviceID, in.deviceHash
}

type field uint8

const (
	fRegion field = iota
	fCity
	fModel
	fBrand
	fOSVersion
	fAppVersion
	fBuild
	fNetwork
	fChannel
	fLanguage
	fUserID
	fDeviceID
	fPlatform
	fIP
	fNow
	fAttr
)

var fieldIDs = map[string]field{
	mds.FieldRegion: fRegion, mds.FieldCity: fCity, mds.FieldModel: fModel, mds.FieldBrand: fBrand,
	mds.FieldOSVersion: fOSVersion, mds.FieldAppVersion: fAppVersion, mds.FieldBuild: fBuild,
	mds.FieldNetwork: fNetwork, mds.FieldChannel: fChannel, mds.FieldLanguage: fLanguage,
	mds.FieldUserID: fUserID, mds.FieldDeviceID: fDeviceID, mds.FieldPlatform: fPlatform,
	mds.FieldIP: fIP, mds.FieldNow: fNow,
}

// value returns the text of field f for the input and whether the device
// reported it. ip and now are rendered only when a string operator asks.
func (r *Rule) value(in *Input) (string, bool) {
	d := in.Device
	var v string
	switch r.field {
	case fRegion:
		v = d.Region
	case fCity:
		v = d.City
	case fModel:
		v = d.Model
	case fBrand:
		v = d.Brand
	case fOSVersion:
		v = d.OSVersion
	case fAppVersion:
		v = d.AppVersion
	case fBuild:
		if d.Build == 0 {
			return "", false
		}
		return strconv.FormatInt(d.Build, 10), true
	case fNetwork:
		v = d.Network
	case fChannel:
		v = d.Channel
	case fLanguage:
		v = d.Language
	case fUserID:
		v = d.UserID
	case fDeviceID:
		v = d.DeviceID
	case fPlatform:
		v = string(d.Platform)
	case fIP:
		if !in.IP.IsValid() {
			return "", false
		}
		return in.IP.String(), true
	case fNow:
		return in.Now.UTC().Format(time.RFC3339Nano), true
	case fAttr:
		a, ok := d.Attributes[r.attr]
		return a, ok
	}
	return v, v != ""
}

// Rule is a compiled mds.Rule.
type Rule struct {
	src      mds.Rule // validated, and so normalised
	field    field
	attr     string
	fold     bool
	inverted bool
	kind     matcher
	memo     int8     // bit of Input.known and result this rule's answer is kept in; -1 for none
	catalog  *Catalog // whose memo bits those are

	strs     []string // the values; lower-cased when fold
	lowered  [][]byte // with fold, strs as bytes, for the STR_ operators
	set      map[string]struct{}
	nums     [2]float64
	versions [2]version.Key
	semver   version.Semver
	re       *regexp.Regexp
	date     time.Time
	prefixes []netip.Prefix
}

// smallSet is where IN switches from a scan to a map. Both compare the
// same strings, so the switch changes the speed and nothing else.
const smallSet = 8

// explainValues is how many of a rule's values an explanation shows.
const explainValues = 5

// CompileRule prepares r for matching. It validates r first, and all
// checking of values happens there, so that a rule saved after validation
// alone is a rule that compiles; errors say which value is wrong and why.
func CompileRule(src mds.Rule) (*Rule, error) {
	if err := src.Validate(); err != nil {
		return nil, err
	}
	r, err := convert(src)
	if err != nil {
		// Validate and convert parse with the same functions; one
		// accepting what the other refuses is a bug, not bad input.
		return nil, fmt.Errorf("gray: bug: rule %s passed validation but does not compile: %w", src, err)
	}
	return r, nil
}

// convert turns a validated rule into its compiled form.
func convert(src mds.Rule) (*Rule, error) {
	r := &Rule{src: src, fold: src.CaseInsensitive, inverted: src.Inverted, memo: -1}
	if name, ok := strings.CutPrefix(src.Field, mds.AttrPrefix); ok {
		r.field, r.attr = fAttr, name
	} else {
		r.field = fieldIDs[src.Field]
	}
	vals := src.Values
	switch src.Operator {
	case mds.OpIn, mds.OpNotIn:
		r.strs = r.operands(vals)
		if len(vals) > smallSet {
			r.set = make(map[string]struct{}, len(vals))
			for _, v := range r.strs {
				r.set[v] = struct{}{}
			}
		}
		r.kind = mIn
	case mds.OpStrContains, mds.OpStrStartsWith, mds.OpStrEndsWith:
		r.strs = r.operands(vals)
		if r.fold {
			for _, v := range r.strs {
				r.lowered = append(r.lowered, []byte(v))
			}
		}
		r.kind = mString
	case mds.OpRegex:
		re, err := mds.CompileRegex(vals[0], r.fold)
		if err != nil {
			return nil, err
		}
		r.re = re
		r.kind = mRegex
	case mds.OpNumEq, mds.OpNumGt, mds.OpNumGte, mds.OpNumLt, mds.OpNumLte, mds.OpNumRange:
		for i, v := range vals {
			n, ok := mds.ParseNumber(v)
			if !ok {
				return nil, fmt.Errorf("%q is not a number", v)
			}
			r.nums[i] = n
		}
		r.kind = mNum
	case mds.OpVersionEq, mds.OpVersionGt, mds.OpVersionGte, mds.OpVersionLt, mds.OpVersionLte, mds.OpVersionRange:
		for i, v := range vals {
			if err := version.Valid(v); err != nil {
				return nil, err
			}
			r.versions[i] = version.NewKey(v)
		}
		r.kind = mVersion
	case mds.OpSemverEq, mds.OpSemverGt, mds.OpSemverGte, mds.OpSemverLt, mds.OpSemverLte:
		sv, ok := version.ParseSemver(vals[0])
		if !ok {
			return nil, fmt.Errorf("%q is not a semantic version", vals[0])
		}
		r.semver = sv
		r.kind = mSemver
	case mds.OpDateAfter, mds.OpDateBefore:
		t, ok := mds.ParseTime(vals[0])
		if !ok {
			return nil, fmt.Errorf("%q is not an RFC 3339 time", vals[0])
		}
		r.date = t
		r.kind = mDate
	case mds.OpInCIDR:
		for _, v := range vals {
			p, ok := mds.ParseCIDR(v)
			if !ok {
				return nil, fmt.Errorf("%q is not a CIDR block or an address", v)
			}
			r.prefixes = append(r.prefixes, p)
		}
		r.kind = mCIDR
	default:
		return nil, fmt.Errorf("operator %q has no matcher", src.Operator)
	}
	return r, nil
}

// operands returns the values a string operator compares with: as given,
// or, when the rule folds case, lower-cased once here as Unleash does on
// both sides (toLowerCase). Lower-casing rather than case folding keeps
// lengths honest: "ẞ" lowers to "ß", which has another length in bytes,
// and the Kelvin sign lowers to an ASCII "k".
func (r *Rule) operands(vals []string) []string {
	if !r.fold {
		return vals
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = strings.ToLower(v)
	}
	return out
}

// Match reports whether the input satisfies the rule.
func (r *Rule) Match(in *Input) bool {
	if r.memo < 0 {
		return r.matches(in) != r.inverted
	}
	if in.catalog != r.catalog { // bits of another catalog mean other rules
		in.catalog, in.known, in.result = r.catalog, 0, 0
	}
	bit := uint64(1) << r.memo
	if in.known&bit != 0 {
		return in.result&bit != 0
	}
	ok := r.matches(in) != r.inverted
	in.known |= bit
	if ok {
		in.result |= bit
	}
	return ok
}

// matcher selects the comparison. A switch rather than a function value:
// escape analysis cannot see through an indirect call, and would move every
// check's Input to the heap.
type matcher uint8

const (
	mIn matcher = iota
	mString
	mRegex
	mNum
	mVersion
	mSemver
	mDate
	mCIDR
)

func (r *Rule) matches(in *Input) bool {
	switch r.kind {
	case mIn:
		return matchIn(r, in)
	case mString:
		return matchString(r, in)
	case mRegex:
		return matchRegex(r, in)
	case mNum:
		return matchNum(r, in)
	case mVersion:
		return matchVersion(r, in)
	case mSemver:
		return matchSemver(r, in)
	case mDate:
		return matchDate(r, in)
	}
	return matchCIDR(r, in)
}

// String renders the rule for people as the command line writes it,
// "os_version VERSION_GTE 12", with long value lists cut short.
func (r *Rule) String() string { return r.src.Summary(explainValues) }

func matchIn(r *Rule, in *Input) bool {
	v, ok := r.value(in)
	found := ok && r.contains(v)
	if r.src.Operator == mds.OpNotIn {
		return !found
	}
	return found
}

func (r *Rule) contains(v string) bool {
	if r.fold {
		var buf [mds.MaxDeviceField]byte
		lower := appendLower(buf[:0], v)
		if r.set != nil {
			_, ok := r.set[string(lower)] // the conversion does not allocate in a map index
			return ok
		}
		for _, s := range r.strs {
			if string(lower) == s { // nor in a comparison
				return true
			}
		}
		return false
	}
	if r.set != nil {
		_, ok := r.set[v]
		return ok
	}
	for _, s := range r.strs {
		if s == v {
			return true
		}
	}
	return false
}

// appendLower appends v lower-cased rune by rune, exactly as
// strings.ToLower lowers the operands (unicode.ToLower per rune, and
// U+FFFD for a byte that is not UTF-8), so the two compare byte for byte.
// Into a buffer on the caller's stack it allocates nothing unless the
// lowered text outgrows the buffer: a validated device's fields are at most
// MaxDeviceField bytes, so only non-ASCII text, whose lower case may take
// more bytes, ever does.
func appendLower(dst []byte, v string) []byte {
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(v[i:])
		dst = utf8.AppendRune(dst, unicode.ToLower(r))
		i += n
	}
	return dst
}

func matchString(r *Rule, in *Input) bool {
	v, ok := r.value(in)
	if !ok {
		return false
	}
	if r.fold {
		var buf [mds.MaxDeviceField]byte
		lower := appendLower(buf[:0], v)
		for _, s := range r.lowered {
			var hit bool
			switch r.src.Operator {
			case mds.OpStrContains:
				hit = bytes.Contains(lower, s)
			case mds.OpStrStartsWith:
				hit = bytes.HasPrefix(lower, s)
			case mds.OpStrEndsWith:
				hit = bytes.HasSuffix(lower, s)
			}
			if hit {
				return true
			}
		}
		return false
	}
	for _, s := range r.strs {
		var hit bool
		switch r.src.Operator {
		case mds.OpStrContains:
			hit = strings.Contains(v, s)
		case mds.OpStrStartsWith:
			hit = strings.HasPrefix(v, s)
		case mds.OpStrEndsWith:
			hit = strings.HasSuffix(v, s)
		}
		if hit {
			return true
		}
	}
	return false
}

func matchRegex(r *Rule, in *Input) bool {
	v, ok := r.value(in)
	return ok && r.re.MatchString(v)
}

func matchNum(r *Rule, in *Input) bool {
	var n float64
	if r.field == fBuild {
		if in.Device.Build == 0 {
			return false
		}
		n = float64(in.Device.Build)
	} else {
		v, ok := r.value(in)
		if !ok {
			return false
		}
		if n, ok = mds.ParseNumber(v); !ok {
			return false
		}
	}
	switch r.src.Operator {
	case mds.OpNumEq:
		return n == r.nums[0]
	case mds.OpNumGt:
		return n > r.nums[0]
	case mds.OpNumGte:
		return n >= r.nums[0]
	case mds.OpNumLt:
		return n < r.nums[0]
	case mds.OpNumLte:
		return n <= r.nums[0]
	}
	return r.nums[0] <= n && n <= r.nums[1] // NUM_RANGE
}

func matchVersion(r *Rule, in *Input) bool {
	var k version.Key
	switch r.field {
	case fAppVersion:
		k = in.AppVersion()
	case fOSVersion:
		var ok bool
		if k, ok = in.osVersionKey(); !ok {
			return false
		}
	default:
		v, ok := r.value(in)
		if !ok || version.Valid(v) != nil {
			return false
		}
		k = version.NewKey(v)
	}
	c := version.CompareKeys(k, r.versions[0])
	switch r.src.Operator {
	case mds.OpVersionEq:
		return c == 0
	case mds.OpVersionGt:
		return c > 0
	case mds.OpVersionGte:
		return c >= 0
	case mds.OpVersionLt:
		return c < 0
	case mds.OpVersionLte:
		return c <= 0
	}
	return c >= 0 && version.CompareKeys(k, r.versions[1]) <= 0 // VERSION_RANGE
}

func matchSemver(r *Rule, in *Input) bool {
	v, ok := r.value(in)
	if !ok {
		return false
	}
	sv, ok := version.ParseSemver(v)
	if !ok {
		return false
	}
	c := version.CompareSemver(sv, r.semver)
	switch r.src.Operator {
	case mds.OpSemverEq:
		return c == 0
	case mds.OpSemverGt:
		return c > 0
	case mds.OpSemverGte:
		return c >= 0
	case mds.OpSemverLte:
		return c <= 0
	}
	return c < 0 // SEMVER_LT
}

func matchDate(r *Rule, in *Input) bool {
	t := in.Now
	if r.field != fNow {
		v, ok := r.value(in)
		if !ok {
			return false
		}
		if t, ok = mds.ParseTime(v); !ok {
			return false
		}
	}
	if r.src.Operator == mds.OpDateAfter {
		return t.After(r.date)
	}
	return t.Before(r.date)
}

func matchCIDR(r *Rule, in *Input) bool {
	ip := in.IP // unmapped by NewInput
	if r.field != fIP {
		v, ok := r.value(in)
		if !ok {
			return false
		}
		var err error
		if ip, err = netip.ParseAddr(v); err != nil {
			return false
		}
		ip = ip.Unmap()
	}
	if !ip.IsValid() {
		return false
	}
	for _, p := range r.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
