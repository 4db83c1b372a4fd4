package bundle

// Internals the external tests (package bundle_test) check.

// Refuse is refuse: the error of a refusal matching sentinels.
var Refuse = refuse

// Entries is how many file entries Open kept of b.
func Entries(b *Bundle) int { return len(b.entries) }
