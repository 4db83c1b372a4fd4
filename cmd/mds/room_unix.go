//go:build unix

package main

import (
	"syscall"

	"github.com/mds-dev/mds/watch"
)

// watcherRoom is how many watchers the process's open-file limit leaves
// room for, each holding a socket, while the node keeps a few hundred
// files for itself (the store, blobs being served, management
// connections); at most maxDefaultWatchers. Go raises the soft limit to
// the hard one at start.
func watcherRoom() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return watch.DefaultMax
	}
	return min(max(int(min(l.Cur, 1<<30))-512, 64), maxDefaultWatchers)
}
