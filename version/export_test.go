package version

// Invalid is the explaining check behind Valid, for FuzzValid.
var Invalid = invalid
