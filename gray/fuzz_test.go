package gray_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
)

// FuzzRule feeds arbitrary rule JSON and device values through parsing,
// validating, compiling and matching: whatever comes in, nothing may
// panic, a rule compiles exactly when it validates, a valid rule renders
// as text that parses back to it, and a rule that compiles must give the
// same answer twice.
//
//	go test -fuzz FuzzRule ./gray
func FuzzRule(f *testing.F) {
	seeds := []struct{ rule, value, ip string }{
		{`{"field":"os_version","operator":"VERSION_GTE","values":["12"]}`, "14", "10.0.0.1"},
		{`{"field":"city","operator":"IN","values":["Shanghai","Beijing"],"case_insensitive":true}`, "shanghai", ""},
		{`{"field":"attr.x","operator":"NUM_RANGE","values":["1","9"]}`, "5.5", ""},
		{`{"field":"model","operator":"REGEX","values":["^SM-(S|G)9"]}`, "SM-S918B", ""},
		{`{"field":"ip","operator":"CIDR","values":["10.0.0.0/8","2001:db8::/32"]}`, "", "2001:db8::1"},
		{`{"field":"now","operator":"DATE_AFTER","values":["2026-01-01T00:00:00Z"],"inverted":true}`, "", ""},
		{`{"field":"attr.v","operator":"SEMVER_GT","values":["1.0.0-rc.1"]}`, "1.0.0", ""},
		{`{"field":"app_version","operator":"VERSION_RANGE","values":["1.0","2.0"]}`, "1.5", ""},
		{`{"field":"brand","operator":"STR_ENDS_WITH","values":["ung"]}`, "Samsung", ""},
		{`{"field":"attr.v","operator":"SEMVER_GTE","values":["1.0.0-rc.12345678901234567890"]}`, "1.0.0-rc.99999999999999999999", ""},
		{`{"field":"attr.v","operator":"SEMVER_LTE","values":["1.2.3+a.b"]}`, "1.2.3+", ""},
		{`{"field":"ip","operator":"IN_CIDR","values":[" ::ffff:10.0.0.0/104"]}`, "", "::ffff:10.1.2.3"},
		{`{"field":"model","operator":"STR_CONTAINS","values":["ß"],"case_insensitive":true}`, "STRAẞE", ""},
		{`{"field":"city","operator":"IN","values":["ſ","a","b","c","d","e","f","g","h"],"case_insensitive":true}`, "s", ""},
		{`{"field":"attr.x","operator":"NUM_GT","values":["1"]}`, "inf", ""},
		{`{"field":"city","operator":"IN","values":["a,b"," c"],"inverted":true}`, "a,b", ""},
	}
	for _, s := range seeds {
		f.Add(s.rule, s.value, s.ip)
	}
	f.Fuzz(func(t *testing.T, ruleJSON, value, ip string) {
		var r mds.Rule
		if json.Unmarshal([]byte(ruleJSON), &r) != nil {
			return
		}
		valid := r
		verr := valid.Validate()
		c, err := gray.CompileRule(r)
		if (verr == nil) != (err == nil) {
			t.Fatalf("%+v: Validate says %v, CompileRule %v", r, verr, err)
		}
		if err != nil {
			if mds.ErrorCode(err) != mds.EINVALID {
				t.Fatalf("compile error without a code: %v", err)
			}
			return
		}
		back, err := mds.ParseRule(valid.String())
		if err != nil {
			t.Fatalf("ParseRule(%q) of a valid rule: %v", valid.String(), err)
		}
		if back.Field != valid.Field || back.Operator != valid.Operator || !slices.Equal(back.Values, valid.Values) ||
			back.Inverted != valid.Inverted || back.CaseInsensitive != valid.CaseInsensitive {
			t.Fatalf("ParseRule(%q) = %#v, want %#v", valid.String(), back, valid)
		}
		_ = c.String()
		addr, _ := netip.ParseAddr(ip)
		d := &mds.Device{AppKey: "k", Platform: mds.Android, AppVersion: value, DeviceID: value, UserID: value,
			Model: value, Brand: value, OSVersion: value, Network: value, Region: value, City: value, Channel: value,
			Language: value, Attributes: map[string]string{"x": value, "v": value, "tags": value}}
		in := gray.NewInput(d, addr, time.Unix(1_800_000_000, 0))
		first := c.Match(&in)
		in2 := gray.NewInput(d, addr, time.Unix(1_800_000_000, 0))
		if c.Match(&in2) != first {
			t.Fatalf("%s gave two answers for %q", c, value)
		}
		// The same rule through a task: Decide and Explain must agree with
		// the rule, whether or not the rule is inverted twice over.
		task := &mds.Task{ID: 1, AppID: 1, Stage: mds.StageOfficial, Targeting: mds.Targeting{Rules: []mds.Rule{r, r}}}
		tg, err := gray.NewCatalog(nil, nil).Compile(task)
		if err != nil {
			t.Fatalf("a rule that compiles alone failed in a task: %v", err)
		}
		in3 := gray.NewInput(d, addr, time.Unix(1_800_000_000, 0))
		decided := tg.Decide(&in3, nil)
		in4 := gray.NewInput(d, addr, time.Unix(1_800_000_000, 0))
		explained, _ := tg.Explain(&in4, nil)
		if decided != first || explained != first {
			t.Fatalf("%s: Match %v, Decide %v, Explain %v", c, first, decided, explained)
		}
	})
}

// FuzzWhitelistFile feeds arbitrary files to the whitelist parser: it must
// not panic, and every entry it yields must be a valid entry.
func FuzzWhitelistFile(f *testing.F) {
	f.Add("user_id,name\nalice,A\n# comment\n\nbob\nre:^qa-\\d+$\n")
	f.Add("\ufeffid\n\"quoted\",x\n")
	f.Fuzz(func(t *testing.T, file string) {
		for e, err := range mds.ParseWhitelist(strings.NewReader(file)) {
			if err != nil {
				if mds.ErrorCode(err) != mds.EINVALID && mds.ErrorCode(err) != mds.ETOOLARGE {
					t.Fatalf("parse error without a code: %v", err)
				}
				return
			}
			if _, err := mds.ParseEntry(e); err != nil {
				t.Fatalf("parser yielded invalid entry %q: %v", e, err)
			}
		}
	})
}

// FuzzFold: with case_insensitive, IN and the STR_ operators answer as
// comparing strings.ToLower of both sides would, as Unleash compares
// toLowerCase of both, for any count of values (a scan or a map) and any
// device value, valid UTF-8 or not, short or past the stack buffer.
//
//	go test -fuzz FuzzFold ./gray
func FuzzFold(f *testing.F) {
	f.Add("ß", "STRAẞE", uint8(1))
	f.Add("\u212a", "k", uint8(9))
	f.Add("ſ", "S", uint8(9))
	f.Add("Ⱥ", strings.Repeat("ⱥ", 100), uint8(1))
	f.Add("a", "\xffA", uint8(0))
	f.Fuzz(func(t *testing.T, operand, device string, n uint8) {
		others := int(n % 12) // up to 11 other values: either side of the map threshold
		vals := []string{operand}
		for i := range others {
			vals = append(vals, fmt.Sprint("other-", i))
		}
		probe := mds.Rule{Field: "model", Operator: mds.OpIn, Values: vals, CaseInsensitive: true}
		if probe.Validate() != nil {
			return // not an operand a rule can hold
		}
		op, dv := strings.ToLower(probe.Values[0]), strings.ToLower(device)
		want := map[mds.Operator]bool{
			mds.OpIn:            dv == op || slices.Contains(lowered(probe.Values[1:]), dv),
			mds.OpStrContains:   strings.Contains(dv, op),
			mds.OpStrStartsWith: strings.HasPrefix(dv, op),
			mds.OpStrEndsWith:   strings.HasSuffix(dv, op),
		}
		for o, w := range want {
			r, err := gray.CompileRule(mds.Rule{Field: "model", Operator: o, Values: vals, CaseInsensitive: true})
			if err != nil {
				t.Fatalf("%s %q: %v", o, operand, err)
			}
			in := gray.NewInput(&mds.Device{Model: device}, netip.Addr{}, time.Unix(0, 0))
			if device == "" { // not reported: nothing matches
				w = false
			}
			if got := r.Match(&in); got != w {
				t.Fatalf("%q %s/i %q (and %d others): %v, want %v", device, o, operand, others, got, w)
			}
		}
	})
}

func lowered(vals []string) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = strings.ToLower(v)
	}
	return out
}
