//go:build unix

package main

import "syscall"

// watcherRoom is how many watchers the process's open-file limit leaves
// room for: each holds a socket, and the node keeps a few hundred files
// for itself (the store, blobs being served, management connections).
// Go raises the soft limit to the hard one at start.
func watcherRoom() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 10_000
	}
	return max(int(min(l.Cur, 1<<20))-512, 64)
}
