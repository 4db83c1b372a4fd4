package bundle_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/bundle/bundletest"
	"github.com/mds-dev/mds/signing"
)

// testKind is the kind of bundle these tests make: its manifest is the
// file list alone, {"files":[…]}.
var testKind = bundle.Format{Noun: "a test bundle", Pack: "mds test pack"}

type testManifest struct {
	Files []bundle.File `json:"files"`
}

// encodeManifest is the manifest of files, whatever they are.
func encodeManifest(files []bundle.File) []byte {
	b, err := json.Marshal(testManifest{Files: files})
	if err != nil {
		panic(err) // a struct of strings and numbers always encodes
	}
	return b
}

// parseManifest reads a test manifest and, unlike a real kind's parser,
// does not validate the files: Open must.
func parseManifest(b []byte) ([]bundle.File, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m testManifest
	if err := dec.Decode(&m); err != nil {
		return nil, mds.Errorf(mds.EINVALID, "manifest.json is not a test manifest: %v", err)
	}
	return m.Files, nil
}

func newKey(t testing.TB, alg signing.Alg) *signing.PrivateKey {
	t.Helper()
	k, err := signing.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// craft is the bundle of entries, signed by key, with a manifest listing
// them as they are.
func craft(t testing.TB, key *signing.PrivateKey, entries ...bundletest.Entry) []byte {
	t.Helper()
	return bundletest.Package(t, encodeManifest(bundletest.Files(entries...)), key, entries...)
}

func openBytes(b []byte, lim bundle.Limits) (*bundle.Bundle, error) {
	return bundle.Open(bytes.NewReader(b), int64(len(b)), testKind, lim, parseManifest)
}

// pack is bundle.Pack of the test kind.
func pack(w io.Writer, src string, key *signing.PrivateKey, lim bundle.Limits) error {
	return bundle.Pack(w, testKind, src, key, lim, func(files []bundle.File) ([]byte, error) {
		return encodeManifest(files), nil
	})
}

func packBytes(t testing.TB, src string, key *signing.PrivateKey) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := pack(&buf, src, key, bundle.DefaultLimits); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
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

func TestValidPath(t *testing.T) {
	for _, p := range []string{
		"a", "lib/arm64-v8a/libfix.so", "assets/ü文字 with spaces.json", ".hidden", "a..b", "...",
		"ab:c", "1:", "a/C:b", strings.Repeat("x", 255), strings.Repeat("abcdefg/", 127) + "abcdefgh",
	} {
		if err := bundle.ValidPath(p); err != nil {
			t.Errorf("ValidPath(%.40q): %v", p, err)
		}
	}
	tests := []struct{ path, want string }{
		{"", "is empty"},
		{strings.Repeat("abcdefg/", 128) + "a", "is 1025 bytes; at most 1024"},
		{"a\xffb", "is not valid UTF-8"},
		{"/etc/passwd", "is absolute"},
		{"lib/", "ends with /"},
		{`lib\a.so`, "has a backslash"},
		{"C:/Windows/evil", "starts with a drive letter"},
		{"c:evil", "starts with a drive letter"},
		{"a:b", "starts with a drive letter"},
		{"a//b", "has an empty segment"},
		{"./a", `has a "." segment`},
		{"a/./b", `has a "." segment`},
		{"..", `has a ".." segment`},
		{"a/../../b", `has a ".." segment`},
		{"a/..", `has a ".." segment`},
		{"a\x00b", "control character U+0000"},
		{"a\nb", "control character U+000A"},
		{"a\u0085b", "control character U+0085"},
		{"a\x7f", "control character U+007F"},
		{"d/" + strings.Repeat("x", 256), "has a segment of 256 bytes; at most 255"},
	}
	for _, tt := range tests {
		wantRefusal(t, bundle.ValidPath(tt.path), tt.want, nil)
	}
}

func validFiles() []bundle.File {
	return []bundle.File{
		{Path: "A.js", Size: 0, SHA256: strings.Repeat("0", 64)},
		{Path: "b/c.js", Size: 10, SHA256: strings.Repeat("f", 64)},
	}
}

func TestValidFiles(t *testing.T) {
	if err := bundle.ValidFiles(validFiles()); err != nil {
		t.Fatal(err)
	}
	sum := strings.Repeat("f", 64)
	tests := []struct {
		name   string
		change func([]bundle.File) []bundle.File
		want   string
	}{
		{"no files", func([]bundle.File) []bundle.File { return nil }, "lists no files"},
		{"bad path", func(l []bundle.File) []bundle.File { l[0].Path = "../A.js"; return l }, `has a ".." segment`},
		{"unsorted files", func(l []bundle.File) []bundle.File { l[0], l[1] = l[1], l[0]; return l }, `"A.js" comes after "b/c.js"`},
		{"duplicate file", func(l []bundle.File) []bundle.File { l[1] = l[0]; return l }, `lists file "A.js" twice`},
		{"case duplicate", func(l []bundle.File) []bundle.File { l[1].Path = "a.js"; return l }, `files "A.js" and "a.js" differ only in case`},
		{"kelvin sign", func([]bundle.File) []bundle.File {
			return []bundle.File{{Path: "k", Size: 1, SHA256: sum}, {Path: "\u212a", Size: 1, SHA256: sum}}
		}, "differ only in case"},
		{"file under a file, case-folded", func(l []bundle.File) []bundle.File { l[1].Path = "a.js/x"; return l }, `file "A.js" is also a directory holding "a.js/x"`},
		{"file under a file, not adjacent", func([]bundle.File) []bundle.File {
			return []bundle.File{{Path: "a", SHA256: sum}, {Path: "a-b", SHA256: sum}, {Path: "a/b", SHA256: sum}}
		}, `file "a" is also a directory holding "a/b"`},
		{"negative size", func(l []bundle.File) []bundle.File { l[0].Size = -1; return l }, "negative size"},
		{"sha uppercase", func(l []bundle.File) []bundle.File { l[1].SHA256 = strings.Repeat("F", 64); return l }, "must be 64 lowercase hex digits"},
		{"sha short", func(l []bundle.File) []bundle.File { l[1].SHA256 = "ff"; return l }, "must be 64 lowercase hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantRefusal(t, bundle.ValidFiles(tt.change(validFiles())), tt.want, nil)
		})
	}
}

func TestTotalSize(t *testing.T) {
	if n := bundle.TotalSize(validFiles()); n != 10 {
		t.Errorf("TotalSize %d, want 10", n)
	}
	if n := bundle.TotalSize(nil); n != 0 {
		t.Errorf("TotalSize(nil) %d", n)
	}
}

func TestErrorChain(t *testing.T) {
	err := bundle.Refuse(bundle.ErrCorrupt, []error{signing.ErrBadSignature}, "file %s is bad", "x")
	var e *mds.Error
	if !errors.As(err, &e) || e.Code != mds.EINVALID || e.Message != "file x is bad" {
		t.Fatalf("errors.As: %+v", e)
	}
	if !errors.Is(err, bundle.ErrCorrupt) || !errors.Is(err, signing.ErrBadSignature) || errors.Is(err, bundle.ErrWrongKey) {
		t.Error("sentinels do not match as they should")
	}
	if err.Error() != "mds: invalid: file x is bad" {
		t.Errorf("Error() = %q", err.Error())
	}
	if got := mds.ErrorMessage(err); got != "file x is bad" {
		t.Errorf("message %q", got)
	}
}
