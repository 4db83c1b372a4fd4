package hotpatch_test

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/hotpatch"
	"github.com/mds-dev/mds/hotpatch/hotpatchtest"
	"github.com/mds-dev/mds/signing"
)

var testNow = time.Date(2026, 12, 4, 10, 0, 0, 987654321, time.FixedZone("CST", 8*3600))

func newKey(t testing.TB, alg signing.Alg) *signing.PrivateKey {
	t.Helper()
	k, err := signing.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// baseManifest is what a team gives Pack: targets deliberately unsorted.
func baseManifest() hotpatch.Manifest {
	return hotpatch.Manifest{
		AppKey:       "ak_test",
		Platform:     mds.Android,
		Targets:      []hotpatch.Target{{AppVersion: "2.3.0"}, {AppVersion: "2.2.1", Build: 7}, {AppVersion: "2.2.1", Build: 3}},
		PatchVersion: 3,
		Notes:        "Fixes the crash <on> login & checkout.\nSecond line.",
	}
}

// craftManifest is hotpatchtest.Manifest for key and files with
// baseManifest's fields, its targets sorted and notes kept: tests change
// it before encoding.
func craftManifest(key *signing.PrivateKey, files ...hotpatchtest.Entry) hotpatch.Manifest {
	b := baseManifest()
	m := hotpatchtest.Manifest(key, b.AppKey, b.Platform, b.PatchVersion, []hotpatch.Target{{AppVersion: "2.2.1", Build: 7}, {AppVersion: "2.3.0"}}, files...)
	m.Notes = b.Notes
	return m
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func openBytes(b []byte, lim hotpatch.Limits) (*hotpatch.Package, error) {
	return hotpatch.Open(bytes.NewReader(b), int64(len(b)), lim)
}

func packBytes(t testing.TB, src string, key *signing.PrivateKey, now time.Time) ([]byte, *hotpatch.Manifest) {
	t.Helper()
	var buf bytes.Buffer
	m, err := hotpatch.Pack(&buf, baseManifest(), src, key, now)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m
}

// wantRefusal fails unless err is an EINVALID error whose message holds
// want and which matches sentinel (if not nil).
func wantRefusal(t testing.TB, err error, want string, sentinel error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one saying %q", want)
	}
	if code := mds.ErrorCode(err); code != mds.EINVALID {
		t.Errorf("code %q, want %q: %v", code, mds.EINVALID, err)
	}
	if !strings.Contains(mds.ErrorMessage(err), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Errorf("error %q does not match %v", err, sentinel)
	}
}

func TestRoundTrip(t *testing.T) {
	tree := map[string][]byte{
		"a.txt":               []byte("hello\n"),
		"a-b":                 []byte("dash"),
		"a/b":                 []byte("slash"),
		"lib/arm64/libfix.so": randomBytes(200 << 10),
		"lib/x86/zeros.bin":   make([]byte, 3<<20), // deflates over 100x: must be stored
		"res/empty":           {},
		"res/ü文字.json":        []byte(strings.Repeat(`{"k":"v"}`, 1000)),
	}
	for _, alg := range signing.Algs {
		t.Run(string(alg), func(t *testing.T) {
			key := newKey(t, alg)
			src := t.TempDir()
			hotpatchtest.WriteFiles(t, src, tree)
			b, m := packBytes(t, src, key, testNow)

			if m.CreatedAt != "2026-12-04T02:00:00Z" || m.KeyID != key.Public().ID() || m.Alg != alg || m.Format != hotpatch.Format {
				t.Errorf("manifest header %q %q %q %q", m.CreatedAt, m.KeyID, m.Alg, m.Format)
			}
			wantTargets := []hotpatch.Target{{AppVersion: "2.2.1", Build: 3}, {AppVersion: "2.2.1", Build: 7}, {AppVersion: "2.3.0"}}
			if !slices.Equal(m.Targets, wantTargets) {
				t.Errorf("targets %v, want %v", m.Targets, wantTargets)
			}
			var paths []string
			for _, f := range m.Files {
				paths = append(paths, f.Path)
				sum := sha256.Sum256(tree[f.Path])
				if f.Size != int64(len(tree[f.Path])) || f.SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("file %s: size %d sha256 %s", f.Path, f.Size, f.SHA256)
				}
			}
			wantPaths := []string{"a-b", "a.txt", "a/b", "lib/arm64/libfix.so", "lib/x86/zeros.bin", "res/empty", "res/ü文字.json"}
			if !slices.Equal(paths, wantPaths) {
				t.Errorf("paths %q, want %q", paths, wantPaths)
			}

			p, err := openBytes(b, hotpatch.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			if enc, _ := m.Encode(); !bytes.Equal(enc, p.ManifestBytes) {
				t.Errorf("manifest.json is not the returned manifest's encoding")
			}
			if err := p.Verify(key.Public()); err != nil {
				t.Fatal(err)
			}
			if err := p.CheckFiles(); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out")
			if err := os.Mkdir(out, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := p.Extract(out); err != nil {
				t.Fatal(err)
			}
			var got []string
			filepath.WalkDir(out, func(name string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(out, name)
				got = append(got, filepath.ToSlash(rel))
				b, err := os.ReadFile(name)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, tree[filepath.ToSlash(rel)]) {
					t.Errorf("extracted %s differs", rel)
				}
				return nil
			})
			slices.Sort(got)
			if want := slices.Sorted(slices.Values(wantPaths)); !slices.Equal(got, want) {
				t.Errorf("extracted %q, want %q", got, want)
			}

			// How Pack lays entries out, which other readers rely on.
			zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			methods := map[string]uint16{}
			for _, f := range zr.File {
				if f.Flags&0x8 != 0 {
					t.Errorf("entry %s has a data descriptor", f.Name)
				}
				methods[f.Name] = f.Method
			}
			for name, want := range map[string]uint16{
				hotpatch.ManifestName: zip.Store, hotpatch.SignatureName: zip.Store, "files/lib/x86/zeros.bin": zip.Store,
				"files/lib/arm64/libfix.so": zip.Store, "files/res/empty": zip.Store, "files/res/ü文字.json": zip.Deflate,
			} {
				if methods[name] != want {
					t.Errorf("entry %s has method %d, want %d", name, methods[name], want)
				}
			}

			again, _ := packBytes(t, src, key, testNow.Add(-400*time.Millisecond))
			if alg == signing.Ed25519 && !bytes.Equal(b, again) {
				t.Error("packing the same files in the same second gave other bytes")
			}
			// ECDSA signatures are randomized; the manifest is not.
			if q, err := openBytes(again, hotpatch.DefaultLimits); err != nil || !bytes.Equal(q.ManifestBytes, p.ManifestBytes) {
				t.Errorf("packing the same files in the same second gave another manifest: %v", err)
			}
			later, _ := packBytes(t, src, key, testNow.Add(time.Second))
			if bytes.Equal(b, later) {
				t.Error("packing a second later gave the same bytes")
			}
		})
	}
}

// TestPackDeterministic compares whole archives with Ed25519, whose
// signatures are deterministic, and a fixed key.
func TestPackDeterministic(t *testing.T) {
	key := newKey(t, signing.Ed25519)
	tree := map[string][]byte{"x/y.js": []byte(strings.Repeat("function(){}\n", 500)), "z": []byte("z")}
	var outs [][]byte
	for range 2 {
		// hotpatchtest.Pack packs from a new directory: other file times.
		outs = append(outs, hotpatchtest.Pack(t, tree, baseManifest(), key))
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("the same files packed at the same time gave other bytes")
	}
}

func TestPackSingleFile(t *testing.T) {
	key := newKey(t, signing.ECDSAP256)
	name := filepath.Join(t.TempDir(), "patch.dex")
	content := randomBytes(5000)
	if err := os.WriteFile(name, content, 0o644); err != nil {
		t.Fatal(err)
	}
	b, m := packBytes(t, name, key, testNow)
	if len(m.Files) != 1 || m.Files[0].Path != "patch.dex" || m.Files[0].Size != 5000 {
		t.Fatalf("files %+v", m.Files)
	}
	p, err := openBytes(b, hotpatch.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := p.Extract(out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "patch.dex")); !bytes.Equal(got, content) {
		t.Error("extracted file differs")
	}
}

func TestPackRefuses(t *testing.T) {
	key := newKey(t, signing.ECDSAP256)
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns src
		m     func(*hotpatch.Manifest)
		want  string
	}{
		{"symlink in dir", func(t *testing.T, dir string) string {
			hotpatchtest.WriteFiles(t, dir, map[string][]byte{"a": []byte("a")})
			if err := os.Symlink("a", filepath.Join(dir, "link")); err != nil {
				t.Skip(err)
			}
			return dir
		}, nil, filepath.Join("link") + " is a symlink"},
		{"symlink to dir", func(t *testing.T, dir string) string {
			hotpatchtest.WriteFiles(t, dir, map[string][]byte{"sub/a": []byte("a")})
			if err := os.Symlink("sub", filepath.Join(dir, "alias")); err != nil {
				t.Skip(err)
			}
			return dir
		}, nil, "alias is a symlink"},
		{"src is a symlink", func(t *testing.T, dir string) string {
			hotpatchtest.WriteFiles(t, dir, map[string][]byte{"real/a": []byte("a")})
			link := filepath.Join(dir, "link")
			if err := os.Symlink("real", link); err != nil {
				t.Skip(err)
			}
			return link
		}, nil, "link is a symlink; pack a directory or a regular file"},
		{"socket", func(t *testing.T, dir string) string {
			hotpatchtest.WriteFiles(t, dir, map[string][]byte{"a": []byte("a")})
			l, err := net.Listen("unix", filepath.Join(dir, "sock"))
			if err != nil {
				t.Skip(err)
			}
			t.Cleanup(func() { l.Close() })
			return dir
		}, nil, "sock is a socket"},
		{"empty dir", func(t *testing.T, dir string) string {
			os.Mkdir(filepath.Join(dir, "sub"), 0o755)
			return dir
		}, nil, "holds no files"},
		{"backslash in a name", func(t *testing.T, dir string) string {
			hotpatchtest.WriteFiles(t, dir, map[string][]byte{`a\b`: []byte("a")})
			return dir
		}, nil, "has a backslash"},
		{"no app key", func(t *testing.T, dir string) string {
			hotpatchtest.WriteFiles(t, dir, map[string][]byte{"a": []byte("a")})
			return dir
		}, func(m *hotpatch.Manifest) { m.AppKey = "" }, "no app_key"},
		{"no targets", func(t *testing.T, dir string) string {
			hotpatchtest.WriteFiles(t, dir, map[string][]byte{"a": []byte("a")})
			return dir
		}, func(m *hotpatch.Manifest) { m.Targets = nil }, "names 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.setup(t, t.TempDir())
			m := baseManifest()
			if tt.m != nil {
				tt.m(&m)
			}
			var buf bytes.Buffer
			_, err := hotpatch.Pack(&buf, m, src, key, testNow)
			wantRefusal(t, err, tt.want, nil)
		})
	}
	t.Run("no key", func(t *testing.T) {
		dir := t.TempDir()
		hotpatchtest.WriteFiles(t, dir, map[string][]byte{"a": []byte("a")})
		_, err := hotpatch.Pack(io.Discard, baseManifest(), dir, nil, testNow)
		wantRefusal(t, err, "private key", nil)
	})
}

// hookWriter runs hook before the first write reaches w.
type hookWriter struct {
	w    io.Writer
	hook func()
}

func (h *hookWriter) Write(b []byte) (int, error) {
	if h.hook != nil {
		h.hook()
		h.hook = nil
	}
	return h.w.Write(b)
}

func TestPackFileChanged(t *testing.T) {
	key := newKey(t, signing.ECDSAP256)
	for _, change := range []struct {
		name string
		do   func(name string) error
	}{
		{"grows", func(name string) error {
			f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			f.WriteString("more")
			return f.Close()
		}},
		{"same size", func(name string) error { return os.WriteFile(name, []byte("B"), 0o644) }},
		{"shrinks", func(name string) error { return os.WriteFile(name, nil, 0o644) }},
	} {
		t.Run(change.name, func(t *testing.T) {
			src := t.TempDir()
			// a is large, so that the zip writer's buffer flushes while
			// a is copied, before b is read again.
			hotpatchtest.WriteFiles(t, src, map[string][]byte{"a": randomBytes(256 << 10), "b": []byte("b")})
			var buf bytes.Buffer
			w := &hookWriter{w: &buf, hook: func() {
				if err := change.do(filepath.Join(src, "b")); err != nil {
					t.Fatal(err)
				}
			}}
			_, err := hotpatch.Pack(w, baseManifest(), src, key, testNow)
			wantRefusal(t, err, "b changed while being packed", nil)
		})
	}
}
