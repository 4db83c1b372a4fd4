package gray_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
)

// FuzzRule feeds arbitrary rule JSON and device values through parsing,
// compiling and matching: whatever comes in, nothing may panic, and a rule
// that compiles must give the same answer twice.
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
	}
	for _, s := range seeds {
		f.Add(s.rule, s.value, s.ip)
	}
	f.Fuzz(func(t *testing.T, ruleJSON, value, ip string) {
		var r mds.Rule
		if json.Unmarshal([]byte(ruleJSON), &r) != nil {
			return
		}
		c, err := gray.CompileRule(r)
		if err != nil {
			if mds.ErrorCode(err) != mds.EINVALID {
				t.Fatalf("compile error without a code: %v", err)
			}
			return
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
