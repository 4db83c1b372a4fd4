//go:build unix

package sdk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive lock on dir's lock file, without waiting:
// flock(2), held by the open file, so that it goes with the process when
// it dies however it dies, and a crash never leaves a directory locked.
// Two opens in one process are two open files, and exclude each other
// too.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sdk: opening the lock of the state directory: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("sdk: state directory %s is in use by another process (or another open Client): one Client at a time may use a state directory; close the other first", dir)
		}
		return nil, fmt.Errorf("sdk: locking the state directory %s: %w", dir, err)
	}
	return f, nil
}
