package mds

import (
	"regexp"
	"strings"
)

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
