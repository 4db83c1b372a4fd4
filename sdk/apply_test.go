package sdk

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mds-dev/mds/hotpatch"
	"github.com/mds-dev/mds/hotpatch/hotpatchtest"
	"github.com/mds-dev/mds/signing"
)

func TestApply(t *testing.T) {
	e := newEnv(t)
	data, files := e.patch(1)
	r := e.mustFollow(e.srv.instruction(ActionApply, 12, 1, data, e.team.Public().ID()))
	dir := filepath.Join(e.dir, "patches", "12")
	if r.Outcome != OutcomeApplied || r.Patch == nil || r.Patch.ID != 12 || r.Patch.PatchVersion != 1 || r.Patch.Dir != dir || r.From != nil || !r.Downloaded {
		t.Fatalf("result %+v", r)
	}
	assertFiles(t, dir, files)
	if e.c.PatchDir() != dir {
		t.Errorf("PatchDir %q", e.c.PatchDir())
	}
	st := e.c.Status()
	if !st.Pending || st.Launched || st.Current.ID != 12 || st.Previous != nil || st.Running != nil {
		t.Errorf("status %+v", st)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.dir, "downloads")); len(entries) != 0 {
		t.Errorf("downloads kept after the apply: %v", entries)
	}
	// Every check reports the patch the app runs: until a launch runs
	// patch 12, none.
	e.check()
	if p := e.srv.lastCheck().device.Hotpatch; p != nil {
		t.Errorf("the check reported %+v before any launch ran it", p)
	}
	// MarkHealthy confirms what runs, not a patch no launch ran.
	if err := e.c.MarkHealthy(); err != nil {
		t.Fatal(err)
	}
	if st := e.c.Status(); !st.Pending {
		t.Errorf("MarkHealthy confirmed a patch no launch ran: %+v", st)
	}
	e.launch()
	if st := e.c.Status(); st.Running == nil || st.Running.ID != 12 {
		t.Errorf("launched: %+v", st)
	}
	e.check()
	if p := e.srv.lastCheck().device.Hotpatch; p == nil || p.ID != 12 || p.PatchVersion != 1 {
		t.Errorf("the check reported %+v", p)
	}
	// The same instruction again: nothing to do, nothing downloaded.
	gets := e.srv.getCount()
	if r := e.mustFollow(e.srv.instruction(ActionApply, 12, 1, data, "")); r.Outcome != OutcomeNothing || r.Patch.ID != 12 {
		t.Errorf("again: %+v", r)
	}
	if e.srv.getCount() != gets {
		t.Error("downloaded the patch it runs")
	}
	// The state survives a restart.
	e.c = e.open()
	if st := e.c.Status(); st.Current == nil || st.Current.ID != 12 || !st.Pending || !st.Launched {
		t.Errorf("after reopening: %+v", st)
	}
}

func TestApplyNothing(t *testing.T) {
	e := newEnv(t)
	if r := e.mustFollow(nil); r.Outcome != OutcomeNothing || r.Patch != nil {
		t.Errorf("no instruction: %+v", r)
	}
	if r := e.mustFollow(&HotpatchInstruction{Action: "defer", PatchID: 3}); r.Outcome != OutcomeNothing {
		t.Errorf("an unknown action: %+v", r)
	}
	if r := e.mustFollow(&HotpatchInstruction{Action: ActionRollback}); r.Outcome != OutcomeNothing {
		t.Errorf("rollback to none with none: %+v", r)
	}
	if _, err := e.c.Apply(t.Context(), &Answer{Version: 99, Hotpatch: &HotpatchInstruction{Action: ActionApply}}); !errors.Is(err, ErrUntrustedAnswer) {
		t.Errorf("an answer Check did not return: %v", err)
	}
}

func TestApplyOfOldAnswerRefused(t *testing.T) {
	e := newEnv(t)
	data, _ := e.patch(1)
	e.srv.answer(e.srv.instruction(ActionApply, 12, 1, data, ""))
	old := e.check()
	e.srv.answer(nil)
	e.check()
	before := e.snapshot()
	if _, err := e.c.Apply(t.Context(), old); !errors.Is(err, ErrReplay) {
		t.Fatalf("apply of a superseded answer: %v", err)
	}
	e.assertUnchanged(before)
}

func TestDownloadTooLong(t *testing.T) {
	e := newEnv(t)
	data, _ := e.patch(1)
	h := e.srv.instruction(ActionApply, 12, 1, data, "")
	e.srv.set(func(f *fakeServer) { f.extra = bytes.Repeat([]byte{0}, 1<<20) })
	if err := e.refused(h); !errors.Is(err, ErrTooLong) {
		t.Fatalf("endless body: %v", err)
	}
	assertNoDownloads(t, e.dir)

	// A Content-Length over the size is refused before reading.
	small := *h
	small.Size--
	e.srv.set(func(f *fakeServer) { f.extra = nil })
	if err := e.refused(&small); !errors.Is(err, ErrTooLong) {
		t.Fatalf("declared longer: %v", err)
	}
	assertNoDownloads(t, e.dir)

	// And an answer whose size exceeds the device's cap is refused
	// before anything is downloaded.
	cfg := e.config()
	cfg.MaxPatchSize = h.Size - 1
	c := e.openWith(cfg)
	gets := e.srv.getCount()
	if _, err := c.Download(t.Context(), h); !errors.Is(err, ErrTooLong) || e.srv.getCount() != gets {
		t.Fatalf("over the cap: %v", err)
	}
}

func assertNoDownloads(t *testing.T, dir string) {
	t.Helper()
	if entries, _ := os.ReadDir(filepath.Join(dir, "downloads")); len(entries) != 0 {
		t.Errorf("a refused download was kept: %v", entries[0].Name())
	}
}

func TestDownloadHashMismatch(t *testing.T) {
	e := newEnv(t)
	data, _ := e.patch(1)
	other, _ := e.patch(2)
	h := e.srv.instruction(ActionApply, 12, 1, data, "")
	// The server serves another file of the same size under the hash.
	other = append(other, make([]byte, len(data)-len(other))...)
	e.srv.set(func(f *fakeServer) { f.files[h.SHA256] = other[:len(data)] })
	if err := e.refused(h); !errors.Is(err, ErrHashMismatch) || e.srv.getCount() != 1 {
		t.Fatalf("%v, after %d downloads", err, e.srv.getCount())
	}
	assertNoDownloads(t, e.dir)
}

// TestDownloadResumes: a download cut off keeps what arrived, and the
// next call asks only for the rest.
func TestDownloadResumes(t *testing.T) {
	e := newEnv(t)
	data, files := e.patch(1)
	h := e.srv.instruction(ActionApply, 12, 1, data, "")
	half := len(data) / 2
	e.srv.set(func(f *fakeServer) { f.cut = half })
	_, err := e.follow(h)
	if err == nil || errors.Is(err, ErrHashMismatch) || errors.Is(err, ErrTooLong) {
		t.Fatalf("cut download: %v", err)
	}
	part := filepath.Join(e.dir, "downloads", h.SHA256+".part")
	if fi, err := os.Stat(part); err != nil || fi.Size() != int64(half) {
		t.Fatalf("the part after the cut: %v %v", fi, err)
	}
	// A new launch resumes it.
	e.c = e.open()
	r, err := e.c.Apply(t.Context(), e.check())
	if err != nil || r.Outcome != OutcomeApplied {
		t.Fatalf("resumed apply: %+v %v", r, err)
	}
	assertFiles(t, r.Patch.Dir, files)
	e.srv.mu.Lock()
	gets := slices.Clone(e.srv.gets)
	e.srv.mu.Unlock()
	if len(gets) != 2 || gets[1].rangeHeader != "bytes="+strconv.Itoa(half)+"-" || gets[1].sent != int64(len(data)-half) {
		t.Fatalf("requests %+v, want a second asking bytes=%d- and sent %d bytes", gets, half, len(data)-half)
	}
}

// TestDownloadStartsOverOn200: a server that ignores Range sends the
// file whole, and the part is rewritten from its start.
func TestDownloadStartsOverOn200(t *testing.T) {
	e := newEnv(t)
	data, _ := e.patch(1)
	h := e.srv.instruction(ActionApply, 12, 1, data, "")
	part := filepath.Join(e.dir, "downloads", h.SHA256+".part")
	// A part whose bytes are not the file's start: the server sends the
	// file whole anyway, which replaces them.
	if err := os.WriteFile(part, bytes.Repeat([]byte("x"), 100), 0o600); err != nil {
		t.Fatal(err)
	}
	e.srv.set(func(f *fakeServer) { f.ignoreRange = true })
	path, err := e.c.Download(t.Context(), h)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, data) {
		t.Fatal("the download is not the file")
	}
	// Done: a second call is served from disk.
	gets := e.srv.getCount()
	if _, err := e.c.Download(t.Context(), h); err != nil || e.srv.getCount() != gets {
		t.Fatalf("second download: %v, %d requests", err, e.srv.getCount()-gets)
	}
	// A bad prefix (as a crash can leave) and a server honouring Range:
	// the rest, a mismatch, then the whole file once more before the
	// server is blamed.
	os.Remove(path)
	os.WriteFile(part, bytes.Repeat([]byte("x"), 100), 0o600)
	e.srv.set(func(f *fakeServer) { f.ignoreRange = false; f.gets = nil })
	if _, err := e.c.Download(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	if g := e.srv.gets; len(g) != 2 || g[0].rangeHeader != "bytes=100-" || g[1].rangeHeader != "" {
		t.Errorf("requests %+v: want the rest, then the whole file", g)
	}
}

func TestUnknownTeamKeyRefused(t *testing.T) {
	e := newEnv(t)
	stranger := mustKey(t, signing.ECDSAP256)
	data := pack(t, stranger, 1, patchFiles{"a": []byte("a")})
	// The answer says who signed: refused before downloading.
	if err := e.refused(e.srv.instruction(ActionApply, 12, 1, data, stranger.Public().ID())); !errors.Is(err, ErrUnknownTeamKey) || e.srv.getCount() != 0 {
		t.Fatalf("answer naming an unknown key: %v (%d downloads)", err, e.srv.getCount())
	}
	// The answer claims a trusted key: the manifest says otherwise.
	if err := e.refused(e.srv.instruction(ActionApply, 12, 1, data, e.team.Public().ID())); !errors.Is(err, ErrUnknownTeamKey) {
		t.Fatalf("manifest signed by an unknown key: %v", err)
	}
}

// TestTamperedPatchRefused: a patch changed after the team signed it,
// served under its new hash (so the download passes). A changed byte of a
// file's content fails the file check as the file is extracted
// (hotpatch.ErrCorrupt, as ErrBadPatch); a changed manifest, with the
// zip's CRC fixed to match, fails the team signature
// (ErrBadPatchSignature).
func TestTamperedPatchRefused(t *testing.T) {
	e := newEnv(t)
	data, files := e.patch(1)
	i := bytes.Index(data, files["lib/arm64/libfix.so"])
	if i < 0 {
		t.Fatal("the file is not stored as is")
	}
	flipped := slices.Clone(data)
	flipped[i] ^= 1
	err := e.refused(e.srv.instruction(ActionApply, 12, 1, flipped, ""))
	if !errors.Is(err, ErrBadPatch) || !errors.Is(err, hotpatch.ErrCorrupt) {
		t.Fatalf("a flipped file byte: %v", err)
	}

	forged := rezip(t, data, func(name string, b []byte) []byte {
		if name == hotpatch.ManifestName {
			return bytes.Replace(b, []byte("fix the checkout"), []byte("fix the checkouT"), 1)
		}
		return b
	})
	err = e.refused(e.srv.instruction(ActionApply, 12, 1, forged, ""))
	if !errors.Is(err, ErrBadPatchSignature) || !errors.Is(err, hotpatch.ErrBadSignature) {
		t.Fatalf("a changed manifest: %v", err)
	}
}

// rezip rewrites a zip with edit applied to each entry's content, the
// CRCs computed afresh, each entry's sizes in its local header.
func rezip(t *testing.T, data []byte, edit func(name string, b []byte) []byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var entries []hotpatchtest.Entry
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		entries = append(entries, hotpatchtest.Entry{Name: f.Name, Content: edit(f.Name, b), Method: zip.Store})
	}
	return hotpatchtest.BuildZip(t, entries)
}

func TestPatchMismatchRefused(t *testing.T) {
	e := newEnv(t)
	other := pack(t, e.team, 1, patchFiles{"a": []byte("a")}, hotpatch.Target{AppVersion: "1.9.0"})
	if err := e.refused(e.srv.instruction(ActionApply, 12, 1, other, "")); !errors.Is(err, ErrPatchMismatch) {
		t.Fatalf("another app version: %v", err)
	}
	build := pack(t, e.team, 1, patchFiles{"a": []byte("a")}, hotpatch.Target{AppVersion: testAppVersion, Build: testBuild + 1})
	if err := e.refused(e.srv.instruction(ActionApply, 12, 1, build, "")); !errors.Is(err, ErrPatchMismatch) {
		t.Fatalf("another build: %v", err)
	}
	// The answer names version 2 of a file that is version 1: a signed
	// patch swapped for another.
	data, _ := e.patch(1)
	if err := e.refused(e.srv.instruction(ActionApply, 12, 2, data, "")); !errors.Is(err, ErrPatchMismatch) {
		t.Fatalf("another patch version: %v", err)
	}
	// A target of this version and build, among others, matches.
	ok := pack(t, e.team, 1, patchFiles{"a": []byte("a")}, hotpatch.Target{AppVersion: "1.9.0"}, hotpatch.Target{AppVersion: testAppVersion, Build: testBuild})
	if _, err := e.follow(e.srv.instruction(ActionApply, 12, 1, ok, "")); err != nil {
		t.Fatalf("matching build: %v", err)
	}
}

func TestRollbackToPrevious(t *testing.T) {
	e := newEnv(t)
	one, files1 := e.patch(1)
	two, files2 := e.patch(2)
	e.mustFollow(e.srv.instruction(ActionApply, 1, 1, one, ""))
	e.runsHealthy()
	r := e.mustFollow(e.srv.instruction(ActionApply, 2, 2, two, ""))
	if r.From == nil || r.From.ID != 1 || r.Patch.ID != 2 {
		t.Fatalf("apply 2: %+v", r)
	}
	if st := e.c.Status(); st.Previous == nil || st.Previous.ID != 1 {
		t.Fatalf("previous after apply 2: %+v", st)
	}
	e.runsHealthy()
	gets := e.srv.getCount()
	rb := e.srv.instruction(ActionRollback, 1, 1, one, "")
	r = e.mustFollow(rb)
	if r.Outcome != OutcomeRolledBack || r.Patch == nil || r.Patch.ID != 1 || r.From.ID != 2 || r.Downloaded || e.srv.getCount() != gets {
		t.Fatalf("rollback: %+v, %d downloads", r, e.srv.getCount()-gets)
	}
	assertFiles(t, r.Patch.Dir, files1)
	st := e.c.Status()
	if st.Pending || st.Previous != nil || st.Current.ID != 1 || st.Running.ID != 1 {
		t.Errorf("after rollback: %+v", st)
	}
	// The app may still load the withdrawn patch's files until it
	// restarts: they stay, also across a crash, until the next Start.
	assertFiles(t, filepath.Join(e.dir, "patches", "2"), files2)
	e.c = e.open()
	assertFiles(t, filepath.Join(e.dir, "patches", "2"), files2)
	if st := e.launch(); st.Current.ID != 1 {
		t.Fatalf("launch after the rollback: %+v", st)
	}
	assertPatchDirs(t, e.dir, "1")

	// A rollback to a patch not kept downloads it.
	e.mustFollow(e.srv.instruction(ActionApply, 2, 2, two, ""))
	e.runsHealthy()
	three, _ := e.patch(3)
	e.mustFollow(e.srv.instruction(ActionApply, 3, 3, three, ""))
	e.launch()
	r = e.mustFollow(e.srv.instruction(ActionRollback, 1, 1, one, ""))
	if r.Outcome != OutcomeRolledBack || r.Patch.ID != 1 || !r.Downloaded || r.From.ID != 3 {
		t.Fatalf("rollback to a patch not kept: %+v", r)
	}
	assertPatchDirs(t, e.dir, "1", "3")
	e.launch()
	assertPatchDirs(t, e.dir, "1")
}

// TestRetiredNeverRuns: a patch rolled back from while it ran is neither
// reinstalled over its own files, nor taken back by a rollback or a
// revert, before the next launch removes it.
func TestRetiredNeverRuns(t *testing.T) {
	e := newEnv(t)
	one, _ := e.patch(1)
	two, files2 := e.patch(2)
	three, _ := e.patch(3)
	e.mustFollow(e.srv.instruction(ActionApply, 1, 1, one, ""))
	e.runsHealthy()
	e.mustFollow(e.srv.instruction(ActionApply, 2, 2, two, ""))
	e.runsHealthy()
	e.mustFollow(e.srv.instruction(ActionRollback, 1, 1, one, ""))
	// The server (or one holding its key) names patch 2 again.
	for _, h := range []*HotpatchInstruction{
		e.srv.instruction(ActionApply, 2, 2, two, ""),
		e.srv.instruction(ActionRollback, 2, 2, two, ""),
	} {
		e.srv.answer(h)
		a := e.check()
		before := e.snapshot()
		if _, err := e.c.Apply(t.Context(), a); err == nil || !strings.Contains(err.Error(), "until the next launch") {
			t.Errorf("%s of the retired patch: %v", h.Action, err)
		}
		e.assertUnchanged(before)
	}
	assertFiles(t, filepath.Join(e.dir, "patches", "2"), files2)
	// A patch applied now, launched and never confirmed, reverts to
	// patch 1, the one that ran when it was applied: never to patch 2.
	e.mustFollow(e.srv.instruction(ActionApply, 3, 3, three, ""))
	e.launch()
	if st := e.launch(); st.Reverted == nil || st.Current == nil || st.Current.ID != 1 {
		t.Fatalf("revert: %+v", st)
	}
	assertPatchDirs(t, e.dir, "1")
}

func TestRollbackToNone(t *testing.T) {
	e := newEnv(t)
	one, _ := e.patch(1)
	two, _ := e.patch(2)
	e.mustFollow(e.srv.instruction(ActionApply, 1, 1, one, ""))
	e.runsHealthy()
	e.mustFollow(e.srv.instruction(ActionApply, 2, 2, two, ""))
	e.launch()
	r := e.mustFollow(&HotpatchInstruction{Action: ActionRollback, PatchID: 0})
	if r.Outcome != OutcomeRolledBack || r.Patch != nil || r.From.ID != 2 {
		t.Fatalf("rollback to none: %+v", r)
	}
	if st := e.c.Status(); st.Current != nil || st.Previous != nil || st.Pending || e.c.PatchDir() != "" {
		t.Errorf("after: %+v", st)
	}
	assertPatchDirs(t, e.dir, "2") // until the next launch
	e.check()
	if p := e.srv.lastCheck().device.Hotpatch; p != nil {
		t.Errorf("the check still reports patch %+v", p)
	}
}

func assertPatchDirs(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "patches"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("patches/ holds %v, want %v", got, want)
	}
}

// TestRevertOfUnconfirmedPatch: a patch launched and never confirmed is
// reverted at the next launch, and never applied again.
func TestRevertOfUnconfirmedPatch(t *testing.T) {
	e := newEnv(t)
	one, files1 := e.patch(1)
	two, _ := e.patch(2)
	e.mustFollow(e.srv.instruction(ActionApply, 1, 1, one, ""))
	e.runsHealthy()
	e.mustFollow(e.srv.instruction(ActionApply, 2, 2, two, ""))

	e.c = e.open()
	st, err := e.c.Start()
	if err != nil || st.Current.ID != 2 || !st.Pending || !st.Launched || st.Reverted != nil {
		t.Fatalf("first launch: %+v %v", st, err)
	}
	// The app crashed before MarkHealthy; it launches again.
	e.c = e.open()
	st, err = e.c.Start()
	if err != nil || st.Current == nil || st.Current.ID != 1 || st.Pending || st.Reverted == nil || st.Reverted.ID != 2 || !slices.Equal(st.Bad, []int64{2}) {
		t.Fatalf("second launch: %+v %v", st, err)
	}
	assertFiles(t, e.c.PatchDir(), files1)
	assertPatchDirs(t, e.dir, "1")
	// A third launch runs patch 1 as it is.
	if st, _ := e.c.Start(); st.Current.ID != 1 || st.Reverted != nil {
		t.Fatalf("third launch: %+v", st)
	}
	gets := e.srv.getCount()
	r := e.mustFollow(e.srv.instruction(ActionApply, 2, 2, two, ""))
	if r.Outcome != OutcomeSkippedBad || r.Bad != 2 || r.Patch.ID != 1 || e.srv.getCount() != gets {
		t.Fatalf("apply of the bad patch: %+v", r)
	}
	// A rollback to the bad patch goes to no patch instead.
	three, _ := e.patch(3)
	e.mustFollow(e.srv.instruction(ActionApply, 3, 3, three, ""))
	e.launch()
	r = e.mustFollow(e.srv.instruction(ActionRollback, 2, 2, two, ""))
	if r.Outcome != OutcomeRolledBack || r.Patch != nil || r.Bad != 2 {
		t.Fatalf("rollback to the bad patch: %+v", r)
	}
}

func TestMarkHealthyKeeps(t *testing.T) {
	e := newEnv(t)
	one, _ := e.patch(1)
	e.mustFollow(e.srv.instruction(ActionApply, 1, 1, one, ""))
	if _, err := e.c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := e.c.MarkHealthy(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		e.c = e.open()
		st, err := e.c.Start()
		if err != nil || st.Current == nil || st.Current.ID != 1 || st.Pending || st.Reverted != nil || len(st.Bad) != 0 {
			t.Fatalf("launch after MarkHealthy: %+v %v", st, err)
		}
	}
}

// TestApplyWhilePending: a patch applied over a pending one keeps the
// patch the app runs now as the previous: the pending one once a launch
// ran it, else the one before it, and the pending one, never run, goes.
func TestApplyWhilePending(t *testing.T) {
	e := newEnv(t)
	one, _ := e.patch(1)
	two, _ := e.patch(2)
	three, _ := e.patch(3)
	four, _ := e.patch(4)
	e.mustFollow(e.srv.instruction(ActionApply, 1, 1, one, ""))
	e.runsHealthy()
	e.mustFollow(e.srv.instruction(ActionApply, 2, 2, two, ""))
	r := e.mustFollow(e.srv.instruction(ActionApply, 3, 3, three, ""))
	if r.From.ID != 2 || r.Patch.ID != 3 {
		t.Fatalf("%+v", r)
	}
	st := e.c.Status()
	if st.Previous == nil || st.Previous.ID != 1 || !st.Pending {
		t.Fatalf("over a patch never launched: %+v", st)
	}
	assertPatchDirs(t, e.dir, "1", "3")

	// Launched: this process runs patch 3, whose files must stay.
	e.c.Start()
	e.mustFollow(e.srv.instruction(ActionApply, 4, 4, four, ""))
	st = e.c.Status()
	if st.Previous == nil || st.Previous.ID != 3 || st.Current.ID != 4 || !st.Pending || st.Launched {
		t.Fatalf("over a launched patch: %+v", st)
	}
	assertPatchDirs(t, e.dir, "3", "4")
}

// TestOpenCleansLeftovers: what a crash leaves in patches/ goes; a
// partial download stays for resuming.
func TestOpenCleansLeftovers(t *testing.T) {
	e := newEnv(t)
	one, _ := e.patch(1)
	e.mustFollow(e.srv.instruction(ActionApply, 1, 1, one, ""))
	for _, d := range []string{".tmp-2-123", "7"} {
		os.MkdirAll(filepath.Join(e.dir, "patches", d, "lib"), 0o755)
	}
	part := filepath.Join(e.dir, "downloads", strings.Repeat("a", 64)+".part")
	os.WriteFile(part, []byte("half"), 0o600)
	os.WriteFile(filepath.Join(e.dir, ".state.json-123"), []byte("{"), 0o600)
	e.c = e.open()
	assertPatchDirs(t, e.dir, "1")
	if _, err := os.Stat(part); err != nil {
		t.Error("the partial download was removed")
	}
	if _, err := os.Stat(filepath.Join(e.dir, ".state.json-123")); !os.IsNotExist(err) {
		t.Error("the temporary state file was kept")
	}
	// A current patch whose directory went is forgotten.
	os.RemoveAll(filepath.Join(e.dir, "patches", "1"))
	e.c = e.open()
	if st := e.c.Status(); st.Current != nil || st.Pending {
		t.Errorf("status with its directory gone: %+v", st)
	}
}

func TestStateFileFormat(t *testing.T) {
	e := newEnv(t)
	one, _ := e.patch(1)
	e.mustFollow(e.srv.instruction(ActionApply, 12, 1, one, ""))
	b, err := os.ReadFile(filepath.Join(e.dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"format": 3`, `"version": 2`, `"etag": "\"`, `"signature": "keyid=`,
		`"current": {`, `"patch_id": 12`, `"dir": "patches/12"`, `"targets": [`, `"app_version": "2.0.0"`,
		`"previous": null`, `"pending": true`, `"launched": false`, `"bad": null`, `"retired": null`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("state.json lacks %s:\n%s", want, b)
		}
	}
	// A state naming a directory outside patches/ is refused.
	os.WriteFile(filepath.Join(e.dir, "state.json"), bytes.Replace(b, []byte(`"patches/12"`), []byte(`"../x"`), 1), 0o600)
	e.c.Close()
	if _, err := Open(e.dir, e.config()); err == nil || !strings.Contains(err.Error(), "patches/<patch_id>") {
		t.Errorf("opened a state naming ../x: %v", err)
	}
}
