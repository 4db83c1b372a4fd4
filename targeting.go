package mds

import (
	"bufio"
	"errors"
	"io"
	"iter"
	"math"
	"regexp"
	"strings"
	"time"
)

// Stage is how widely a live task delivers.
type Stage string

const (
	// StageGray delivers only to devices a gray gate admits: a whitelist,
	// a sticky percentage or a capped time window.
	StageGray Stage = "gray"
	// StageOfficial delivers to every device the rules and package admit.
	StageOfficial Stage = "official"
)

// Targeting says which devices a task reaches. Rules narrow the audience
// and are ANDed; in the gray stage, a device must also pass at least one
// gray gate (whitelists, rollout percentage, capped window), which are ORed.
// The official stage ignores the gates and keeps the rules.
type Targeting struct {
	Rules      []Rule   `json:"rules,omitempty"`
	RuleSets   []int64  `json:"rule_sets,omitempty"`  // IDs of saved rule sets, ANDed like inline rules
	Whitelists []int64  `json:"whitelists,omitempty"` // IDs of whitelists; a listed user or device passes
	Rollout    *Rollout `json:"rollout,omitempty"`
	Window     *Window  `json:"window,omitempty"`
	// Salt seeds the sticky percentage. The server sets it once per task,
	// so that two tasks at 10% reach different devices and a task's rollout
	// never reshuffles; what a caller sends here is ignored.
	Salt string `json:"salt,omitempty" readOnly:"true"`
}

// Rollout is a sticky percentage, fixed or following a ramp.
type Rollout struct {
	// Percent of devices (or users) admitted, 0 to 100 in steps of 0.01.
	Percent float64 `json:"percent,omitempty"`
	// Ramp, if set, replaces Percent over time: the percentage of the last
	// step whose time has come; 0 before the first.
	Ramp []RampStep `json:"ramp,omitempty"`
	// Stickiness is what the hash keeps stable: "device" (default) or
	// "user", so that one user gets the same answer on all their devices.
	Stickiness Stickiness `json:"stickiness,omitempty"`
}

// RampStep raises (or lowers) the rollout percentage at a time.
type RampStep struct {
	At      time.Time `json:"at"`
	Percent float64   `json:"percent"`
}

// Stickiness names the identifier a rollout or cap counts by.
type Stickiness string

const (
	StickyDevice Stickiness = "device"
	StickyUser   Stickiness = "user"
)

// Window admits the first Cap distinct devices that check and match
// between Start and End; an admitted device stays admitted for the task's
// life.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Cap   int       `json:"cap"`
}

// Limits of a targeting.
const (
	MaxRampStep = 100
	MaxCap      = 1_000_000
	MaxRules    = 64
	MaxRuleRefs = 32
)

// basisPoints converts a percentage to hundredths of a percent, the unit
// the engine works in.
func basisPoints(p float64) int { return int(math.Round(p * 100)) }

func validPercent(p float64) error {
	if math.IsNaN(p) || p < 0 || p > 100 {
		return Errorf(EINVALID, "percent %v must be between 0 and 100", p)
	}
	if math.Abs(p*100-math.Round(p*100)) > 1e-6 {
		return Errorf(EINVALID, "percent %v has more than two decimals; the finest step is 0.01", p)
	}
	return nil
}

// HasGates reports whether any gray gate is configured.
func (t *Targeting) HasGates() bool {
	return len(t.Whitelists) > 0 || t.Rollout != nil || t.Window != nil
}

// Validate checks a targeting as a caller describes it. References to rule
// sets and whitelists are checked by the store, which knows what exists.
func (t *Targeting) Validate() error {
	if len(t.Rules) > MaxRules {
		return Errorf(EINVALID, "%d rules; at most %d", len(t.Rules), MaxRules)
	}
	for i := range t.Rules {
		if err := t.Rules[i].Validate(); err != nil {
			return Errorf(EINVALID, "rule %d: %s", i+1, ErrorMessage(err))
		}
	}
	if len(t.RuleSets) > MaxRuleRefs || len(t.Whitelists) > MaxRuleRefs {
		return Errorf(EINVALID, "a task refers to at most %d rule sets and %d whitelists", MaxRuleRefs, MaxRuleRefs)
	}
	if r := t.Rollout; r != nil {
		if err := validPercent(r.Percent); err != nil {
			return err
		}
		switch r.Stickiness {
		case "":
			r.Stickiness = StickyDevice
		case StickyDevice, StickyUser:
		default:
			return Errorf(EINVALID, "stickiness %q is not one of device, user", r.Stickiness)
		}
		if len(r.Ramp) > MaxRampStep {
			return Errorf(EINVALID, "a ramp has at most %d steps", MaxRampStep)
		}
		for i, s := range r.Ramp {
			if err := validPercent(s.Percent); err != nil {
				return Errorf(EINVALID, "ramp step %d: %s", i+1, ErrorMessage(err))
			}
			if s.At.IsZero() {
				return Errorf(EINVALID, "ramp step %d has no time", i+1)
			}
			if i > 0 && !s.At.After(r.Ramp[i-1].At) {
				return Errorf(EINVALID, "ramp step %d (%s) must come after step %d", i+1, s.At.Format(time.RFC3339), i)
			}
		}
	}
	if w := t.Window; w != nil {
		if w.Start.IsZero() || w.End.IsZero() || !w.End.After(w.Start) {
			return Errorf(EINVALID, "a capped window needs a start and an end after it")
		}
		if w.Cap < 1 || w.Cap > MaxCap {
			return Errorf(EINVALID, "window cap %d must be between 1 and %d devices", w.Cap, MaxCap)
		}
	}
	return nil
}

// BasisPointsAt returns the rollout percentage in basis points at now: the
// fixed percentage, or that of the ramp's step that has come last.
func (r *Rollout) BasisPointsAt(now time.Time) int {
	if len(r.Ramp) == 0 {
		return basisPoints(r.Percent)
	}
	bp := 0
	for _, s := range r.Ramp {
		if now.Before(s.At) {
			break
		}
		bp = basisPoints(s.Percent)
	}
	return bp
}

// Rule is one condition on what a device reports. Values hold the operand:
// a list for IN, NOT_IN and the STR_ operators (any may match), one value
// for comparisons, two (min, max) for ranges, CIDR blocks for CIDR.
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
	OpSemverLt      Operator = "SEMVER_LT"
	OpDateAfter     Operator = "DATE_AFTER"
	OpDateBefore    Operator = "DATE_BEFORE"
	OpCIDR          Operator = "CIDR"
)

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

// MaxRuleValues bounds the operand list of one rule.
const MaxRuleValues = 10_000

// Validate checks the shape of a rule: a known field and operator, and the
// operand count the operator needs. The gray package checks the operand
// values themselves when it compiles the rule.
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
	want, ok := operandCount(r.Operator)
	if !ok {
		return Errorf(EINVALID, "operator %q is not known", r.Operator)
	}
	switch {
	case want == -1 && len(r.Values) == 0 && r.Operator != OpIn && r.Operator != OpNotIn:
		// An empty IN matches nothing and an empty NOT_IN everything, as
		// in Unleash; the string and CIDR operators need something to test.
		return Errorf(EINVALID, "%s needs at least one value", r.Operator)
	case want > 0 && len(r.Values) != want:
		return Errorf(EINVALID, "%s needs exactly %d value(s), got %d", r.Operator, want, len(r.Values))
	}
	return nil
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
	case OpIn, OpNotIn, OpStrContains, OpStrStartsWith, OpStrEndsWith, OpCIDR:
		return -1, true
	case OpRegex, OpNumEq, OpNumGt, OpNumGte, OpNumLt, OpNumLte, OpVersionEq, OpVersionGt, OpVersionGte,
		OpVersionLt, OpVersionLte, OpSemverEq, OpSemverGt, OpSemverLt, OpDateAfter, OpDateBefore:
		return 1, true
	case OpNumRange, OpVersionRange:
		return 2, true
	}
	return 0, false
}

// RuleSet is a named, reusable list of rules of one app ("release rules"):
// edit it once and every task that refers to it follows.
type RuleSet struct {
	ID        int64     `json:"id"`
	AppID     int64     `json:"app_id"`
	Name      string    `json:"name"`
	Rules     []Rule    `json:"rules"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

var objectNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$`)

// Validate checks a rule set's name and rules.
func (s *RuleSet) Validate() error {
	if !objectNamePattern.MatchString(s.Name) {
		return Errorf(EINVALID, "name %q must be 1-64 letters, digits, spaces or _ . -", s.Name)
	}
	if len(s.Rules) == 0 {
		return Errorf(EINVALID, "a rule set needs at least one rule")
	}
	t := Targeting{Rules: s.Rules}
	return t.Validate()
}

// Whitelist is a reusable list of user or device IDs of one app. Entries
// are exact IDs, or regular expressions written "re:<expression>".
type Whitelist struct {
	ID        int64         `json:"id"`
	AppID     int64         `json:"app_id"`
	Name      string        `json:"name"`
	Kind      WhitelistKind `json:"kind"`
	Entries   int           `json:"entries"`  // how many, regular expressions included
	Patterns  int           `json:"patterns"` // how many are regular expressions
	Version   int64         `json:"version"`  // grows with every change of the entries
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
}

// WhitelistKind says which identifier a whitelist lists.
type WhitelistKind string

const (
	WhitelistUsers   WhitelistKind = "user"
	WhitelistDevices WhitelistKind = "device"
)

// Whitelist limits.
const (
	MaxWhitelistEntries  = 1_000_000
	MaxWhitelistPatterns = 100
	MaxEntryLen          = MaxDeviceField
)

// Validate checks a whitelist's name and kind.
func (w *Whitelist) Validate() error {
	if !objectNamePattern.MatchString(w.Name) {
		return Errorf(EINVALID, "name %q must be 1-64 letters, digits, spaces or _ . -", w.Name)
	}
	if w.Kind != WhitelistUsers && w.Kind != WhitelistDevices {
		return Errorf(EINVALID, "kind %q is not one of user, device", w.Kind)
	}
	return nil
}

// PatternPrefix marks a whitelist entry as a regular expression.
const PatternPrefix = "re:"

// ParseEntry checks one whitelist entry and reports whether it is a
// regular expression.
func ParseEntry(e string) (pattern bool, err error) {
	if e == "" {
		return false, Errorf(EINVALID, "empty entry")
	}
	if len(e) > MaxEntryLen {
		return false, Errorf(EINVALID, "entry is longer than %d bytes", MaxEntryLen)
	}
	if expr, ok := strings.CutPrefix(e, PatternPrefix); ok {
		if _, err := regexp.Compile(expr); err != nil {
			return true, Errorf(EINVALID, "entry %q is not a valid regular expression: %v", e, err)
		}
		return true, nil
	}
	for i := 0; i < len(e); i++ {
		if e[i] <= ' ' || e[i] == 0x7f {
			return false, Errorf(EINVALID, "entry %q contains a space or control character", e)
		}
	}
	return false, nil
}

// maxWhitelistLines bounds a whitelist file: duplicates are allowed, so it
// may hold more lines than MaxWhitelistEntries, but not without limit.
const maxWhitelistLines = 2 * MaxWhitelistEntries

// ParseWhitelist reads whitelist entries from r, one per line. A line may
// be CSV: its first field is the entry. Blank lines and lines starting with
// "#" are skipped, and so is a first line that names a column (id,
// user_id, device_id). Errors name the line, and stop the sequence.
func ParseWhitelist(r io.Reader) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		line := 0
		for sc.Scan() {
			line++
			text := strings.TrimSpace(sc.Text())
			if line == 1 {
				text = strings.TrimPrefix(text, "\ufeff") // a spreadsheet's byte order mark
			}
			if text == "" || text[0] == '#' {
				continue
			}
			entry := text
			if i := strings.IndexByte(text, ','); i >= 0 && !strings.HasPrefix(text, PatternPrefix) {
				entry = strings.TrimSpace(text[:i])
			}
			entry = strings.Trim(entry, `"`)
			if line == 1 {
				switch strings.ToLower(entry) {
				case "id", "user_id", "userid", "device_id", "deviceid", "user", "device":
					continue
				}
			}
			if line > maxWhitelistLines {
				yield("", Errorf(ETOOLARGE, "line %d: a whitelist file holds at most %d lines", line, maxWhitelistLines))
				return
			}
			if _, err := ParseEntry(entry); err != nil {
				yield("", Errorf(EINVALID, "line %d: %s", line, ErrorMessage(err)))
				return
			}
			if !yield(entry, nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				err = Errorf(EINVALID, "line %d: longer than 64 KiB; is this a whitelist file?", line+1)
			}
			yield("", err)
		}
	}
}
