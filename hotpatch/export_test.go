package hotpatch

// Internals the external tests (package hotpatch_test) check.

// Refuse is refuse: the error of a refusal matching sentinels.
var Refuse = refuse

// FileEntries is how many file entries Open kept of p.
func FileEntries(p *Package) int { return len(p.files) }

// PackLimits is Pack for packages within other limits than DefaultLimits.
var PackLimits = pack
