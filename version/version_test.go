package version_test

import (
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
	for _, ok := range []string{"1", "1.2.3", "v1.2", "2.0.0-rc.1+build.5", "10_1"} {
		if err := version.Valid(ok); err != nil {
			t.Errorf("Valid(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "v", "beta", "1.2 3", "1.2/3", "1." + string(make([]byte, 70))} {
		if err := version.Valid(bad); err == nil {
			t.Errorf("Valid(%q) = nil, want an error", bad)
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
		"65536.1", "1.2.3.4.5", "1.0.0-beta", "1.0b2", "", "0.0.0.0", "3.2.1.65535"}
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
	valid := []string{"1.2.3", "0.0.0", "1.2.3-alpha", "1.2.3-alpha.1", "1.2.3-0.3.7", "1.2.3-x-y.7z.92", "1.2.3+build.5", "10.20.30-rc.1+meta"}
	for _, s := range valid {
		if _, ok := version.ParseSemver(s); !ok {
			t.Errorf("ParseSemver(%q) rejected", s)
		}
	}
	invalid := []string{"", "1", "1.2", "1.2.3.4", "v1.2.3", "01.2.3", "1.02.3", "1.2.3-", "1.2.3-01", "1.2.3-a..b", "1.2.3.", "1..3", "a.b.c", "1.2.3-al$pha", "not a semver"}
	for _, s := range invalid {
		if _, ok := version.ParseSemver(s); ok {
			t.Errorf("ParseSemver(%q) accepted", s)
		}
	}
	// The precedence example of the specification, in order.
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0"}
	for i := range order {
		for j := range order {
			a, _ := version.ParseSemver(order[i])
			b, _ := version.ParseSemver(order[j])
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

func BenchmarkCompareKeys(b *testing.B) {
	x, y := version.NewKey("2.14.1"), version.NewKey("2.9.30")
	b.ReportAllocs()
	for b.Loop() {
		version.CompareKeys(x, y)
	}
}
