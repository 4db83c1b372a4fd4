package mds_test

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mds-dev/mds"
)

func TestRuleValidateNormalises(t *testing.T) {
	vals := []string{" Shanghai", "Beijing\t", "New York"}
	r := mds.Rule{Field: "city", Operator: mds.OpIn, Values: vals}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"Shanghai", "Beijing", "New York"}; !slices.Equal(r.Values, want) {
		t.Errorf("values %q, want %q", r.Values, want)
	}
	if vals[0] != " Shanghai" || vals[1] != "Beijing\t" {
		t.Errorf("Validate wrote to the caller's slice: %q", vals)
	}

	cidr := mds.Rule{Field: "ip", Operator: mds.OpCIDR, Values: []string{"10.0.0.0/8"}}
	unleash := mds.Rule{Field: "ip", Operator: mds.OpInCIDR, Values: []string{"10.0.0.0/8"}}
	if err := cidr.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := unleash.Validate(); err != nil {
		t.Fatal(err)
	}
	if cidr.Operator != mds.OpInCIDR || cidr.String() != unleash.String() {
		t.Errorf("CIDR and IN_CIDR differ after Validate: %s, %s", cidr, unleash)
	}

	// case_insensitive means nothing to a number: cleared, so that the two
	// spellings render and compare as one rule.
	num := mds.Rule{Field: "attr.age", Operator: mds.OpNumGt, Values: []string{"18"}, CaseInsensitive: true}
	if err := num.Validate(); err != nil || num.CaseInsensitive {
		t.Errorf("NUM_GT/i: %v, case_insensitive %v", err, num.CaseInsensitive)
	}
	str := mds.Rule{Field: "model", Operator: mds.OpStrContains, Values: []string{"sm"}, CaseInsensitive: true}
	if err := str.Validate(); err != nil || !str.CaseInsensitive {
		t.Errorf("STR_CONTAINS/i lost its flag: %v", err)
	}
}

func TestRuleValidateValues(t *testing.T) {
	rule := func(field string, op mds.Operator, vals ...string) mds.Rule {
		return mds.Rule{Field: field, Operator: op, Values: vals}
	}
	valid := []mds.Rule{
		rule("attr.age", mds.OpNumGt, "-3.5e2"),
		rule("attr.age", mds.OpNumGt, "+12"),
		rule("attr.age", mds.OpNumRange, "1", "1"),
		rule("app_version", mds.OpVersionRange, "1.0", "1.0.0"),
		rule("attr.v", mds.OpSemverGte, "1.2.3-rc.1+build.5"),
		rule("attr.v", mds.OpSemverLte, "1.2.3"),
		rule("now", mds.OpDateAfter, "2026-12-01T08:00:00.5+08:00"),
		rule("ip", mds.OpInCIDR, "10.0.0.0/8", "2001:db8::1", "::ffff:192.168.0.0/112"),
		{Field: "model", Operator: mds.OpRegex, Values: []string{`^sm-s9\d\d`}, CaseInsensitive: true},
		rule("channel", mds.OpNotIn),
		rule("city", mds.OpStrContains, strings.Repeat("x", mds.MaxRuleValueLen)),
	}
	for _, r := range valid {
		if err := r.Validate(); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
	invalid := []struct {
		rule mds.Rule
		want string
	}{
		{rule("city", mds.OpStrContains, ""), "value 1 is empty"},
		{rule("city", mds.OpIn, "Shanghai", "  "), "value 2 is empty or only white space"},
		{rule("city", mds.OpStrContains, "a\nb"), "value 1 has a line feed (U+000A) at character 2"},
		{rule("city", mds.OpIn, "ok", "x\u202ey"), "value 2 has the bidirectional control character U+202E"},
		{rule("city", mds.OpIn, "a\x00"), "value 1 has the control character U+0000"},
		{rule("city", mds.OpIn, strings.Repeat("x", mds.MaxRuleValueLen+1)), "at most 1024"},
		{rule("attr.age", mds.OpNumGt, "inf"), `"inf" is not a number`},
		{rule("attr.age", mds.OpNumGt, "Infinity"), "not a number"},
		{rule("attr.age", mds.OpNumGt, "NaN"), "not a number"},
		{rule("attr.age", mds.OpNumGt, "0x1p3"), "not a number"},
		{rule("attr.age", mds.OpNumGt, "1_000"), "not a number"},
		{rule("attr.age", mds.OpNumGt, "1e999"), "not a number"},
		{rule("attr.age", mds.OpNumGt, "old"), "plain decimal"},
		{rule("attr.age", mds.OpNumRange, "9", "1"), "range 9..1 is empty"},
		{rule("os_version", mds.OpVersionGt, "1..4"), "empty part"},
		{rule("os_version", mds.OpVersionGt, "1.0-"), `nothing after "-"`},
		{rule("os_version", mds.OpVersionRange, "12", "9"), "range 12..9 is empty"},
		{rule("attr.v", mds.OpSemverGte, "1.2.3+"), "build metadata must not be empty"},
		{rule("attr.v", mds.OpSemverLte, "v1.2.3"), "semantic version"},
		{rule("attr.v", mds.OpSemverEq, "99999999999999999999.0.0"), "at most 18446744073709551615"},
		{rule("now", mds.OpDateAfter, "2026-12-01"), "RFC 3339"},
		{rule("ip", mds.OpInCIDR, "10.0.0.0/8", "10.0.0.0/33"), `"10.0.0.0/33" is not a CIDR block`},
		{rule("ip", mds.OpCIDR, "fe80::1%eth0"), "IN_CIDR"},
		{rule("model", mds.OpRegex, "(unclosed"), "not a valid regular expression"},
		{mds.Rule{Field: "model", Operator: mds.OpRegex, Values: []string{"a{2,1}"}, CaseInsensitive: true}, "not a valid regular expression"},
		{rule("city", "LIKE", "x"), "not known; use one of IN, NOT_IN"},
		{rule("city", "in", "x"), "not known"},
	}
	for _, tt := range invalid {
		r := tt.rule
		err := r.Validate()
		if mds.ErrorCode(err) != mds.EINVALID || !strings.Contains(mds.ErrorMessage(err), tt.want) {
			t.Errorf("%+v: error %v, want EINVALID mentioning %q", tt.rule, err, tt.want)
		}
	}
}

func TestParseNumber(t *testing.T) {
	for s, want := range map[string]float64{"12": 12, "-3.5": -3.5, "+7": 7, "1e6": 1e6, "2.5E-3": 2.5e-3, "0": 0, "-0.0": 0,
		"007": 7, "1e-400": 0, strconv.FormatFloat(math.MaxFloat64, 'f', -1, 64): math.MaxFloat64} {
		if got, ok := mds.ParseNumber(s); !ok || got != want {
			t.Errorf("ParseNumber(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "-", "+", ".5", "1.", "1.e3", "1e", "1e+", "e5", "inf", "+Inf", "-infinity", "NaN", "nan",
		"0x10", "0x1p3", "1_000", " 12", "12 ", "1,5", "1e999", "-1e999", "١٢", "1.2.3", "--1"} {
		if got, ok := mds.ParseNumber(s); ok {
			t.Errorf("ParseNumber(%q) = %v, want refused", s, got)
		}
	}
	for _, s := range []string{"12.5", "gold", "inf"} {
		if n := testing.AllocsPerRun(100, func() { mds.ParseNumber(s) }); n != 0 {
			t.Errorf("ParseNumber(%q) allocates %v times", s, n)
		}
	}
}

func TestParseCIDR(t *testing.T) {
	for s, want := range map[string]string{
		"10.0.0.0/8":             "10.0.0.0/8",
		"10.1.2.3/8":             "10.0.0.0/8", // masked to the network
		"203.0.113.9":            "203.0.113.9/32",
		"2001:db8::1":            "2001:db8::1/128",
		"2001:db8::/32":          "2001:db8::/32",
		"::ffff:192.168.0.0/112": "192.168.0.0/16", // a mapped block is an IPv4 block
		"::ffff:1.2.3.4":         "1.2.3.4/32",
		"::ffff:0:0/95":          "::fffe:0:0/95", // wider than IPv4: stays IPv6
	} {
		p, ok := mds.ParseCIDR(s)
		if !ok || p != netip.MustParsePrefix(want) {
			t.Errorf("ParseCIDR(%q) = %v, %v; want %s", s, p, ok, want)
		}
	}
	for _, s := range []string{"", "10.0.0.0/33", "127.invalid", "bad::cidr", "fe80::1%eth0", "10.0.0.0/", "10/8"} {
		if p, ok := mds.ParseCIDR(s); ok {
			t.Errorf("ParseCIDR(%q) = %v, want refused", s, p)
		}
	}
}

func TestRuleStringAndParseRule(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want mds.Rule
		text string // String of the parsed rule
	}{
		{"os_version VERSION_GTE 12", mds.Rule{Field: "os_version", Operator: mds.OpVersionGte, Values: []string{"12"}}, "os_version VERSION_GTE 12"},
		{"  city IN Shanghai, New York ", mds.Rule{Field: "city", Operator: mds.OpIn, Values: []string{"Shanghai", "New York"}}, "city IN Shanghai,New York"},
		{"not model str_starts_with/i sm-", mds.Rule{Field: "model", Operator: mds.OpStrStartsWith, Values: []string{"sm-"}, Inverted: true, CaseInsensitive: true},
			"not model STR_STARTS_WITH/i sm-"},
		{"channel NOT_IN", mds.Rule{Field: "channel", Operator: mds.OpNotIn, Values: []string{}}, "channel NOT_IN"},
		{"ip CIDR 10.0.0.0/8", mds.Rule{Field: "ip", Operator: mds.OpInCIDR, Values: []string{"10.0.0.0/8"}}, "ip IN_CIDR 10.0.0.0/8"},
		{`{"field":"attr.tags","operator":"STR_CONTAINS","values":["a,b"]}`, mds.Rule{Field: "attr.tags", Operator: mds.OpStrContains, Values: []string{"a,b"}},
			`{"field":"attr.tags","operator":"STR_CONTAINS","values":["a,b"]}`},
		{`{"field":"city","operator":"IN","values":[" <Shanghai> "],"inverted":true}`, mds.Rule{Field: "city", Operator: mds.OpIn, Values: []string{"<Shanghai>"}, Inverted: true},
			"not city IN <Shanghai>"},
	} {
		got, err := mds.ParseRule(tt.in)
		if err != nil || fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tt.want) {
			t.Errorf("ParseRule(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.text {
			t.Errorf("String of %q = %q, want %q", tt.in, s, tt.text)
		}
	}
	for bad, want := range map[string]string{
		"":                          "write FIELD OPERATOR VALUES",
		"os_version":                "write FIELD OPERATOR VALUES",
		"shoe_size IN 42":           `rule "shoe_size IN 42": field "shoe_size" is not one of`,
		"city LIKE x":               "not known",
		"{not json":                 "rule {not json",
		"city IN Shanghai,,Beijing": "value 2 is empty",
		"city IN Shanghai,":         "value 2 is empty",
		"attr.age NUM_GT inf":       `"inf" is not a number`,
		`{"field":"city","operator":"IN","value":"x"}`:        `unknown field "value"`,
		`{"field":"city","operator":"IN","values":["x"]}x`:    "text after the JSON object",
		`{"field":"city","operator":"NUM_GT","values":["x"]}`: "not a number", // the JSON form is validated too
	} {
		r, err := mds.ParseRule(bad)
		if mds.ErrorCode(err) != mds.EINVALID || !strings.Contains(mds.ErrorMessage(err), want) {
			t.Errorf("ParseRule(%q) = %+v, %v; want EINVALID mentioning %q", bad, r, err, want)
		}
	}
}

// TestRuleRoundTrip: ParseRule reads back what String writes, for every
// operator, with and without the flags, and values with spaces, commas,
// quotes and other scripts.
func TestRuleRoundTrip(t *testing.T) {
	operands := map[mds.Operator][][]string{
		mds.OpIn:            {{"Shanghai"}, {"Shanghai", "New York", "北京"}, {"a,b", "c"}, {}},
		mds.OpNotIn:         {{"x"}, {}},
		mds.OpStrContains:   {{"ẞ", `say "hi"`}},
		mds.OpStrStartsWith: {{"SM-", "GT-"}},
		mds.OpStrEndsWith:   {{"not x"}},
		mds.OpRegex:         {{`^SM-S9\d{2}$`}, {`a{1,3}`}},
		mds.OpNumEq:         {{"37.5"}},
		mds.OpNumGt:         {{"-1e3"}},
		mds.OpNumGte:        {{"0"}},
		mds.OpNumLt:         {{"1"}},
		mds.OpNumLte:        {{"2"}},
		mds.OpNumRange:      {{"1", "9"}},
		mds.OpVersionEq:     {{"2.10.1"}},
		mds.OpVersionGt:     {{"v1.0b2"}},
		mds.OpVersionGte:    {{"12"}},
		mds.OpVersionLt:     {{"2.0.0+build.5"}},
		mds.OpVersionLte:    {{"10_1"}},
		mds.OpVersionRange:  {{"1.0", "2.0-rc.1"}},
		mds.OpSemverEq:      {{"1.2.3"}},
		mds.OpSemverGt:      {{"1.2.3-rc.1"}},
		mds.OpSemverGte:     {{"1.2.3+b.7"}},
		mds.OpSemverLt:      {{"2.0.0"}},
		mds.OpSemverLte:     {{"0.0.1-0"}},
		mds.OpDateAfter:     {{"2026-12-01T00:00:00Z"}},
		mds.OpDateBefore:    {{"2026-12-01T08:00:00+08:00"}},
		mds.OpInCIDR:        {{"10.0.0.0/8", "2001:db8::1"}},
	}
	if len(operands) != len(mds.Operators) {
		t.Fatalf("%d operators tested of %d", len(operands), len(mds.Operators))
	}
	n := 0
	for op, lists := range operands {
		for _, vals := range lists {
			for _, inverted := range []bool{false, true} {
				for _, fold := range []bool{false, true} {
					r := mds.Rule{Field: "attr.x", Operator: op, Values: vals, Inverted: inverted, CaseInsensitive: fold}
					if err := r.Validate(); err != nil {
						t.Fatalf("%+v: %v", r, err)
					}
					back, err := mds.ParseRule(r.String())
					if err != nil {
						t.Errorf("ParseRule(%q): %v", r.String(), err)
						continue
					}
					if back.Field != r.Field || back.Operator != r.Operator || !slices.Equal(back.Values, r.Values) ||
						back.Inverted != r.Inverted || back.CaseInsensitive != r.CaseInsensitive {
						t.Errorf("ParseRule(%q) = %#v, want %#v", r.String(), back, r)
					}
					n++
				}
			}
		}
	}
	t.Logf("%d rules round-trip", n)
}

func TestRuleSummary(t *testing.T) {
	var vals []string
	for i := range 12 {
		vals = append(vals, fmt.Sprint("c", i))
	}
	r := mds.Rule{Field: "city", Operator: mds.OpIn, Values: vals, Inverted: true}
	if got, want := r.Summary(5), "not city IN c0,c1,c2,c3,c4,… (12 values)"; got != want {
		t.Errorf("Summary(5) = %q, want %q", got, want)
	}
	if got := r.Summary(12); got != r.String() {
		t.Errorf("Summary of all values %q differs from String %q", got, r.String())
	}
}

// FuzzParseRule: any text either parses to a valid rule whose String
// parses back to it, or is refused as invalid; nothing panics.
//
//	go test -fuzz FuzzParseRule .
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"os_version VERSION_GTE 12", "not city IN/i Shanghai, New York", "channel NOT_IN",
		`{"field":"attr.tags","operator":"STR_CONTAINS","values":["a,b"]}`, "ip CIDR 10.0.0.0/8,::ffff:1.2.3.4",
		"attr.v SEMVER_LTE 1.2.3-rc.1+b", "attr.n NUM_RANGE -1e3,1e3", "model REGEX ^SM-(S|G)9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		r, err := mds.ParseRule(text)
		if err != nil {
			if mds.ErrorCode(err) != mds.EINVALID {
				t.Fatalf("ParseRule(%q): error without a code: %v", text, err)
			}
			return
		}
		again := r
		if err := again.Validate(); err != nil || fmt.Sprintf("%#v", again) != fmt.Sprintf("%#v", r) {
			t.Fatalf("ParseRule(%q) = %#v, which Validate changes or refuses: %v", text, r, err)
		}
		back, err := mds.ParseRule(r.String())
		if err != nil || back.Field != r.Field || back.Operator != r.Operator || !slices.Equal(back.Values, r.Values) ||
			back.Inverted != r.Inverted || back.CaseInsensitive != r.CaseInsensitive {
			t.Fatalf("ParseRule(%q) = %#v, %v; want %#v", r.String(), back, err, r)
		}
	})
}

// TestNetworkRuleValues: a rule's network names are normalised as devices'
// are, and a name no device reports is refused rather than matching no one.
func TestNetworkRuleValues(t *testing.T) {
	r := mds.Rule{Field: mds.FieldNetwork, Operator: mds.OpIn, Values: []string{"LTE", " WIFI", "unknown"}}
	orig := r.Values
	if err := r.Validate(); err != nil || fmt.Sprint(r.Values) != "[4g wifi unknown]" {
		t.Errorf("Validate = %v, values %v; want [4g wifi unknown]", err, r.Values)
	}
	if orig[0] != "LTE" {
		t.Error("Validate wrote into the caller's values")
	}
	bad := mds.Rule{Field: mds.FieldNetwork, Operator: mds.OpNotIn, Values: []string{"carrier-pigeon"}}
	if err := bad.Validate(); mds.ErrorCode(err) != mds.EINVALID {
		t.Errorf("an unknown network name: %v", err)
	}
}
