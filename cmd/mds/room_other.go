//go:build !unix

package main

import "github.com/mds-dev/mds/watch"

// watcherRoom is the hub's default where the open-file limit is not read.
func watcherRoom() int { return watch.DefaultMax }
