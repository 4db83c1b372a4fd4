package config_test

import (
	"reflect"
	"testing"

	"github.com/mds-dev/mds/config"
)

func vals(kv ...string) config.Values {
	v := config.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v[kv[i]] = []byte(kv[i+1])
	}
	return v
}

func TestDiff(t *testing.T) {
	a := vals("a", "1", "b", "true", "c", `"x"`)
	b := vals("a", "1", "b", "false", "d", "{}")
	got := config.Diff(a, b)
	want := []config.KeyChange{{Key: "b", From: []byte("true"), To: []byte("false")}, {Key: "c", From: []byte(`"x"`)}, {Key: "d", To: []byte("{}")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("diff %+v, want %+v", got, want)
	}
	if d := config.Diff(a, a); len(d) != 0 {
		t.Errorf("a set of values differs from itself: %+v", d)
	}
}

func TestChangeApply(t *testing.T) {
	base := vals("a", "1", "b", "2")
	got := config.Change{Set: vals("b", "3", "c", "4"), Delete: []string{"a"}}.Apply(base)
	if !reflect.DeepEqual(got, vals("b", "3", "c", "4")) {
		t.Errorf("applied: %v", got)
	}
	if !reflect.DeepEqual(base, vals("a", "1", "b", "2")) {
		t.Error("Apply changed its base")
	}
}

// TestEffective: the newest change touching a key wins, in whatever order
// the changes come; a key no change touches is the version's; a change
// that deletes a key hides it; and a new version leaves what a change
// sets as the change sets it.
func TestEffective(t *testing.T) {
	version := vals("a", "1", "b", "1", "c", "1", "d", "1")
	older := config.Layer{Task: 3, Change: config.Change{Set: vals("a", "3", "b", "3")}}
	newer := config.Layer{Task: 7, Change: config.Change{Set: vals("b", "7"), Delete: []string{"c"}}}
	for _, order := range [][]config.Layer{{older, newer}, {newer, older}} {
		got, from := config.Effective(version, order)
		if !reflect.DeepEqual(got, vals("a", "3", "b", "7", "d", "1")) {
			t.Errorf("effective %v", got)
		}
		if !reflect.DeepEqual(from, map[string]config.Source{"a": {Task: 3}, "b": {Task: 7}, "c": {Task: 7}}) {
			t.Errorf("sources %v", from)
		}
	}
	next := config.Change{Set: vals("a", "100", "d", "100")}.Apply(version)
	got, _ := config.Effective(next, []config.Layer{older})
	if string(got["a"]) != "3" || string(got["d"]) != "100" {
		t.Errorf("a new version over a gray change: %v; the change's audience keeps its a", got)
	}
	if got, from := config.Effective(nil, nil); len(got) != 0 || len(from) != 0 {
		t.Errorf("nothing: %v %v", got, from)
	}
}
