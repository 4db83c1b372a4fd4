// Package proc is what the benchmark commands need of the processes they
// measure: building mds, and reading a process's memory and CPU time from
// /proc (Linux).
package proc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// BuildMDS builds cmd/mds of the module in the working directory into
// dir and returns the binary's path.
func BuildMDS(dir string) (string, error) {
	bin := filepath.Join(dir, "mds")
	build := exec.Command("go", "build", "-o", bin, "./cmd/mds")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build mds: %w", err)
	}
	return bin, nil
}

// RSS is process pid's resident memory in bytes; 0 if it cannot be read.
func RSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// CPU is process pid's user and system CPU time so far.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is the first, utime and stime the 12th and 13th.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const userHZ = 100 // clock ticks per second of /proc on Linux
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}
