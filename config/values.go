package config

import (
	"cmp"
	"maps"
	"slices"
)

// Values are one namespace's configuration: key → canonical JSON value
// (mds.CheckConfigValue), so that equal values are equal bytes.
type Values map[string][]byte

// Change is what one change of a namespace does: the keys it sets, and
// those it removes.
type Change struct {
	Set    Values
	Delete []string
}

// Layer is a change in force for a device over its namespace's version:
// a gray change whose release admits the device, named by its task.
type Layer struct {
	Task   int64
	Change Change
}

// Source says where a key's effective value came from: the version (task
// 0), or the gray change of task Task.
type Source struct {
	Task int64
}

// Effective is what a device sees of a namespace: the version's values,
// and over them the changes in force for it. Where several changes touch
// one key, the newest (the highest task ID) wins, whatever order layers
// are given in; a change to a key no other change touches wins over the
// version. So releasing a new version leaves what a live gray change sets
// for its audience as that change sets it. It returns the values and,
// for every key a change touched, where its value (or its absence) came
// from.
func Effective(version Values, layers []Layer) (Values, map[string]Source) {
	layers = slices.Clone(layers)
	slices.SortFunc(layers, func(a, b Layer) int { return cmp.Compare(b.Task, a.Task) })
	out := maps.Clone(version)
	if out == nil {
		out = Values{}
	}
	from := map[string]Source{}
	for _, l := range layers {
		for _, k := range l.Change.Delete {
			if _, done := from[k]; !done {
				delete(out, k)
				from[k] = Source{Task: l.Task}
			}
		}
		for k, v := range l.Change.Set {
			if _, done := from[k]; !done {
				out[k] = v
				from[k] = Source{Task: l.Task}
			}
		}
	}
	return out, from
}
