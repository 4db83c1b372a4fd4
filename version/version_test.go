package version_test

import (
	"strings"
	"testing"

	"github.com/mds-dev/mds/version"
)

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.10.0", "1.9.2", 1},
		{"1.9.2", "1.10.0", -1},
		{"1.0", "1.0.0", 0},
		{"1", "1.0.0.0", 0},
		{"11", "9.1", 1},
		{"9.1", "11", -1},
		{"v2.0.0", "2.0.0", 0},
		{"2.0.0+build.7", "2.0.0+build.9", 0},
		{"1.0.0-beta", "1.0.0", -1},
		{"1.0.0", "1.0.0-rc.1", 1},
		{"1.0.0-beta.2", "1.0.0-beta.11", -1},
		{"1.0.0-alpha", "1.0.0-beta", -1},
		{"1.0b2", "1.0", -1},
		{"1.0b2", "1.0b10", -1},
		{"1.0a", "1.0b", -1},
		{"010.1", "10.1", 0},
		{"99999999999999999999999.1", "99999999999999999999998.9", 1},
		{"2.1.0.1234", "2.1.0.999", 1},
		{"14.4.1", "14.4", 1},
		{"", "0", 0},
	}
	for _, tt := range tests {
		if got := version.Compare(tt.a, tt.b); got != tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := version.Compare(tt.b, tt.a); got != -tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d (antisymmetry)", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestValid(t *testing.T) {
	// Everything the package documentation calls a version stays valid.
	for _, ok := range []string{"1", "1.2.3", "v1.2", "V3", "2.0.0-rc.1+build.5", "10_1", "1_2", "1.10.0", "2.3.1-beta.2",
		"11", "9.1", "v4.0", "1.0b2", "2.0.0+build.5", "1.0.0-x-y.7z.92", "1.0+build-7", "2.0.0-rc.1+meta.2024-01"} {
		if err := version.Valid(ok); err != nil {
			t.Errorf("Valid(%q) = %v, want nil", ok, err)
		}
	}
	for bad, why := range map[string]string{
		"":                              "empty",
		"v":                             "start with a digit",
		"beta":                          "start with a digit",
		".1":                            "start with a digit",
		"-1":                            "start with a digit",
		"1.2 3":                         "use digits",
		"1.2/3":                         "use digits",
		"1..4":                          "empty part between two dots",
		"1.":                            "ends with a dot",
		"1.-1.0":                        "ends with a dot",
		"1.0-":                          `nothing after "-"`,
		"1.0+":                          `nothing after "+"`,
		"1.0-beta+":                     `nothing after "+"`,
		"1.0-beta..1":                   "empty part between two dots",
		"1.0-.beta":                     "starts with a dot",
		"1.0-beta.":                     "ends with a dot",
		"1.0+a+b":                       `more than one "+"`,
		"1.0+build..5":                  "empty part between two dots",
		"1.0+.5":                        "starts with a dot",
		"v1..0":                         "empty part",
		"1." + string(make([]byte, 70)): "longer than",
	} {
		err := version.Valid(bad)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("Valid(%q) = %v, want an error saying %q", bad, err, why)
		}
	}
}

func TestRange(t *testing.T) {
	r, err := version.ParseRange("1.0.0..1.9.9")
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]bool{"0.9": false, "1.0": true, "1.5.3": true, "1.9.9": true, "1.10.0": false} {
		if got := r.Contains(v); got != want {
			t.Errorf("%v.Contains(%q) = %v, want %v", r, v, got, want)
		}
	}
	open, err := version.ParseRange("2.0..")
	if err != nil {
		t.Fatal(err)
	}
	if !open.Contains("99") || open.Contains("1.99") {
		t.Errorf("open range %v misbehaves", open)
	}
	if _, err := version.ParseRange("2.0..1.0"); err == nil {
		t.Error("inverted range accepted")
	}
	if _, err := version.ParseRange("1.0"); err == nil {
		t.Error("range without .. accepted")
	}
	if _, err := version.ParseRange(".."); err == nil {
		t.Error("range without bounds accepted")
	}
}

func BenchmarkCompare(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		version.Compare("1.10.0-beta.2", "1.10.0-beta.11")
	}
}

func TestKeysOrderLikeCompare(t *testing.T) {
	vs := []string{"1", "1.0", "1.0.0.1", "1.9.2", "1.10.0", "2", "v2.0.1", "2.0.1+b7", "9.1", "11", "65535.1",
		"65536.1", "1.2.3.4.5", "1.0.0-beta", "1.0b2", "", "0.0.0.0", "3.2.1.65535", "1_2", "2.0.0+build.5", "V2.0.1", "0010.1"}
	for _, a := range vs {
		for _, b := range vs {
			if got, want := version.CompareKeys(version.NewKey(a), version.NewKey(b)), version.Compare(a, b); got != want {
				t.Errorf("CompareKeys(%q, %q) = %d, Compare = %d", a, b, got, want)
			}
		}
	}
	if version.NewKey("1.2").String() != "1.2" {
		t.Error("Key.String lost the text")
	}
}

func TestSemver(t *testing.T) {
	valid := []string{"1.2.3", "0.0.0", "1.2.3-alpha", "1.2.3-alpha.1", "1.2.3-0.3.7", "1.2.3-x-y.7z.92", "1.2.3+build.5",
		"10.20.30-rc.1+meta", "1.2.3+001", "1.2.3+exp.sha.5114f85", "1.2.3-rc.1+build-7.x", "18446744073709551615.0.0",
		"1.0.0-123456789012345678901234567890"}
	for _, s := range valid {
		if _, ok := version.ParseSemver(s); !ok {
			t.Errorf("ParseSemver(%q) rejected", s)
		}
		if err := version.ValidSemver(s); err != nil {
			t.Errorf("ValidSemver(%q) = %v", s, err)
		}
	}
	invalid := map[string]string{
		"":                          "three numbers",
		"1":                         "three numbers",
		"1.2":                       "three numbers",
		"1.2.3.4":                   "three numbers",
		"v1.2.3":                    "digits only",
		"01.2.3":                    "leading zeros",
		"1.02.3":                    "leading zeros",
		"1.2.3-":                    "pre-release must not be empty",
		"1.2.3-01":                  "leading zeros",
		"1.2.3-a..b":                "empty identifier",
		"1.2.3.":                    "three numbers",
		"1..3":                      "must each be a number",
		"a.b.c":                     "digits only",
		"1.2.3-al$pha":              "only ASCII letters",
		"not a semver":              "three numbers",
		"1.2.3+":                    "build metadata must not be empty",
		"1.2.3+a..b":                "build metadata must not have an empty identifier",
		"1.2.3+a.":                  "empty identifier",
		"1.2.3+a+b":                 "only ASCII letters",
		"1.2.3+ä":                   "only ASCII letters",
		"1.2.3-rc.1+":               "build metadata must not be empty",
		"18446744073709551616.0.0":  "at most 18446744073709551615",
		"1.99999999999999999999.0":  "at most",
		"1.0.184467440737095516150": "at most",
	}
	for s, why := range invalid {
		if _, ok := version.ParseSemver(s); ok {
			t.Errorf("ParseSemver(%q) accepted", s)
		}
		if err := version.ValidSemver(s); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ValidSemver(%q) = %v, want an error saying %q", s, err, why)
		}
	}
	// The precedence example of the specification, in order, then numeric
	// identifiers longer than a uint64 holds.
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0",
		"2.0.1-9", "2.0.1-10", "2.0.1-99999999999999999999", "2.0.1-100000000000000000000", "2.0.1-123456789012345678901234567890", "2.0.1-a", "2.0.1"}
	for i := range order {
		for j := range order {
			a, aok := version.ParseSemver(order[i])
			b, bok := version.ParseSemver(order[j])
			if !aok || !bok {
				t.Fatalf("%s or %s rejected", order[i], order[j])
			}
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := version.CompareSemver(a, b); got != want {
				t.Errorf("CompareSemver(%s, %s) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	a, _ := version.ParseSemver("1.2.3+build.1")
	b, _ := version.ParseSemver("1.2.3+build.2")
	if version.CompareSemver(a, b) != 0 {
		t.Error("build metadata changed precedence")
	}
}

func TestParseSemverDoesNotAllocate(t *testing.T) {
	for _, s := range []string{"1.2.3-rc.1+build.5", "1.2.3+a..b", "not a semver"} {
		if n := testing.AllocsPerRun(100, func() { version.ParseSemver(s) }); n != 0 {
			t.Errorf("ParseSemver(%q) allocates %v times", s, n)
		}
	}
}

func BenchmarkCompareKeys(b *testing.B) {
	x, y := version.NewKey("2.14.1"), version.NewKey("2.9.30")
	b.ReportAllocs()
	for b.Loop() {
		version.CompareKeys(x, y)
	}
}

// FuzzKeys: the packed fast path of a Key orders any two strings exactly
// as Compare does, and Compare is antisymmetric.
//
//	go test -fuzz FuzzKeys ./version
func FuzzKeys(f *testing.F) {
	f.Add("1.10.0", "1.9.2")
	f.Add("v2.0.0+b", "2")
	f.Add("65535.1", "65536")
	f.Add("1.0-beta", "1.0")
	f.Fuzz(func(t *testing.T, a, b string) {
		want := version.Compare(a, b)
		if got := version.CompareKeys(version.NewKey(a), version.NewKey(b)); got != want {
			t.Fatalf("CompareKeys(%q, %q) = %d, Compare = %d", a, b, got, want)
		}
		if back := version.Compare(b, a); back != -want {
			t.Fatalf("Compare(%q, %q) = %d but Compare(%q, %q) = %d", a, b, want, b, a, back)
		}
	})
}

// TestValidDoesNotAllocate: a device's app version is checked on every
// check, and a valid one must cost no allocation.
func TestValidDoesNotAllocate(t *testing.T) {
	for _, s := range []string{"2.10.1", "v2.0.0-rc.1+build.5", "1.0b2"} {
		if n := testing.AllocsPerRun(100, func() { version.Valid(s) }); n != 0 {
			t.Errorf("Valid(%q) allocates %v times", s, n)
		}
	}
}
