//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || android || ios

package localfs

import (
	"errors"
	"os"
	"syscall"
)

// lock takes an exclusive advisory lock on f without waiting. The kernel
// drops it when the process dies, however it dies, which is what lets a
// later process tell an abandoned temp directory from a busy one.
func lock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
