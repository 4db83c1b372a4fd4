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
	if !version.AnyContains(nil, "1.0") {
		t.Error("no ranges must admit every version")
	}
	if version.AnyContains([]version.Range{{Max: "1.0"}, {Min: "3.0"}}, "2.0") {
		t.Error("2.0 is in neither ..1.0 nor 3.0..")
	}
}

func BenchmarkCompare(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		version.Compare("1.10.0-beta.2", "1.10.0-beta.11")
	}
}
