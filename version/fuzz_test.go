package version_test

import (
	"testing"

	"github.com/mds-dev/mds/version"
)

// FuzzValid holds the one-pass check to the explaining one.
func FuzzValid(f *testing.F) {
	for _, s := range []string{"1.2.3", "v4.0", "1..4", "1.-1.0", "1.0-", "1.0+", "1.0+a+b", "1.0--x", "1-a.b+c-d.e", "1.", ".1", "1.0-.x", "1_2", "1.0b2", "V1", "v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if fast, slow := version.Valid(s) == nil, version.Invalid(s) == nil; fast != slow {
			t.Errorf("Valid(%q) says %v, the explaining check %v", s, fast, slow)
		}
	})
}
