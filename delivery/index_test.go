package delivery

import (
	"fmt"
	"testing"
)

// TestIndexCopyOnWrite: an index built from another by an editor changes
// only itself, shares every shard it did not write, and copies at most one
// shard per key written.
func TestIndexCopyOnWrite(t *testing.T) {
	var a index[string, int]
	e := indexEditor[string, int]{x: &a}
	for i := range 1000 {
		e.set(fmt.Sprint("key-", i), i)
	}
	b := a // what the next snapshot starts from
	eb := indexEditor[string, int]{x: &b}
	eb.set("key-7", -7)
	eb.delete("key-8")
	eb.set("new", 1)
	if v, ok := a.get("key-7"); !ok || v != 7 {
		t.Errorf("the original's key-7 = %d, %v after the copy changed it", v, ok)
	}
	if _, ok := a.get("key-8"); !ok {
		t.Error("the original lost key-8 when the copy deleted it")
	}
	if _, ok := a.get("new"); ok {
		t.Error("the original holds a key added to the copy")
	}
	if v, _ := b.get("key-7"); v != -7 {
		t.Errorf("the copy's key-7 = %d, want -7", v)
	}
	if _, ok := b.get("key-8"); ok {
		t.Error("the copy still holds key-8")
	}
	if v, ok := b.get("key-999"); !ok || v != 999 {
		t.Errorf("the copy's key-999 = %d, %v", v, ok)
	}
	copied := 0
	for i := range a.shards {
		if fmt.Sprintf("%p", a.shards[i]) != fmt.Sprintf("%p", b.shards[i]) {
			copied++
		}
	}
	if want := distinctShards("key-7", "key-8", "new"); copied != want {
		t.Errorf("%d shards copied for writes to %d", copied, want)
	}
	n := 0
	for range b.all() {
		n++
	}
	if n != 1000 {
		t.Errorf("the copy holds %d entries, want 1000", n)
	}
}

func distinctShards(keys ...string) int {
	seen := map[int]bool{}
	for _, k := range keys {
		seen[shardOf(k)] = true
	}
	return len(seen)
}
