// Command deltabench measures mds's offline package deltas against the
// diff tools people use (bsdiff, xdelta3 -9, zstd -19 --patch-from) on
// real versions of an H5 package: each version directory is packed as
// mds offline pack packs it, the canonical forms are what every tool
// diffs, and each delta is applied back and compared byte for byte.
// scripts/bench-offline fetches the reference versions and runs it.
//
//	deltabench [-runs 3] DIR1 DIR2 [DIR3 …]   # consecutive pairs
//
// Every tool runs as a process of its own, so that its peak memory is its
// own (getrusage's maxrss); times are wall-clock medians of the runs.
package main

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delta"
	"github.com/mds-dev/mds/offline"
	"github.com/mds-dev/mds/signing"
)

func main() {
	// The tool's own subcommands, run as children to be measured.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "encode", "apply":
			if err := child(os.Args[1], os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "deltabench:", err)
				os.Exit(1)
			}
			return
		}
	}
	runs := flag.Int("runs", 3, "times each tool builds and applies each delta; times are medians")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: deltabench [-runs N] DIR1 DIR2 [DIR3 …]: the versions of an H5 package, oldest first")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 2 || *runs < 1 || *runs > 20 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Args(), *runs); err != nil {
		fmt.Fprintln(os.Stderr, "deltabench:", err)
		os.Exit(1)
	}
}

// child is encode OLD NEW OUT or apply OLD PATCH OUT, with mds's delta.
func child(cmd string, args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("%s takes three files", cmd)
	}
	old, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	if cmd == "encode" {
		nw, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		patch, err := delta.Encode(old, nw)
		if err != nil {
			return err
		}
		return os.WriteFile(args[2], patch, 0o644)
	}
	patch, err := os.Open(args[1])
	if err != nil {
		return err
	}
	defer patch.Close()
	out, err := os.Create(args[2])
	if err != nil {
		return err
	}
	if _, err := delta.Apply(out, old, patch, 1<<30); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// version is one packed version: its package file and canonical form.
type version struct {
	name            string
	full, canonical string
	fullSize        int64
}

func run(dirs []string, runs int) error {
	work, err := os.MkdirTemp("", "deltabench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	key, err := signing.Generate(signing.Ed25519)
	if err != nil {
		return err
	}
	var versions []version
	for i, dir := range dirs {
		v, err := pack(work, dir, fmt.Sprintf("1.%d.0", i), key)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		versions = append(versions, v)
		fmt.Fprintf(os.Stderr, "packed %s: %d files, %d bytes packed, canonical form %d bytes\n", dir, countFiles(dir), v.fullSize, size(v.canonical))
	}
	tools := []tool{
		{name: "mds", encode: []string{self, "encode", "{old}", "{new}", "{out}"}, apply: []string{self, "apply", "{old}", "{patch}", "{out}"}},
		{name: "bsdiff", encode: []string{"bsdiff", "{old}", "{new}", "{out}"}, apply: []string{"bspatch", "{old}", "{out}", "{patch}"}},
		{name: "xdelta3 -9", encode: []string{"xdelta3", "-9", "-f", "-e", "-s", "{old}", "{new}", "{out}"}, apply: []string{"xdelta3", "-f", "-d", "-s", "{old}", "{patch}", "{out}"}},
		{name: "zstd -19 --long=27 --patch-from", encode: []string{"zstd", "-q", "-f", "-19", "--long=27", "--patch-from={old}", "{new}", "-o", "{out}"},
			apply: []string{"zstd", "-q", "-f", "-d", "--long=27", "--patch-from={old}", "{patch}", "-o", "{out}"}},
	}
	fmt.Printf("| pair | tool | delta bytes | %% of full package | build s (median of %d) | build peak MiB | apply s | apply peak MiB |\n", runs)
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for i := 1; i < len(versions); i++ {
		old, nw := versions[i-1], versions[i]
		pair := filepath.Base(dirs[i-1]) + " → " + filepath.Base(dirs[i])
		for _, t := range tools {
			m, err := t.measure(work, old.canonical, nw.canonical, runs)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", pair, t.name, err)
			}
			fmt.Printf("| %s | %s | %d | %.2f%% | %.2f | %.0f | %.3f | %.0f |\n", pair, t.name, m.bytes,
				100*float64(m.bytes)/float64(nw.fullSize), m.build.Seconds(), float64(m.buildRSS)/(1<<20), m.apply.Seconds(), float64(m.applyRSS)/(1<<20))
		}
	}
	fmt.Printf("\nfull package = the deflated package file mds offline pack writes; every tool diffs the canonical forms (every file stored)\n")
	return nil
}

// pack packs dir as version v and writes its canonical form beside it.
func pack(work, dir, v string, key *signing.PrivateKey) (version, error) {
	var buf bytes.Buffer
	m := offline.Manifest{AppKey: "ak_bench", Package: "bench", Version: v, Type: mds.OfflineNormal, Host: "https://bench.example",
		Entry: "/" + entryOf(dir), Fallback: "https://cdn.example/bench/"}
	if _, err := offline.Pack(&buf, m, dir, key, time.Now()); err != nil {
		return version{}, err
	}
	pkg, err := offline.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), offline.Limits)
	if err != nil {
		return version{}, err
	}
	out := version{name: v, full: filepath.Join(work, v+".zip"), canonical: filepath.Join(work, v+".canonical"), fullSize: int64(buf.Len())}
	if err := os.WriteFile(out.full, buf.Bytes(), 0o644); err != nil {
		return version{}, err
	}
	f, err := os.Create(out.canonical)
	if err != nil {
		return version{}, err
	}
	if _, err := pkg.WriteCanonical(f); err != nil {
		f.Close()
		return version{}, err
	}
	return out, f.Close()
}

// entryOf is a file of dir to name as the entry page: index.html when
// there is one, else the first file.
func entryOf(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err == nil {
		return "index.html"
	}
	var first string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && first == "" && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			first = filepath.ToSlash(rel)
		}
		return err
	})
	return first
}

func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	return n
}

func size(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// tool is a diff tool: how to build a delta and apply it, with
// placeholders for the files.
type tool struct {
	name          string
	encode, apply []string
}

type measurement struct {
	bytes              int64
	build, apply       time.Duration
	buildRSS, applyRSS int64
}

// measure builds and applies the delta old→new runs times, checking each
// result, and returns the delta's size, the median times and the largest
// peak memory.
func (t tool) measure(work, old, nw string, runs int) (measurement, error) {
	var m measurement
	var builds, applies []time.Duration
	patch, out := filepath.Join(work, "patch"), filepath.Join(work, "out")
	want, err := digest(nw)
	if err != nil {
		return m, err
	}
	for range runs {
		os.Remove(patch)
		took, rss, err := timed(fill(t.encode, old, nw, patch, ""))
		if err != nil {
			return m, fmt.Errorf("building: %w", err)
		}
		builds, m.buildRSS = append(builds, took), max(m.buildRSS, rss)
		m.bytes = size(patch)
		os.Remove(out)
		took, rss, err = timed(fill(t.apply, old, "", out, patch))
		if err != nil {
			return m, fmt.Errorf("applying: %w", err)
		}
		applies, m.applyRSS = append(applies, took), max(m.applyRSS, rss)
		if got, err := digest(out); err != nil || got != want {
			return m, fmt.Errorf("the delta does not rebuild the new version (%v)", err)
		}
	}
	m.build, m.apply = median(builds), median(applies)
	return m, nil
}

func fill(args []string, old, nw, out, patch string) []string {
	r := strings.NewReplacer("{old}", old, "{new}", nw, "{out}", out, "{patch}", patch)
	filled := make([]string, len(args))
	for i, a := range args {
		filled[i] = r.Replace(a)
	}
	return filled
}

// timed runs args and returns its wall time and peak resident memory.
func timed(args []string) (time.Duration, int64, error) {
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss << 10 // kilobytes on Linux
	}
	return took, rss, nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(d))
	return s[len(s)/2]
}

func digest(path string) ([32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, err
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}
