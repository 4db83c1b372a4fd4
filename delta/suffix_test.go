package delta

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSuffixArray(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	texts := [][]byte{nil, []byte("a"), []byte("aa"), []byte("ab"), []byte("ba"), []byte("banana"), []byte("mississippi"),
		bytes.Repeat([]byte("abc"), 100), bytes.Repeat([]byte{0}, 1000), bytes.Repeat([]byte{255, 0}, 333)}
	for range 2000 {
		text := make([]byte, rng.IntN(300))
		alphabet := 1 + rng.IntN(4)
		if rng.IntN(4) == 0 {
			alphabet = 256
		}
		for i := range text {
			text[i] = byte(rng.IntN(alphabet))
		}
		texts = append(texts, text)
	}
	for _, text := range texts {
		got := suffixArray(text)
		want := make([]int32, len(text))
		for i := range want {
			want[i] = int32(i)
		}
		slices.SortFunc(want, func(a, b int32) int { return bytes.Compare(text[a:], text[b:]) })
		if !slices.Equal(got, want) {
			t.Fatalf("suffixArray(%q) = %v, want %v", text, got, want)
		}
	}
}
