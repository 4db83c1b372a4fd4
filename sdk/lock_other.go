//go:build !unix

package sdk

import "os"

// lockDir does not lock where flock(2) does not exist: the SDK targets
// Unix systems (Linux, Android, iOS, macOS), and elsewhere it is up to the
// program to open a directory once.
func lockDir(string) (*os.File, error) { return nil, nil }
