package sdk

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/bundle/bundletest"
	"github.com/mds-dev/mds/delta"
	"github.com/mds-dev/mds/offline"
	"github.com/mds-dev/mds/signing"
)

// The offline kill test: versions 1.0.0 to 1.<offlineVersions-1>.0 of a
// package of 100 files of 50 kB, each version changing a few bytes of
// every file, with the delta from each version to the next.
const (
	offlineVersions = 4
	offlineKillEnv  = "MDS_SDK_OFFLINE_KILL_CHILD"
)

func offlineVersion(i int) string { return fmt.Sprintf("1.%d.0", i) }

// offlineFiles are the files of version i: random bytes from one seed,
// with the version stamped at the start of each file.
func offlineFiles(i int) map[string][]byte {
	rng := rand.NewChaCha8([32]byte{9})
	files := map[string][]byte{"index.html": fmt.Appendf(nil, "<title>%s</title>", offlineVersion(i))}
	for f := range 100 {
		b := make([]byte, 50_000)
		rng.Read(b)
		copy(b, fmt.Sprintf("v%s/%d", offlineVersion(i), f))
		files[fmt.Sprintf("assets/%02d/chunk%03d.bin", f%10, f)] = b
	}
	return files
}

// offlineFixture packs every version and builds the deltas, into fx.
func offlineFixture(t *testing.T, fx string, team *signing.PrivateKey) map[string]*offline.Manifest {
	t.Helper()
	manifests := map[string]*offline.Manifest{}
	var prev []byte
	for i := range offlineVersions {
		v := offlineVersion(i)
		dir := t.TempDir()
		bundletest.WriteFiles(t, dir, offlineFiles(i))
		var buf bytes.Buffer
		m, err := offline.Pack(&buf, offline.Manifest{AppKey: testApp, Package: "site", Version: v, Type: mds.OfflineNormal,
			Host: "https://site.example", Entry: "/index.html", Fallback: "https://cdn.example/site/"}, dir, team, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		manifests[v] = m
		pkg, err := offline.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), offline.Limits)
		if err != nil {
			t.Fatal(err)
		}
		var canonical bytes.Buffer
		if _, err := pkg.WriteCanonical(&canonical); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(fx, v+".zip"), buf.Bytes())
		writeFile(t, filepath.Join(fx, v+".canonical"), canonical.Bytes())
		if prev != nil {
			patch, err := delta.Encode(prev, canonical.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(fx, v+".delta"), patch)
		}
		prev = canonical.Bytes()
	}
	return manifests
}

// TestKillDuringOfflineInstall kills, with SIGKILL, a child installing
// versions of an offline package in a loop, by delta and in full, at
// moments chosen to hit an extraction and at random ones, and checks
// after each kill that the state opens, that the version it names, and
// the one before, are there whole, every file matching the manifest, and
// that Resolve serves that version's files.
func TestKillDuringOfflineInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("packs and installs 5 MB packages")
	}
	fx := t.TempDir()
	server, team := mustKey(t, signing.ECDSAP256), mustKey(t, signing.Ed25519)
	pem, err := server.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(fx, fixtureServerKey), pem)
	writeFile(t, filepath.Join(fx, fixtureTeamKey), team.Public().MarshalPEM())
	manifests := offlineFixture(t, fx, team)
	state := filepath.Join(fx, fixtureState)
	cfg := Config{
		Server:     "http://127.0.0.1:1",
		Device:     mds.Device{AppKey: testApp, Platform: mds.Android, AppVersion: testAppVersion, DeviceID: "d"},
		ServerKeys: []*signing.PublicKey{server.Public()},
		TeamKeys:   []*signing.PublicKey{team.Public()},
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	installs, duringExtraction := 0, 0
	const rounds = 10
	for round := range rounds {
		out, hit := killRound(t, rng, round, "TestOfflineKillChild", offlineKillEnv+"="+fx, filepath.Join(state, offlineRoot, "site"))
		if hit {
			duringExtraction++
		}
		installs += strings.Count(out, "installed ")

		c, err := Open(state, cfg)
		if err != nil {
			t.Fatalf("round %d: after the kill the state does not open: %v", round, err)
		}
		held := c.Offline()
		for _, p := range held {
			checkFiles(t, p.Dir, manifests[p.Version])
			if p.Previous != "" {
				checkFiles(t, c.path(offlineDir("site", p.Previous)+"/files"), manifests[p.Previous])
			}
			res, err := c.Resolve("https://site.example/")
			if err != nil || res.Version != p.Version {
				t.Fatalf("round %d: the entry page resolves to %+v, %v; the state holds %s", round, res, err, p.Version)
			}
			if b, err := os.ReadFile(res.File); err != nil || !bytes.Equal(b, offlineFiles(versionIndex(p.Version))["index.html"]) {
				t.Fatalf("round %d: the entry page served is not version %s's: %v", round, p.Version, err)
			}
		}
		t.Logf("round %d: holding %+v", round, held)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if installs == 0 || duringExtraction == 0 {
		t.Fatalf("the kills hit %d extractions after %d installs: the test tested nothing", duringExtraction, installs)
	}
	t.Logf("%d installs, %d kills during an extraction", installs, duringExtraction)
}

func versionIndex(v string) int {
	var i int
	fmt.Sscanf(v, "1.%d.0", &i)
	return i
}

// checkFiles checks that dir holds exactly m's files, each of its size
// and hash.
func checkFiles(t *testing.T, dir string, m *offline.Manifest) {
	t.Helper()
	if m == nil {
		t.Fatalf("%s holds a version the fixture does not have", dir)
	}
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		return nil
	})
	if err != nil || n != len(m.Files) {
		t.Fatalf("%s: %v, %d files, want %d", dir, err, n, len(m.Files))
	}
	for _, f := range m.Files {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if sum := sha256.Sum256(b); err != nil || hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Fatalf("%s of %s does not match its manifest: %v", f.Path, dir, err)
		}
	}
}

// TestOfflineKillChild is the child of TestKillDuringOfflineInstall: it
// answers from an in-process server, offering the version after the one
// held (by delta or whole, at random, and 1.0.0 again after the last),
// and installs, until it is killed.
func TestOfflineKillChild(t *testing.T) {
	fx := os.Getenv(offlineKillEnv)
	if fx == "" {
		t.Skip("run by TestKillDuringOfflineInstall")
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
	blobs := map[string][]byte{}
	add := func(b []byte) (string, int64) {
		sum := sha256.Sum256(b)
		s := hex.EncodeToString(sum[:])
		blobs[s] = b
		return s, int64(len(b))
	}
	type version struct {
		full, canonical, delta []byte
	}
	versions := make([]version, offlineVersions)
	for i := range offlineVersions {
		v := offlineVersion(i)
		versions[i] = version{full: read(v + ".zip"), canonical: read(v + ".canonical")}
		if i > 0 {
			versions[i].delta = read(v + ".delta")
		}
	}
	var mu sync.Mutex
	var offer []OfflineInstruction
	mux := http.NewServeMux()
	mux.HandleFunc("POST /client/v1/check", func(w http.ResponseWriter, r *http.Request) {
		var d mds.Device
		json.NewDecoder(r.Body).Decode(&d)
		mu.Lock()
		doc := struct {
			answerDoc
			Offline []OfflineInstruction `json:"offline"`
		}{answerDoc{App: testApp, Version: time.Now().UnixNano(), Expires: time.Now().Add(time.Hour),
			Device: boundTo(&d)}, offer}
		mu.Unlock()
		body, _ := json.Marshal(doc)
		w.Header().Set("Mds-Signature", signatureOf(t, server, body))
		w.Write(body)
	})
	mux.HandleFunc("GET /client/v1/blobs/{sha}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blobs[r.PathValue("sha")]))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	state := filepath.Join(fx, fixtureState)
	cfg := Config{Server: srv.URL, Device: mds.Device{AppKey: testApp, Platform: mds.Android, AppVersion: testAppVersion, DeviceID: "d"},
		ServerKeys: []*signing.PublicKey{server.Public()}, TeamKeys: []*signing.PublicKey{team}}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	for start := time.Now(); time.Since(start) < time.Minute; {
		// A device goes forward only: after the last version it starts
		// over in a fresh state.
		c, err := Open(state, cfg)
		if err != nil {
			t.Fatal(err)
		}
		next := 0
		if held := c.Offline(); len(held) == 1 {
			next = versionIndex(held[0].Version) + 1
		}
		if next == offlineVersions {
			c.Close()
			if err := os.RemoveAll(state); err != nil {
				t.Fatal(err)
			}
			continue
		}
		v := versions[next]
		sum, size := add(v.full)
		csum, csize := add(v.canonical)
		in := OfflineInstruction{Package: "site", Version: offlineVersion(next), Type: "normal", URL: "/client/v1/blobs/" + sum,
			Size: size, SHA256: sum, CanonicalSize: csize, CanonicalSHA256: csum, KeyID: team.ID(), Network: "any"}
		if next > 0 && rng.IntN(3) > 0 {
			dsum, dsize := add(v.delta)
			in.Delta = &OfflineDelta{From: offlineVersion(next - 1), URL: "/client/v1/blobs/" + dsum, Size: dsize, SHA256: dsum}
		}
		mu.Lock()
		offer = []OfflineInstruction{in}
		mu.Unlock()
		a, err := c.Check(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.InstallOffline(t.Context(), a, OfflineOptions{})
		if err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("install: %+v, %v", res, err)
		}
		fmt.Printf("installed %s %s\n", res[0].Version, res[0].How)
		c.Close()
	}
	t.Fatal("not killed within a minute")
}
