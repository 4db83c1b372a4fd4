package delta_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mds-dev/mds/delta"
)

// bundle returns text shaped like a JavaScript bundle of one version: many modules, each stamped
// with the version, so a release changes many places by a few bytes.
func bundle(seed uint64, modules int, version string) []byte {
	rng := rand.New(rand.NewPCG(seed, 0))
	words := []string{"function", "return", "const", "props", "emit", "value", "computed", "watch", "el", "ns", "=>", "{", "}", "(", ")", ";"}
	var b strings.Builder
	for m := range modules {
		fmt.Fprintf(&b, "/*! Element Plus v%s */\nconst mod%d = defineComponent({\n  name: \"ElMod%d\",\n", version, m, m)
		for range 20 + rng.IntN(40) {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(" \n"[rng.IntN(8)/7])
		}
		fmt.Fprintf(&b, "\n  version: \"%s\",\n});\n", version)
	}
	return []byte(b.String())
}

// release edits a bundle as a release does: a new version stamp, a few changed, inserted and
// deleted lines, and a module moved elsewhere.
func release(seed uint64, old []byte, from, to string) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	lines := bytes.SplitAfter(bytes.ReplaceAll(old, []byte(from), []byte(to)), []byte("\n"))
	for range len(lines) / 50 {
		i := rng.IntN(len(lines))
		switch rng.IntN(3) {
		case 0:
			lines[i] = fmt.Appendf(nil, "  changed%d: %d,\n", i, rng.IntN(1000))
		case 1:
			lines = append(lines[:i], append([][]byte{fmt.Appendf(nil, "  added%d();\n", i)}, lines[i:]...)...)
		case 2:
			lines = append(lines[:i], lines[i+1:]...)
		}
	}
	if len(lines) > 100 {
		moved := append([][]byte(nil), lines[10:40]...)
		lines = append(lines[:10], lines[40:]...)
		lines = append(lines, moved...)
	}
	return bytes.Join(lines, nil)
}

func random(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

type pair struct {
	name     string
	old, new []byte
}

func pairs() []pair {
	v1 := bundle(1, 300, "2.13.7")
	text := random(3, 50_000)
	return []pair{
		{"both empty", nil, nil},
		{"empty old", nil, v1},
		{"empty new", v1, nil},
		{"identical", v1, v1},
		{"release", v1, release(2, v1, "2.13.7", "2.14.0")},
		{"random", random(1, 40_000), random(2, 50_000)},
		{"random with edits", text, release(4, text, "\x00\x01", "\x02")},
		{"one byte", []byte{1}, []byte{2}},
		{"zeros", make([]byte, 100_000), append(make([]byte, 99_000), 1)},
		{"truncated", v1, v1[:len(v1)/3]},
		{"doubled", v1, append(bytes.Clone(v1), v1...)},
	}
}

func apply(t testing.TB, old, patch []byte, max int64) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	n, err := delta.Apply(&out, old, bytes.NewReader(patch), max)
	if n != int64(out.Len()) {
		t.Fatalf("Apply returned %d, wrote %d bytes", n, out.Len())
	}
	if n > max {
		t.Fatalf("Apply wrote %d bytes, more than max %d", n, max)
	}
	return out.Bytes(), err
}

func TestRoundTrip(t *testing.T) {
	for _, p := range pairs() {
		t.Run(p.name, func(t *testing.T) {
			patch, err := delta.Encode(p.old, p.new)
			if err != nil {
				t.Fatal(err)
			}
			got, err := apply(t, p.old, patch, int64(len(p.new)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, p.new) {
				t.Fatalf("Apply made %d bytes that differ from the %d expected", len(got), len(p.new))
			}
			t.Logf("%d → %d bytes: patch %d bytes", len(p.old), len(p.new), len(patch))
		})
	}
}

// TestSmallEdits checks the point of the format: a release that changes many places by a few bytes
// costs a small fraction of the package.
func TestSmallEdits(t *testing.T) {
	old := bundle(5, 2000, "2.13.7")
	new := release(6, old, "2.13.7", "2.14.0")
	patch, err := delta.Encode(old, new)
	if err != nil {
		t.Fatal(err)
	}
	if len(patch) > len(new)/20 {
		t.Errorf("patch is %d bytes for a %d-byte package with small edits", len(patch), len(new))
	}
}

func TestDeterministic(t *testing.T) {
	for _, p := range pairs() {
		a, err := delta.Encode(p.old, p.new)
		if err != nil {
			t.Fatal(err)
		}
		b, err := delta.Encode(bytes.Clone(p.old), bytes.Clone(p.new))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two encodings differ", p.name)
		}
	}
}

// mustFail applies a damaged patch: it must fail, or (if the damage happens to change nothing that
// matters) produce exactly the right bytes; it must never write more than max.
func mustFail(t *testing.T, what string, old, new, patch []byte) {
	t.Helper()
	got, err := apply(t, old, patch, int64(len(new)))
	if err == nil && !bytes.Equal(got, new) {
		t.Fatalf("%s: Apply succeeded with wrong output", what)
	}
	if err == nil {
		t.Logf("%s: harmless", what)
	}
}

func TestCorruptPatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, p := range pairs() {
		t.Run(p.name, func(t *testing.T) {
			patch, err := delta.Encode(p.old, p.new)
			if err != nil {
				t.Fatal(err)
			}
			for i := range patch {
				if len(patch) > 400 && rng.IntN(len(patch)/400) != 0 {
					continue // a sample of the bytes of a long patch
				}
				bad := bytes.Clone(patch)
				bad[i] ^= byte(1 + rng.IntN(255))
				mustFail(t, fmt.Sprintf("byte %d flipped", i), p.old, p.new, bad)
			}
			for n := 0; n < len(patch); n += 1 + n/10 {
				if _, err := apply(t, p.old, patch[:n], int64(len(p.new))); err == nil {
					t.Fatalf("a patch truncated to %d of %d bytes applied", n, len(patch))
				}
			}
			for _, junk := range [][]byte{{0}, []byte("junk"), random(8, 100), patch} {
				if _, err := apply(t, p.old, append(bytes.Clone(patch), junk...), int64(len(p.new))); !errors.Is(err, delta.ErrCorrupt) {
					t.Fatalf("with %d bytes appended: got %v, want ErrCorrupt", len(junk), err)
				}
			}
		})
	}
}

func TestNotAPatch(t *testing.T) {
	for _, patch := range [][]byte{nil, []byte("MDD"), []byte("PK\x03\x04"), random(9, 1000)} {
		if _, err := apply(t, nil, patch, 1<<20); !errors.Is(err, delta.ErrCorrupt) {
			t.Errorf("%q: got %v, want ErrCorrupt", patch[:min(len(patch), 8)], err)
		}
	}
}

func TestMax(t *testing.T) {
	old := bundle(1, 100, "1.0.0")
	new := release(2, old, "1.0.0", "1.0.1")
	patch, err := delta.Encode(old, new)
	if err != nil {
		t.Fatal(err)
	}
	for _, max := range []int64{0, 1, int64(len(new)) - 1} {
		got, err := apply(t, old, patch, max)
		if !errors.Is(err, delta.ErrTooLarge) || len(got) != 0 {
			t.Errorf("max %d for %d bytes: got %v after %d bytes, want ErrTooLarge before any", max, len(new), err, len(got))
		}
	}
	if _, err := apply(t, old, patch, int64(len(new))); err != nil {
		t.Errorf("max = the output's size: %v", err)
	}
}

func TestWrongBase(t *testing.T) {
	old := bundle(1, 100, "1.0.0")
	new := release(2, old, "1.0.0", "1.0.1")
	patch, err := delta.Encode(old, new)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Clone(old)
	edited[len(edited)/2] ^= 1
	for name, base := range map[string][]byte{"edited": edited, "shorter": old[1:], "nil": nil, "other": new} {
		got, err := apply(t, base, patch, 1<<30)
		if !errors.Is(err, delta.ErrWrongBase) || len(got) != 0 {
			t.Errorf("%s base: got %v after %d bytes, want ErrWrongBase before any", name, err, len(got))
		}
	}
}

func TestEncodeTooLarge(t *testing.T) {
	// The kernel maps these zero pages only when touched, and Encode refuses before touching them.
	big := make([]byte, delta.MaxInput)
	if _, err := delta.Encode(big[:1], big); !errors.Is(err, delta.ErrTooLarge) {
		t.Errorf("got %v, want ErrTooLarge", err)
	}
}

// failingWriter fails after n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		n := w.n
		w.n = 0
		return n, io.ErrShortWrite
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteError(t *testing.T) {
	old := bundle(1, 300, "1.0.0")
	for name, new := range map[string][]byte{"copies": release(2, old, "1.0.0", "1.0.1"), "literals": random(1, 5000)} {
		patch, err := delta.Encode(old, new)
		if err != nil {
			t.Fatal(err)
		}
		n, err := delta.Apply(&failingWriter{n: 1000}, old, bytes.NewReader(patch), int64(len(new)))
		if !errors.Is(err, io.ErrShortWrite) || errors.Is(err, delta.ErrCorrupt) || n != 1000 {
			t.Errorf("%s: got %d, %v; want 1000, ErrShortWrite", name, n, err)
		}
	}
}

func FuzzApply(f *testing.F) {
	for _, p := range pairs() {
		if len(p.old)+len(p.new) > 200_000 {
			continue
		}
		patch, err := delta.Encode(p.old, p.new)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p.old, patch)
	}
	f.Fuzz(func(t *testing.T, old, patch []byte) {
		const max = 1 << 20
		var out bytes.Buffer
		n, err := delta.Apply(&out, old, bytes.NewReader(patch), max)
		if n != int64(out.Len()) || n > max {
			t.Fatalf("Apply returned %d, wrote %d bytes", n, out.Len())
		}
		if err != nil && !errors.Is(err, delta.ErrCorrupt) && !errors.Is(err, delta.ErrWrongBase) && !errors.Is(err, delta.ErrTooLarge) {
			t.Fatalf("error of no documented kind: %v", err)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	old := bundle(1, 3000, "2.13.7")
	new := release(2, old, "2.13.7", "2.14.0")
	b.SetBytes(int64(len(new)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := delta.Encode(old, new); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApply(b *testing.B) {
	old := bundle(1, 3000, "2.13.7")
	new := release(2, old, "2.13.7", "2.14.0")
	patch, err := delta.Encode(old, new)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(new)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := delta.Apply(io.Discard, old, bytes.NewReader(patch), int64(len(new))); err != nil {
			b.Fatal(err)
		}
	}
}
