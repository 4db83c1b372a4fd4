package bundle_test

import (
	"archive/zip"
	"bytes"
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

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/bundle/bundletest"
	"github.com/mds-dev/mds/signing"
)

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
			var listed []bundle.File // what Pack asked the manifest of
			var buf bytes.Buffer
			err := bundle.Pack(&buf, testKind, src, key, bundle.DefaultLimits, func(files []bundle.File) ([]byte, error) {
				listed = files
				return encodeManifest(files), nil
			})
			if err != nil {
				t.Fatal(err)
			}
			archive := buf.Bytes()

			var paths []string
			for _, f := range listed {
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

			b, err := openBytes(archive, bundle.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.ManifestBytes, encodeManifest(listed)) || !slices.Equal(b.Files, listed) {
				t.Errorf("manifest.json is not the manifest of the files Pack listed")
			}
			pub := key.Public()
			if err := b.Verify(pub, pub.ID(), pub.Alg()); err != nil {
				t.Fatal(err)
			}
			if err := b.CheckFiles(); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out")
			if err := os.Mkdir(out, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := b.Extract(out); err != nil {
				t.Fatal(err)
			}
			var got []string
			filepath.WalkDir(out, func(name string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(out, name)
				got = append(got, filepath.ToSlash(rel))
				content, err := os.ReadFile(name)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(content, tree[filepath.ToSlash(rel)]) {
					t.Errorf("extracted %s differs", rel)
				}
				return nil
			})
			slices.Sort(got)
			if want := slices.Sorted(slices.Values(wantPaths)); !slices.Equal(got, want) {
				t.Errorf("extracted %q, want %q", got, want)
			}

			// How Pack lays entries out, which other readers rely on.
			zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
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
				bundle.ManifestName: zip.Store, bundle.SignatureName: zip.Store, "files/lib/x86/zeros.bin": zip.Store,
				"files/lib/arm64/libfix.so": zip.Store, "files/res/empty": zip.Store, "files/res/ü文字.json": zip.Deflate,
			} {
				if methods[name] != want {
					t.Errorf("entry %s has method %d, want %d", name, methods[name], want)
				}
			}

			again := packBytes(t, src, key)
			if alg == signing.Ed25519 && !bytes.Equal(archive, again) {
				t.Error("packing the same files again gave other bytes")
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
		// A new directory each time: other file times.
		src := t.TempDir()
		bundletest.WriteFiles(t, src, tree)
		outs = append(outs, packBytes(t, src, key))
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("the same files packed twice gave other bytes")
	}
}

func TestPackSingleFile(t *testing.T) {
	key := newKey(t, signing.ECDSAP256)
	name := filepath.Join(t.TempDir(), "patch.dex")
	content := randomBytes(5000)
	if err := os.WriteFile(name, content, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := openBytes(packBytes(t, name, key), bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Files) != 1 || b.Files[0].Path != "patch.dex" || b.Files[0].Size != 5000 {
		t.Fatalf("files %+v", b.Files)
	}
	out := t.TempDir()
	if err := b.Extract(out); err != nil {
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
		want  string
	}{
		{"symlink in dir", func(t *testing.T, dir string) string {
			bundletest.WriteFiles(t, dir, map[string][]byte{"a": []byte("a")})
			if err := os.Symlink("a", filepath.Join(dir, "link")); err != nil {
				t.Skip(err)
			}
			return dir
		}, "link is a symlink; a test bundle holds regular files only"},
		{"symlink to dir", func(t *testing.T, dir string) string {
			bundletest.WriteFiles(t, dir, map[string][]byte{"sub/a": []byte("a")})
			if err := os.Symlink("sub", filepath.Join(dir, "alias")); err != nil {
				t.Skip(err)
			}
			return dir
		}, "alias is a symlink"},
		{"src is a symlink", func(t *testing.T, dir string) string {
			bundletest.WriteFiles(t, dir, map[string][]byte{"real/a": []byte("a")})
			link := filepath.Join(dir, "link")
			if err := os.Symlink("real", link); err != nil {
				t.Skip(err)
			}
			return link
		}, "link is a symlink; pack a directory or a regular file"},
		{"socket", func(t *testing.T, dir string) string {
			bundletest.WriteFiles(t, dir, map[string][]byte{"a": []byte("a")})
			l, err := net.Listen("unix", filepath.Join(dir, "sock"))
			if err != nil {
				t.Skip(err)
			}
			t.Cleanup(func() { l.Close() })
			return dir
		}, "sock is a socket"},
		{"empty dir", func(t *testing.T, dir string) string {
			os.Mkdir(filepath.Join(dir, "sub"), 0o755)
			return dir
		}, "holds no files; a test bundle holds at least one"},
		{"backslash in a name", func(t *testing.T, dir string) string {
			bundletest.WriteFiles(t, dir, map[string][]byte{`a\b`: []byte("a")})
			return dir
		}, "has a backslash"},
		{"names differing only in case", func(t *testing.T, dir string) string {
			bundletest.WriteFiles(t, dir, map[string][]byte{"A.js": []byte("a")})
			if err := os.WriteFile(filepath.Join(dir, "a.js"), []byte("b"), 0o644); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "A.js")); string(b) != "a" {
				t.Skip("a case-insensitive file system")
			}
			return dir
		}, `files "A.js" and "a.js" differ only in case`},
		{"too many files", func(t *testing.T, dir string) string {
			bundletest.WriteFiles(t, dir, map[string][]byte{"a": nil, "b": nil, "c/d": nil})
			return dir
		}, "holds 3 files; a test bundle holds at most 2"},
		{"a file too large", func(t *testing.T, dir string) string {
			bundletest.WriteFiles(t, dir, map[string][]byte{"a": []byte("12"), "b": []byte("12345")})
			return dir
		}, "b is 5 bytes; a file in a test bundle is at most 4"},
		{"too large in all", func(t *testing.T, dir string) string {
			bundletest.WriteFiles(t, dir, map[string][]byte{"a": []byte("1234"), "b": []byte("1234")})
			return dir
		}, "add up to more than 7 bytes; a test bundle holds at most that"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.setup(t, t.TempDir())
			lim := bundle.Limits{MaxFiles: 2, MaxFileSize: 4, MaxTotalSize: 7}
			var buf bytes.Buffer
			wantRefusal(t, pack(&buf, src, key, lim), tt.want, nil)
		})
	}
	t.Run("no key", func(t *testing.T) {
		dir := t.TempDir()
		bundletest.WriteFiles(t, dir, map[string][]byte{"a": []byte("a")})
		wantRefusal(t, pack(io.Discard, dir, nil, bundle.DefaultLimits), "packing a test bundle needs the team's private key", nil)
	})
}

// TestPackManifest: what the kind's manifest function says stops Pack
// before anything is written, and a manifest Open would refuse is not
// written either.
func TestPackManifest(t *testing.T) {
	key := newKey(t, signing.Ed25519)
	src := t.TempDir()
	bundletest.WriteFiles(t, src, map[string][]byte{"a": []byte("a")})
	refused := mds.Errorf(mds.EINVALID, "no app_key")
	var w countingWriter
	err := bundle.Pack(&w, testKind, src, key, bundle.DefaultLimits, func([]bundle.File) ([]byte, error) { return nil, refused })
	if !errors.Is(err, refused) {
		t.Errorf("Pack: %v, want the manifest's error", err)
	}
	err = bundle.Pack(&w, testKind, src, key, bundle.DefaultLimits, func([]bundle.File) ([]byte, error) {
		return make([]byte, bundle.MaxManifest+1), nil
	})
	wantRefusal(t, err, "the manifest is 1048577 bytes; at most 1048576", nil)
	if w.n != 0 {
		t.Errorf("Pack wrote %d bytes of bundles it refused", w.n)
	}
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
			bundletest.WriteFiles(t, src, map[string][]byte{"a": randomBytes(256 << 10), "b": []byte("b")})
			var buf bytes.Buffer
			w := &hookWriter{w: &buf, hook: func() {
				if err := change.do(filepath.Join(src, "b")); err != nil {
					t.Fatal(err)
				}
			}}
			wantRefusal(t, pack(w, src, key, bundle.DefaultLimits), "b changed while being packed", nil)
		})
	}
}
