package api

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/mds-dev/mds"
)

// Remote configuration's requests and answers.

// SetKey is a key as a write gives it. Without a type, the key keeps
// the type, schema and description it has in the namespace's current
// version (so that setting a value keeps the key's schema); with one, the
// key is exactly as given.
type SetKey struct {
	Type        mds.ConfigType  `json:"type,omitempty" enum:"string,integer,float,boolean,json" doc:"Omit to keep the key's current type, schema and description"`
	Value       json.RawMessage `json:"value" doc:"The value, as JSON of the key's type: \"text\", 42, 0.5, true, or any JSON"`
	Schema      json.RawMessage `json:"schema,omitempty" doc:"A JSON Schema a json key's values must fit (draft 2020-12 unless $schema says otherwise); it must stand alone, without $ref to other documents"`
	Description string          `json:"description,omitempty" maxLength:"500"`
}

// NamespaceEdit is what a write does to one namespace.
type NamespaceEdit struct {
	Base    *int64            `json:"base,omitempty" doc:"The version this edit was made against: refused if the namespace has moved on (0: it has no versions yet)"`
	Set     map[string]SetKey `json:"set,omitempty" doc:"Keys to set, by name"`
	Delete  []string          `json:"delete,omitempty" doc:"Keys to delete"`
	Replace bool              `json:"replace,omitempty" doc:"The namespace holds exactly the keys of set afterwards: keys it lacks are deleted"`
}

// EditConfig makes a new version of each namespace it changes, at once
// for every device (under the gray changes in force for it).
type EditConfig struct {
	Message    string                   `json:"message,omitempty" maxLength:"1000" doc:"Why: kept in the history of every version made"`
	Namespaces map[string]NamespaceEdit `json:"namespaces" doc:"The edit of each namespace, by name"`
}

// ConfigVersions are versions of namespaces: those a write made (none
// when it changed nothing), a namespace's history, or an app's current
// versions.
type ConfigVersions struct {
	Versions []*mds.ConfigVersion `json:"versions"`
	Next     string               `json:"next,omitempty" doc:"The cursor of the next page of a history"`
}

// Rollback makes a new version of a namespace that holds what an earlier
// one held.
type Rollback struct {
	To      int64  `json:"to" minimum:"1" doc:"The version to restore"`
	Message string `json:"message,omitempty" maxLength:"1000"`
}

// ConfigChange is a gray change of a namespace: a package of kind config,
// which a task releases to its audience over the namespace's current
// version (POST /api/v1/apps/{app}/tasks with its package_id).
type ConfigChange struct {
	Namespace string            `json:"namespace" doc:"The namespace it changes"`
	Set       map[string]SetKey `json:"set,omitempty" doc:"Keys to set for the change's audience, by name"`
	Delete    []string          `json:"delete,omitempty" doc:"Keys the change's audience does without"`
	Message   string            `json:"message,omitempty" maxLength:"1000"`
}

// KeyDiff is how one key differs between two versions: absent (null) on
// one side when it was added or deleted.
type KeyDiff struct {
	Key  string         `json:"key"`
	From *mds.ConfigKey `json:"from"`
	To   *mds.ConfigKey `json:"to"`
}

// DiffKeys lists how keys differ from from to to, by name; same says
// whether two definitions of a key are alike.
func DiffKeys(from, to mds.ConfigKeys, same func(a, b mds.ConfigKey) bool) []KeyDiff {
	names := map[string]bool{}
	for name := range from {
		names[name] = true
	}
	for name := range to {
		names[name] = true
	}
	diffs := []KeyDiff{}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		f, fok := from[name]
		t, tok := to[name]
		if fok && tok && same(f, t) {
			continue
		}
		d := KeyDiff{Key: name}
		if fok {
			d.From = &f
		}
		if tok {
			d.To = &t
		}
		diffs = append(diffs, d)
	}
	return diffs
}

// ConfigDiff is what changed in a namespace from one version to another.
type ConfigDiff struct {
	Namespace string    `json:"namespace"`
	From      int64     `json:"from"`
	To        int64     `json:"to"`
	Keys      []KeyDiff `json:"keys"`
}

// ExplainedNamespace is what a device would see of one namespace, and
// where each value comes from.
type ExplainedNamespace struct {
	Namespace string         `json:"namespace"`
	Version   int64          `json:"version" doc:"The namespace's current version; 0 when only gray changes name it"`
	Gray      []int64        `json:"gray" doc:"The tasks of the gray changes in force for the device, oldest first"`
	Keys      []ExplainedKey `json:"keys"`
}

// ExplainedKey is one key a device would see (or, Deleted, would not),
// and its source: the namespace's version, or a gray change's task.
type ExplainedKey struct {
	Key     string          `json:"key"`
	Value   json.RawMessage `json:"value,omitempty"`
	Deleted bool            `json:"deleted,omitempty" doc:"A gray change deletes the key for this device"`
	Version int64           `json:"version,omitempty" doc:"The version the value comes from"`
	TaskID  int64           `json:"task_id,omitempty" doc:"The task of the gray change the value (or its absence) comes from"`
}
