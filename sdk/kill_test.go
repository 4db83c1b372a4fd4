package sdk

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/hotpatch"
	"github.com/mds-dev/mds/signing"
)

// Big patches: 200 files of 100 kB, 20 MB in all, of random bytes, so
// that they are stored as they are and extracting them is all I/O.
const (
	bigFiles    = 200
	bigFileSize = 100_000
	bigPatches  = 3 // a patch's version picks its file: patch-<version>.zip
)

// bigPatch packs a 20 MB patch of version for the test device, its bytes
// drawn from seed.
func bigPatch(tb testing.TB, key *signing.PrivateKey, seed uint64, version int64) []byte {
	tb.Helper()
	rng := rand.NewChaCha8([32]byte{byte(seed), 1})
	files := patchFiles{}
	for i := range bigFiles {
		b := make([]byte, bigFileSize)
		rng.Read(b)
		files[fmt.Sprintf("dir%02d/file%03d.bin", i%10, i)] = b
	}
	return pack(tb, key, version, files)
}

// killEnv names the environment variable that makes TestKillChild the
// child: its value is the fixture directory.
const killEnv = "MDS_SDK_KILL_CHILD"

// The fixture directory of the kill test.
const (
	fixtureServerKey = "server.pem"
	fixtureTeamKey   = "team.pub.pem"
	fixtureState     = "state"
)

// fixturePatch is the file of the patches of version v, 1 to bigPatches.
func fixturePatch(v int64) string { return fmt.Sprintf("patch-%d.zip", v) }

// TestKillDuringApply kills, with SIGKILL, a child process applying 20 MB
// patches in a loop over one state directory, at moments chosen to hit
// extraction (once its temporary directory appears) and at random ones,
// and checks after each kill that the directory opens and that every
// patch the state names is there, complete, every file matching its
// manifest. A kill is what a crash, an OOM kill or a power loss does to
// the process; the last also loses unsynced writes, which the SDK's
// fsyncs are for but which no test on a running kernel can show.
func TestKillDuringApply(t *testing.T) {
	if testing.Short() {
		t.Skip("packs and applies 20 MB patches")
	}
	fx := t.TempDir()
	server, team := mustKey(t, signing.ECDSAP256), mustKey(t, signing.Ed25519)
	pem, err := server.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(fx, fixtureServerKey), pem)
	writeFile(t, filepath.Join(fx, fixtureTeamKey), team.Public().MarshalPEM())
	manifests := map[int64]*hotpatch.Manifest{} // by patch version
	for v := int64(1); v <= bigPatches; v++ {
		data := bigPatch(t, team, uint64(v), v)
		writeFile(t, filepath.Join(fx, fixturePatch(v)), data)
		pkg, err := hotpatch.Open(bytes.NewReader(data), int64(len(data)), hotpatch.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		manifests[v] = pkg.Manifest
	}
	state := filepath.Join(fx, fixtureState)
	cfg := Config{
		Server:     "http://127.0.0.1:1",
		Device:     mds.Device{AppKey: testApp, Platform: mds.Android, AppVersion: testAppVersion, DeviceID: "d"},
		ServerKeys: []*signing.PublicKey{server.Public()},
		TeamKeys:   []*signing.PublicKey{team.Public()},
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	applied, duringExtraction := 0, 0
	const rounds = 10
	for round := range rounds {
		out, hit := killRound(t, rng, round, "TestKillChild", killEnv+"="+fx, filepath.Join(state, patchesDir))
		if hit {
			duringExtraction++
		}
		applied += strings.Count(out, "applied ")

		c, err := Open(state, cfg)
		if err != nil {
			t.Fatalf("round %d: after the kill the state does not open: %v", round, err)
		}
		st := c.Status()
		named := []*Patch{st.Current, st.Previous}
		for _, p := range c.st.Retired {
			named = append(named, c.public(p))
		}
		var want []string
		for _, p := range named {
			if p != nil {
				checkAgainstManifest(t, p.Dir, manifests[p.PatchVersion])
				want = append(want, fmt.Sprint(p.ID))
			}
		}
		if st.Pending && st.Current == nil {
			t.Fatalf("round %d: pending with no current patch", round)
		}
		assertPatchDirs(t, state, want...)
		t.Logf("round %d: current %v, previous %v, pending %v, %d retired", round, st.Current, st.Previous, st.Pending, len(c.st.Retired))
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if applied == 0 || duringExtraction == 0 {
		t.Fatalf("the kills hit %d extractions after %d applies: the test tested nothing", duringExtraction, applied)
	}
	t.Logf("%d applies, %d kills during an extraction", applied, duringExtraction)
}

// killRound starts test child as a process of its own with env set, kills
// it with SIGKILL, in even rounds once a temporary directory appears in
// tmpDir (an extraction under way), and in odd ones at a random moment,
// and returns what it printed and whether the kill hit an extraction.
func killRound(t *testing.T, rng *rand.Rand, round int, child, env, tmpDir string) (string, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	hit := false
	if round%2 == 0 {
		// Into an extraction: once its directory appears, after a few
		// milliseconds more.
		if hit = waitForTemp(tmpDir, exited, 30*time.Second); hit {
			time.Sleep(time.Duration(rng.IntN(30_000)) * time.Microsecond)
		}
	} else {
		time.Sleep(time.Duration(50+rng.IntN(2000)) * time.Millisecond)
	}
	select {
	case <-exited:
		t.Fatalf("round %d: the child exited before it was killed:\n%s", round, out.String())
	default:
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	if strings.Contains(out.String(), "--- FAIL") {
		t.Fatalf("round %d: the child failed:\n%s", round, out.String())
	}
	return out.String(), hit
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitForTemp waits until dir holds a temporary patch directory, and
// reports whether one appeared before the child exited or the time ran
// out.
func waitForTemp(dir string, exited <-chan struct{}, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				return true
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	return false
}

// checkAgainstManifest checks that dir holds exactly m's files, each of
// its size and hash.
func checkAgainstManifest(t *testing.T, dir string, m *hotpatch.Manifest) {
	t.Helper()
	want := map[string]hotpatch.File{}
	for _, f := range m.Files {
		want[f.Path] = f
	}
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		f, ok := want[filepath.ToSlash(rel)]
		if !ok {
			return fmt.Errorf("%s is not in the manifest", rel)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if sum := sha256.Sum256(b); int64(len(b)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
			return fmt.Errorf("%s does not match its manifest entry", rel)
		}
		n++
		return nil
	})
	if err == nil && n != len(m.Files) {
		err = fmt.Errorf("%d of %d files", n, len(m.Files))
	}
	if err != nil {
		t.Fatalf("patch directory %s: %v", dir, err)
	}
}

// TestKillChild is the child of TestKillDuringApply: it serves the
// fixture's patches and answers from an in-process server and applies,
// rolls back, launches and confirms at random, until it is killed.
func TestKillChild(t *testing.T) {
	fx := os.Getenv(killEnv)
	if fx == "" {
		t.Skip("run by TestKillDuringApply")
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(fx, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	server, err := signing.ParsePrivateKeyPEM(read(fixtureServerKey))
	if err != nil {
		t.Fatal(err)
	}
	team, err := signing.ParsePublicKeyPEM(read(fixtureTeamKey))
	if err != nil {
		t.Fatal(err)
	}
	patches := map[string][]byte{}
	shaOf := map[int64]string{} // by patch version
	for v := int64(1); v <= bigPatches; v++ {
		b := read(fixturePatch(v))
		sum := sha256.Sum256(b)
		shaOf[v] = hex.EncodeToString(sum[:])
		patches[shaOf[v]] = b
	}

	var mu sync.Mutex
	var hot *HotpatchInstruction
	mux := http.NewServeMux()
	mux.HandleFunc("POST /client/v1/check", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		// Versions from the wall clock grow across children too.
		doc := answerDoc{App: testApp, Version: time.Now().UnixNano(), Expires: time.Now().Add(time.Hour), Hotpatch: hot}
		mu.Unlock()
		var d mds.Device
		json.NewDecoder(r.Body).Decode(&d)
		doc.Device = echo(d)
		body, _ := json.Marshal(doc)
		w.Header().Set("Mds-Signature", signatureOf(t, server, body))
		w.Write(body)
	})
	mux.HandleFunc("GET /client/v1/blobs/{sha}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(patches[r.PathValue("sha")]))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	c, err := Open(filepath.Join(fx, fixtureState), Config{
		Server:     srv.URL,
		Device:     mds.Device{AppKey: testApp, Platform: mds.Android, AppVersion: testAppVersion, DeviceID: "d"},
		ServerKeys: []*signing.PublicKey{server.Public()},
		TeamKeys:   []*signing.PublicKey{team},
	})
	if err != nil {
		t.Fatal(err)
	}
	instruction := func(action string, id, version int64) *HotpatchInstruction {
		sha := shaOf[version]
		return &HotpatchInstruction{Action: action, PatchID: id, PatchVersion: version, URL: "/client/v1/blobs/" + sha,
			SHA256: sha, Size: int64(len(patches[sha])), KeyID: team.ID()}
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	for start := time.Now(); time.Since(start) < time.Minute; {
		st := c.Status()
		// Applies go up in patch version from the running patch's, and
		// when they cannot, a rollback starts over.
		next := int64(1)
		if st.Running != nil {
			next = st.Running.PatchVersion + 1
		}
		var h *HotpatchInstruction
		switch r := rng.IntN(10); {
		case r < 7 && next <= bigPatches:
			h = instruction(ActionApply, time.Now().UnixMicro(), next)
		case r < 9 && st.Previous != nil:
			h = instruction(ActionRollback, st.Previous.ID, st.Previous.PatchVersion)
		default:
			h = &HotpatchInstruction{Action: ActionRollback}
		}
		mu.Lock()
		hot = h
		mu.Unlock()
		a, err := c.Check(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Apply(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("applied %s %v\n", res.Outcome, res.Patch)
		if rng.IntN(2) == 0 {
			if _, err := c.Start(); err != nil {
				t.Fatal(err)
			}
		}
		if rng.IntN(2) == 0 {
			if err := c.MarkHealthy(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Fatal("not killed within a minute")
}

// BenchmarkApply20MB applies a 20 MB patch of 200 files already
// downloaded: hashing the download again, opening and verifying the
// package, extracting and syncing every file, renaming it into place,
// committing the state and removing the patch it replaces.
func BenchmarkApply20MB(b *testing.B) {
	team := mustKey(b, signing.Ed25519)
	data := bigPatch(b, team, 1, 1)
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	c, err := Open(b.TempDir(), Config{
		Server:     "http://127.0.0.1:1", // never asked: the file is there
		Device:     mds.Device{AppKey: testApp, Platform: mds.Android, AppVersion: testAppVersion, DeviceID: "d"},
		ServerKeys: []*signing.PublicKey{mustKey(b, signing.Ed25519).Public()},
		TeamKeys:   []*signing.PublicKey{team.Public()},
		Now:        func() time.Time { return now },
	})
	if err != nil {
		b.Fatal(err)
	}
	download := c.path(downloadsDir + "/" + sha)
	b.SetBytes(int64(len(data)))
	id := int64(0)
	for b.Loop() {
		b.StopTimer()
		id++
		// Apply removes the download once it is installed.
		if err := os.WriteFile(download, data, 0o600); err != nil {
			b.Fatal(err)
		}
		h := &HotpatchInstruction{Action: ActionApply, PatchID: id, PatchVersion: 1, URL: "/x", SHA256: sha, Size: int64(len(data)), KeyID: team.Public().ID()}
		// Each patch is applied over one no launch ran, and the app runs
		// none: the answer is for a device running none.
		a := &Answer{App: testApp, Version: 1, Expires: now.Add(time.Hour), Hotpatch: h, verified: true,
			Device: AnswerDevice{Platform: mds.Android, AppVersion: testAppVersion}}
		b.StartTimer()
		if r, err := c.Apply(b.Context(), a); err != nil || r.Outcome != OutcomeApplied {
			b.Fatal(r, err)
		}
	}
}
