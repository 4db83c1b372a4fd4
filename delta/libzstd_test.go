package delta

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBodyDecodesWithLibzstd checks the promise the package doc makes to devices: the body is plain
// zstd that the reference library decodes with old as a dictionary, across all its frames. It runs
// the zstd command (Debian's zstd package, in the base image of the development and CI machines) and
// fails rather than skips without it, so the check cannot silently stop running.
func TestBodyDecodesWithLibzstd(t *testing.T) {
	zstdCmd, err := exec.LookPath("zstd")
	if err != nil {
		t.Fatalf("the zstd command is needed (apt-get install zstd): %v", err)
	}
	old := bytes.Repeat([]byte("const version = \"1.0.0\"; export function f(x) { return x * 2 }\n"), 3000)
	new := bytes.ReplaceAll(old, []byte("1.0.0"), []byte("1.0.1"))
	// Short insertions taken from old become literals that zstd finds in the dictionary.
	new = append(new[:len(new)/2], append([]byte("x * 2 }\nexport funct! "), new[len(new)/2:]...)...)

	patch, err := Encode(old, new)
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(patch)
	br := bufio.NewReader(r)
	if _, err := readHeader(br); err != nil {
		t.Fatal(err)
	}
	body := patch[len(patch)-r.Len()-br.Buffered():]

	dir := t.TempDir()
	oldFile, bodyFile := filepath.Join(dir, "old"), filepath.Join(dir, "body.zst")
	if err := os.WriteFile(oldFile, old, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bodyFile, body, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(zstdCmd, "-d", "-q", "-c", "--long=31", "-D", oldFile, bodyFile).Output()
	if err != nil {
		t.Fatalf("zstd -d: %v", err)
	}
	if _, err := exec.Command(zstdCmd, "-d", "-q", "-c", "--long=31", bodyFile).Output(); err == nil {
		t.Fatal("zstd decoded the body without the dictionary: this test no longer checks its use")
	}

	s := diffScript(old, new)
	want := bytes.Join(append(s.columns(), s.literal), nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("zstd decoded %d bytes, want the %d bytes of the columns", len(got), len(want))
	}
}
