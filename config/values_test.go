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
	next := vals("a", "100", "b", "1", "c", "1", "d", "100") // a new version
	got, _ := config.Effective(next, []config.Layer{older})
	if string(got["a"]) != "3" || string(got["d"]) != "100" {
		t.Errorf("a new version over a gray change: %v; the change's audience keeps its a", got)
	}
	if got, from := config.Effective(nil, nil); len(got) != 0 || len(from) != 0 {
		t.Errorf("nothing: %v %v", got, from)
	}
}
