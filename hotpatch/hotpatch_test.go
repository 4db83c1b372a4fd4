package hotpatch_test

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/bundle/bundletest"
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
			bundletest.WriteFiles(t, src, tree)
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

			// Its canonical form is a hotpatch too, signed as it was.
			var canon bytes.Buffer
			if _, err := p.WriteCanonical(&canon); err != nil {
				t.Fatal(err)
			}
			if c, err := openBytes(canon.Bytes(), hotpatch.DefaultLimits); err != nil {
				t.Errorf("the canonical form: %v", err)
			} else if err := c.Verify(key.Public()); err != nil || c.Manifest.PatchVersion != m.PatchVersion {
				t.Errorf("the canonical form: %v, patch version %d", err, c.Manifest.PatchVersion)
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

func TestPackRefuses(t *testing.T) {
	key := newKey(t, signing.ECDSAP256)
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns src
		m     func(*hotpatch.Manifest)
		want  string
	}{
		{"symlink in dir", func(t *testing.T, dir string) string {
			bundletest.WriteFiles(t, dir, map[string][]byte{"a": []byte("a")})
			if err := os.Symlink("a", filepath.Join(dir, "link")); err != nil {
				t.Skip(err)
			}
			return dir
		}, nil, "link is a symlink; a hotpatch holds regular files only"},
		{"empty dir", func(t *testing.T, dir string) string {
			os.Mkdir(filepath.Join(dir, "sub"), 0o755)
			return dir
		}, nil, "holds no files; a hotpatch holds at least one"},
		{"no app key", func(t *testing.T, dir string) string {
			bundletest.WriteFiles(t, dir, map[string][]byte{"a": []byte("a")})
			return dir
		}, func(m *hotpatch.Manifest) { m.AppKey = "" }, "no app_key"},
		{"no targets", func(t *testing.T, dir string) string {
			bundletest.WriteFiles(t, dir, map[string][]byte{"a": []byte("a")})
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
		bundletest.WriteFiles(t, dir, map[string][]byte{"a": []byte("a")})
		_, err := hotpatch.Pack(io.Discard, baseManifest(), dir, nil, testNow)
		wantRefusal(t, err, "packing a hotpatch needs the team's private key", nil)
	})
}

// TestOpenRefuses: what a hotpatch's manifest requires, and refusals
// worded for hotpatches; bundle's tests hold the archive's every rule.
func TestOpenRefuses(t *testing.T) {
	key := newKey(t, signing.ECDSAP256)
	a := hotpatchtest.File("a", []byte("alpha"))
	// withManifest builds a package whose manifest is craftManifest's for
	// files, changed by change, and whose file entries are entries.
	withManifest := func(files []hotpatchtest.Entry, change func(*hotpatch.Manifest), entries ...hotpatchtest.Entry) []byte {
		m := craftManifest(key, files...)
		change(&m)
		return hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, entries...)
	}
	valid := func(entries ...hotpatchtest.Entry) []byte {
		return withManifest(entries, func(*hotpatch.Manifest) {}, entries...)
	}
	gapped := a
	gapped.Before = []byte("unsigned: ")
	tests := []struct {
		name     string
		archive  []byte
		lim      hotpatch.Limits
		want     string
		sentinel error
	}{
		{"no entries", hotpatchtest.BuildZip(t, nil), hotpatch.Limits{}, "first entry of the archive is none; a hotpatch starts with manifest.json, then manifest.sig", nil},
		{"a gap", valid(gapped), hotpatch.Limits{}, "unexpected 10 bytes between entries 2 (manifest.sig) and 3 (files/a); a hotpatch's entries follow each other without gaps: pack it with mds hotpatch pack", nil},
		{"symlink entry", valid(hotpatchtest.Entry{Name: "files/a", Content: []byte("/etc/passwd"), Mode: fs.ModeSymlink | 0o777}),
			hotpatch.Limits{}, `entry "files/a" is a symlink; a hotpatch holds regular files only`, nil},
		{"dot-dot path", valid(hotpatchtest.File("lib/../../evil", []byte("x"))), hotpatch.Limits{}, `has a ".." segment`, nil},
		{"file too large", valid(a), hotpatch.Limits{MaxFileSize: 4}, `entry "files/a" is 5 bytes uncompressed; at most 4`, nil},
		{"header size differs from the manifest", withManifest([]hotpatchtest.Entry{a}, func(m *hotpatch.Manifest) { m.Files[0].Size = 4 }, a), hotpatch.Limits{}, "file a is 5 bytes in the archive but the manifest declares 4", hotpatch.ErrCorrupt},
		{"no platform", withManifest([]hotpatchtest.Entry{a}, func(m *hotpatch.Manifest) { m.Platform = "" }, a), hotpatch.Limits{}, `platform "" is not one of`, nil},
		{"no app key", withManifest([]hotpatchtest.Entry{a}, func(m *hotpatch.Manifest) { m.AppKey = "" }, a), hotpatch.Limits{}, "no app_key", nil},
		{"non-canonical manifest", func() []byte {
			m := craftManifest(key, a)
			mb := bytes.Replace(hotpatchtest.EncodeRaw(t, &m), []byte(`,"app_key"`), []byte(`, "app_key"`), 1)
			return hotpatchtest.Package(t, mb, key, a)
		}(), hotpatch.Limits{}, "manifest is not in canonical form", nil},
		{"unknown manifest field", func() []byte {
			m := craftManifest(key, a)
			mb := bytes.Replace(hotpatchtest.EncodeRaw(t, &m), []byte(`{"format"`), []byte(`{"run":"rm -rf /","format"`), 1)
			return hotpatchtest.Package(t, mb, key, a)
		}(), hotpatch.Limits{}, `unknown field "run"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := openBytes(tt.archive, tt.lim)
			if p != nil {
				t.Error("Open returned a package with its error")
			}
			wantRefusal(t, err, tt.want, tt.sentinel)
		})
	}
}

// TestOpenAcceptsCrafted makes sure the crafting helpers build packages
// Open accepts, so that the refusals above are the changes' doing.
func TestOpenAcceptsCrafted(t *testing.T) {
	key := newKey(t, signing.Ed25519)
	a := hotpatchtest.File("a", []byte("alpha"))
	stored := hotpatchtest.Entry{Name: "files/lib/b", Content: []byte("bravo"), Method: zip.Store, Raw: true}
	m := craftManifest(key, a, stored)
	b := hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, a, stored)
	p, err := openBytes(b, hotpatch.Limits{MaxFiles: 2, MaxFileSize: 5, MaxTotalSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(key.Public()); err != nil {
		t.Fatal(err)
	}
	if err := p.CheckFiles(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Files, p.Manifest.Files) {
		t.Errorf("the bundle's files %v are not the manifest's %v", p.Files, p.Manifest.Files)
	}

	packed, err := openBytes(hotpatchtest.Pack(t, map[string][]byte{"a": []byte("alpha")}, baseManifest(), key), hotpatch.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if err := packed.Verify(key.Public()); err != nil {
		t.Fatal(err)
	}
	if err := packed.CheckFiles(); err != nil {
		t.Fatal(err)
	}
	if packed.Manifest.CreatedAt != m.CreatedAt {
		t.Errorf("hotpatchtest.Pack packed at %s, hotpatchtest.Manifest says %s", packed.Manifest.CreatedAt, m.CreatedAt)
	}
}

// TestLimits: a hotpatch's limits are bundle's, and refusals of its size
// speak of hotpatch files.
func TestLimits(t *testing.T) {
	if hotpatch.DefaultLimits != bundle.DefaultLimits || hotpatch.DefaultMaxArchive != 512<<20 {
		t.Errorf("DefaultLimits %+v, DefaultMaxArchive %d; want bundle's, 512 MiB", hotpatch.DefaultLimits, hotpatch.DefaultMaxArchive)
	}
	key := newKey(t, signing.Ed25519)
	archive := hotpatchtest.Pack(t, map[string][]byte{"a": []byte("alpha")}, baseManifest(), key)
	n := int64(len(archive))
	if _, err := openBytes(archive, hotpatch.Limits{MaxArchive: n}); err != nil {
		t.Fatal(err)
	}
	_, err := openBytes(archive, hotpatch.Limits{MaxArchive: n - 1})
	wantRefusal(t, err, fmt.Sprintf("the file is %d bytes; a hotpatch file is at most %d", n, n-1), nil)
}

func TestManifestByteChanged(t *testing.T) {
	key := newKey(t, signing.Ed25519)
	a := hotpatchtest.File("a", []byte("alpha"))
	m := craftManifest(key, a)
	mb := hotpatchtest.EncodeRaw(t, &m)
	sig, err := key.Sign(mb)
	if err != nil {
		t.Fatal(err)
	}
	for i := range mb {
		changed := bytes.Clone(mb)
		changed[i] ^= 0x01
		archive := hotpatchtest.BuildZip(t, []hotpatchtest.Entry{
			{Name: hotpatch.ManifestName, Content: changed},
			{Name: hotpatch.SignatureName, Content: sig},
			a,
		})
		p, err := openBytes(archive, hotpatch.DefaultLimits)
		if err == nil {
			err = p.Verify(key.Public())
			if !errors.Is(err, hotpatch.ErrBadSignature) && !errors.Is(err, hotpatch.ErrWrongKey) {
				t.Fatalf("byte %d (%q) changed: Verify says %v", i, mb[i], err)
			}
		}
		if mds.ErrorCode(err) != mds.EINVALID {
			t.Fatalf("byte %d (%q) changed: %v", i, mb[i], err)
		}
	}
}

func TestVerify(t *testing.T) {
	key, other := newKey(t, signing.ECDSAP256), newKey(t, signing.Ed25519)
	a := hotpatchtest.File("a", []byte("alpha"))
	m := craftManifest(key, a)
	mb := hotpatchtest.EncodeRaw(t, &m)

	p, err := openBytes(hotpatchtest.Package(t, mb, key, a), hotpatch.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(key.Public()); err != nil {
		t.Fatal(err)
	}
	err = p.Verify(other.Public())
	wantRefusal(t, err, "the package is signed by key "+key.Public().ID()+" (ecdsa-p256), not by this key "+other.Public().ID(), hotpatch.ErrWrongKey)
	if errors.Is(err, hotpatch.ErrBadSignature) {
		t.Error("a wrong key is reported as a bad signature")
	}

	// The manifest names key, but another key of the same kind signed it.
	impostor := newKey(t, signing.ECDSAP256)
	forged, err := openBytes(hotpatchtest.Package(t, mb, impostor, a), hotpatch.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	err = forged.Verify(key.Public())
	wantRefusal(t, err, "signature does not match the manifest: the package was altered or signed by another key", hotpatch.ErrBadSignature)
	if !errors.Is(err, signing.ErrBadSignature) || errors.Is(err, hotpatch.ErrWrongKey) {
		t.Errorf("%v: does not match signing.ErrBadSignature, or matches ErrWrongKey", err)
	}

	// Same key ID, other algorithm: refused before the signature is read.
	m.Alg = signing.Ed25519
	mixed, err := openBytes(hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, a), hotpatch.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	wantRefusal(t, mixed.Verify(key.Public()), "(ed25519), not by this key", hotpatch.ErrWrongKey)
}

func FuzzOpen(f *testing.F) {
	key := newKey(f, signing.Ed25519)
	f.Add(hotpatchtest.Pack(f, map[string][]byte{"a.txt": []byte(strings.Repeat("patch ", 40)), "lib/b.so": {1, 2, 3}}, baseManifest(), key))
	a := hotpatchtest.File("a", []byte("alpha"))
	m := craftManifest(key, a)
	f.Add(hotpatchtest.Package(f, hotpatchtest.EncodeRaw(f, &m), key, a))
	f.Add([]byte("PK\x05\x06" + strings.Repeat("\x00", 18)))
	// Layouts Open refuses: a data descriptor, a gap.
	dd, gap := a, a
	dd.DataDescriptor, gap.Before = true, []byte("gap")
	f.Add(hotpatchtest.Package(f, hotpatchtest.EncodeRaw(f, &m), key, dd))
	f.Add(hotpatchtest.Package(f, hotpatchtest.EncodeRaw(f, &m), key, gap))
	lim := hotpatch.Limits{MaxFiles: 100, MaxFileSize: 1 << 20, MaxTotalSize: 4 << 20}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := openBytes(b, lim)
		if err != nil {
			if code := mds.ErrorCode(err); code != mds.EINVALID {
				t.Fatalf("code %q for malformed input: %v", code, err)
			}
			return
		}
		if err := p.Manifest.Validate(); err != nil {
			t.Fatalf("accepted an invalid manifest: %v", err)
		}
		if enc, err := p.Manifest.Encode(); err != nil || !bytes.Equal(enc, p.ManifestBytes) {
			t.Fatalf("accepted a manifest that does not encode to manifest.json: %v", err)
		}
		if !slices.Equal(p.Files, p.Manifest.Files) {
			t.Fatalf("the bundle holds files %v, the manifest lists %v", p.Files, p.Manifest.Files)
		}
		if err := p.CheckFiles(); err != nil && mds.ErrorCode(err) != mds.EINVALID {
			t.Fatalf("CheckFiles: %v", err)
		}
	})
}
