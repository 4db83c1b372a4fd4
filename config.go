package mds

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Remote configuration: typed key/values ("switches"), grouped in
// namespaces, per app. A value has the type its key declares, and a JSON
// value may be held to a JSON Schema the team attaches to the key, so
// that a typo cannot ship. What follows is the part every layer shares:
// names, types, limits, and the one canonical encoding of a value.

// ConfigType is the type of a configuration key's values.
type ConfigType string

const (
	ConfigString  ConfigType = "string"
	ConfigInteger ConfigType = "integer" // 64-bit signed
	ConfigFloat   ConfigType = "float"   // 64-bit, finite
	ConfigBoolean ConfigType = "boolean"
	ConfigJSON    ConfigType = "json" // any JSON value, optionally held to a schema
)

// ConfigTypes lists the types in the order people meet them.
var ConfigTypes = []ConfigType{ConfigString, ConfigInteger, ConfigFloat, ConfigBoolean, ConfigJSON}

// Bounds of configuration. Every check answer carries a device's
// effective configuration, so it stays small.
const (
	MaxConfigKeys       = 5_000    // keys of one app, all namespaces together
	MaxConfigNamespaces = 100      // namespaces of one app
	MaxConfigValue      = 64 << 10 // bytes of one value, as canonical JSON
	MaxConfigSchema     = 64 << 10 // bytes of one key's JSON Schema
	// MaxConfigBytes bounds the values and schemas of one app's current
	// versions together, and those of one change: what devices fetch,
	// nodes keep, and one request carries.
	MaxConfigBytes = 4 << 20
	// MaxLiveConfigChanges bounds the configuration tasks of one app live
	// at once: a device's configuration is its namespaces' versions and
	// the set of those changes that admit it.
	MaxLiveConfigChanges = 64
	maxConfigName        = 128
	maxConfigDescription = 500
	MaxConfigMessage     = 1000 // bytes of a version's or a change's message
)

// Validate reports whether t is a known type.
func (t ConfigType) Validate() error {
	switch t {
	case ConfigString, ConfigInteger, ConfigFloat, ConfigBoolean, ConfigJSON:
		return nil
	}
	return Errorf(EINVALID, "config type %q is not one of string, integer, float, boolean, json", string(t))
}

// ValidConfigNamespace checks a namespace's name: 1-64 lowercase letters,
// digits, '_' and '-', starting with a letter or digit, like "checkout".
// No dot: a device names a key "checkout.new_flow", its namespace up to
// the first dot.
func ValidConfigNamespace(ns string) error {
	if !validName(ns, 64, false) || strings.Contains(ns, ".") {
		return Errorf(EINVALID, "namespace %.80q must be 1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit, like checkout", ns)
	}
	return nil
}

// ValidConfigKey checks a key's name: 1-128 letters, digits, '.', '_'
// and '-', starting with a letter or digit, like "new_flow.enabled". Keys
// are case-sensitive, as the getters that read them are.
func ValidConfigKey(key string) error {
	if !validName(key, maxConfigName, true) {
		return Errorf(EINVALID, "config key %.80q must be 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit, like new_flow.enabled", key, maxConfigName)
	}
	return nil
}

// validName reports whether s is 1 to max bytes of [a-z0-9._-] (and
// upper-case letters with upper), starting with a letter or digit.
func validName(s string, max int, upper bool) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || upper && 'A' <= c && c <= 'Z' ||
			i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return false
		}
	}
	return true
}

// CheckConfigValue checks that raw, one JSON value in valid UTF-8, is of
// type t, and returns its canonical encoding, which is how it is stored,
// compared and sent: an integer in plain decimal within 64 bits (1.0 and
// 1e2 are integers; 1.5 is not, nor is any fraction however small), a
// float finite and in Go's shortest form, a string as a JSON string, a
// boolean, and JSON compacted with every object's members sorted by name
// and no name twice (parsers disagree on which of two would count).
// A value of more than MaxConfigValue bytes is refused. A JSON value's
// schema, if its key has one, is checked elsewhere (package config).
func CheckConfigValue(t ConfigType, raw []byte) ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, Errorf(EINVALID, "a %s value is missing", t)
	}
	if !utf8.Valid(raw) {
		return nil, Errorf(EINVALID, "the value is not valid UTF-8")
	}
	if !json.Valid(raw) {
		return nil, Errorf(EINVALID, "the value is not JSON: give a %s as JSON (a string in double quotes)", t)
	}
	// null, and a number in quotes, decode into Go's types without
	// complaint: the JSON type is checked first.
	switch c := raw[0]; {
	case (t == ConfigInteger || t == ConfigFloat) && c != '-' && (c < '0' || c > '9'):
		return nil, Errorf(EINVALID, "the value %.40s is not a number; give it without quotes", raw)
	case t == ConfigString && c != '"':
		return nil, Errorf(EINVALID, "the value %.40s is not a string; give it in double quotes", raw)
	case t == ConfigBoolean && c != 't' && c != 'f':
		return nil, Errorf(EINVALID, "the value %.40s is not a boolean; give true or false", raw)
	}
	var out []byte
	switch t {
	case ConfigString:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, Errorf(EINVALID, "the value %.40s is not a string; give it in double quotes", raw)
		}
		out = canonicalJSON(s)
	case ConfigInteger:
		var f json.Number
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, Errorf(EINVALID, "the value %.40s is not an integer", raw)
		}
		// Exactly: a float would round 9007199254740993.5 to an integer.
		r, ok := new(big.Rat).SetString(f.String())
		if !ok || !r.IsInt() || !r.Num().IsInt64() {
			return nil, Errorf(EINVALID, "the value %s is not an integer within 64 bits", f)
		}
		out = strconv.AppendInt(nil, r.Num().Int64(), 10)
	case ConfigFloat:
		var f json.Number
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, Errorf(EINVALID, "the value %.40s is not a number", raw)
		}
		v, err := strconv.ParseFloat(f.String(), 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, Errorf(EINVALID, "the value %s is not a finite 64-bit float", f)
		}
		out = strconv.AppendFloat(nil, v, 'g', -1, 64)
	case ConfigBoolean:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, Errorf(EINVALID, "the value %.40s is not a boolean; give true or false", raw)
		}
		out = strconv.AppendBool(nil, b)
	case ConfigJSON:
		if err := noDuplicateNames(raw); err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // numbers as written: 1.10 stays 1.10
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, Errorf(EINVALID, "the value is not JSON: %v", err)
		}
		out = canonicalJSON(v) // maps encode with their keys sorted
	}
	if len(out) > MaxConfigValue {
		return nil, Errorf(EINVALID, "the value is %d bytes; a value is at most %d, as every check answer may carry it", len(out), MaxConfigValue)
	}
	return out, nil
}

// canonicalJSON encodes v compactly without HTML escaping: "<" stays one
// byte, as other platforms write it. v is decoded JSON, which encodes.
func canonicalJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// noDuplicateNames refuses a JSON value with an object that names a
// member twice.
func noDuplicateNames(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	type frame struct {
		object bool
		names  map[string]bool
		key    bool // the next token of an object is a member's name
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or what json.Valid already refused
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
				continue
			}
			name := tok.(string)
			if top.names[name] {
				return Errorf(EINVALID, "the value names member %.40q twice in one object; give each member once", name)
			}
			top.names[name] = true
			top.key = false
			continue
		}
		switch d, _ := tok.(json.Delim); d {
		case '{':
			stack = append(stack, &frame{object: true, names: map[string]bool{}, key: true})
			continue
		case '[':
			stack = append(stack, &frame{})
			continue
		case ']', '}':
			stack = stack[:len(stack)-1]
		}
		// A value ended: an object's next token is a name again.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
}

// ConfigKey is one key of a namespace: its type, its value (canonical,
// see CheckConfigValue), and for a JSON key optionally the JSON Schema its
// values must fit, with a description for people.
type ConfigKey struct {
	Type        ConfigType      `json:"type" enum:"string,integer,float,boolean,json"`
	Value       json.RawMessage `json:"value"`
	Schema      json.RawMessage `json:"schema,omitempty" doc:"A JSON Schema (draft 2020-12 by default) the values of a json key must fit"`
	Description string          `json:"description,omitempty"`
}

// Validate checks k as key name and makes its value canonical. The schema
// is only checked to be JSON of a JSON key here; compiling it and holding
// the value to it is package config's (config.CheckKeys).
func (k *ConfigKey) Validate(name string) error {
	if err := ValidConfigKey(name); err != nil {
		return err
	}
	if err := k.Type.Validate(); err != nil {
		return Errorf(EINVALID, "key %s: %s", name, ErrorMessage(err))
	}
	v, err := CheckConfigValue(k.Type, k.Value)
	if err != nil {
		return Errorf(EINVALID, "key %s: %s", name, ErrorMessage(err))
	}
	k.Value = v
	if len(k.Schema) > 0 && k.Type != ConfigJSON {
		return Errorf(EINVALID, "key %s is of type %s; only json keys take a schema", name, k.Type)
	}
	if len(k.Schema) > MaxConfigSchema || len(k.Schema) > 0 && !json.Valid(k.Schema) {
		return Errorf(EINVALID, "key %s: the schema must be JSON of at most %d bytes", name, MaxConfigSchema)
	}
	if len(k.Description) > maxConfigDescription || !utf8.ValidString(k.Description) {
		return Errorf(EINVALID, "key %s: the description must be UTF-8 of at most %d bytes", name, maxConfigDescription)
	}
	return nil
}

// Equal reports whether k and o define a key alike.
func (k ConfigKey) Equal(o ConfigKey) bool {
	return k.Type == o.Type && bytes.Equal(k.Value, o.Value) && bytes.Equal(k.Schema, o.Schema) && k.Description == o.Description
}

// ConfigKeys are the keys of a namespace, by name.
type ConfigKeys map[string]ConfigKey

// Size is the bytes of the keys' names, values and schemas, which
// MaxConfigBytes bounds.
func (ks ConfigKeys) Size() int {
	n := 0
	for name, k := range ks {
		n += len(name) + len(k.Value) + len(k.Schema)
	}
	return n
}

// Equal reports whether ks and o hold the same keys alike.
func (ks ConfigKeys) Equal(o ConfigKeys) bool {
	return maps.EqualFunc(ks, o, ConfigKey.Equal)
}

// ConfigVersion is one version of a namespace of an app: every key it
// holds. Versions are immutable and numbered 1, 2, 3… per namespace;
// the newest is what every device gets, under the gray changes in force
// for it. A change, a rollback, a promoted gray change: each makes a new
// version, so history only grows.
type ConfigVersion struct {
	ID        int64      `json:"-"`
	AppID     int64      `json:"-"`
	Namespace string     `json:"namespace"`
	Number    int64      `json:"version"`
	Keys      ConfigKeys `json:"keys,omitempty"`
	KeyCount  int        `json:"key_count"`
	// Size is the bytes of its keys' names, values and schemas.
	Size    int    `json:"size"`
	Message string `json:"message"`
	// Restores is the earlier version a rollback made this one a copy
	// of, and Promotes the gray change (task) a promotion took in; 0
	// otherwise.
	Restores  int64     `json:"restores,omitempty"`
	Promotes  int64     `json:"promotes,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// ConfigEdit is what a write does to one namespace, against its current
// version: set keys and delete others, replace every key (Replace: keys
// Set lacks are deleted), or restore an earlier version's keys (Restore,
// a rollback).
type ConfigEdit struct {
	Namespace string
	// Base, when set, is the version the edit was made against: the
	// write is refused (ECONFLICT) if the namespace has moved on, so
	// that an edit read from one version never undoes another's. 0 is a
	// namespace without versions.
	Base    *int64
	Set     ConfigKeys
	Delete  []string
	Replace bool
	Restore int64
}

// Validate checks the edit's names and makes its values canonical.
func (e *ConfigEdit) Validate() error {
	if err := ValidConfigNamespace(e.Namespace); err != nil {
		return err
	}
	if e.Restore < 0 || e.Restore > 0 && (len(e.Set) > 0 || len(e.Delete) > 0 || e.Replace) {
		return Errorf(EINVALID, "namespace %s: a rollback restores an earlier version as it was; it sets and deletes nothing else", e.Namespace)
	}
	return validKeyChange(e.Namespace, e.Set, e.Delete)
}

// validKeyChange checks keys to set and delete of namespace ns.
func validKeyChange(ns string, set ConfigKeys, del []string) error {
	if len(set)+len(del) > MaxConfigKeys {
		return Errorf(EINVALID, "namespace %s: a change touches at most %d keys", ns, MaxConfigKeys)
	}
	if n := set.Size(); n > MaxConfigBytes {
		return Errorf(EINVALID, "namespace %s: the change sets %d bytes of names, values and schemas; at most %d", ns, n, MaxConfigBytes)
	}
	for _, name := range slices.Sorted(maps.Keys(set)) {
		k := set[name]
		if err := k.Validate(name); err != nil {
			return Errorf(EINVALID, "namespace %s: %s", ns, ErrorMessage(err))
		}
		set[name] = k
	}
	for _, name := range del {
		if err := ValidConfigKey(name); err != nil {
			return err
		}
		if _, ok := set[name]; ok {
			return Errorf(EINVALID, "namespace %s: key %s is both set and deleted", ns, name)
		}
	}
	return nil
}

// Apply returns keys with e applied (but a Restore, which the store
// resolves), as a new map.
func (e *ConfigEdit) Apply(keys ConfigKeys) ConfigKeys {
	out := ConfigKeys{}
	if !e.Replace {
		maps.Copy(out, keys)
	}
	for _, k := range e.Delete {
		delete(out, k)
	}
	maps.Copy(out, e.Set)
	return out
}

// ConfigSpec is a gray change of configuration: an artifact of kind
// config, which a task delivers to its audience over the namespace's
// current version. It sets keys (each whole: type, value, schema) and
// deletes others; Base is the version it was written against, for people
// reading it (it applies over whatever version is current).
type ConfigSpec struct {
	Namespace string     `json:"namespace"`
	Base      int64      `json:"base"`
	Set       ConfigKeys `json:"set,omitempty"`
	Delete    []string   `json:"delete,omitempty"`
	Message   string     `json:"message"`
}

// Kind implements ArtifactSpec.
func (*ConfigSpec) Kind() Kind { return KindConfig }

// Blobs implements ArtifactSpec: a change's values are in its spec.
func (*ConfigSpec) Blobs() []BlobRef { return nil }

// Validate implements ArtifactSpec. The artifact's version is the base
// version's number, and it is for every platform.
func (p *ConfigSpec) Validate(a *Artifact) error {
	if err := ValidConfigNamespace(p.Namespace); err != nil {
		return err
	}
	if len(p.Set)+len(p.Delete) == 0 {
		return Errorf(EINVALID, "a configuration change sets or deletes at least one key")
	}
	if err := validKeyChange(p.Namespace, p.Set, p.Delete); err != nil {
		return err
	}
	if err := ValidText("message", p.Message, MaxConfigMessage, true); err != nil {
		return err
	}
	if a.Platform != "" {
		return Errorf(EINVALID, "a configuration change is for every platform; narrow it with a platform rule")
	}
	if p.Base < 0 || a.Version != strconv.FormatInt(p.Base, 10) {
		return Errorf(EINVALID, "a configuration change's version is the number of the version it was written against, %d", p.Base)
	}
	return nil
}

// ConfigPolicy is how a configuration task behaves: like any task,
// through its targeting; promoting a gray one without rules makes its
// change the namespace's next version (see Task.Apply).
type ConfigPolicy struct{}

// Kind implements TaskPolicy.
func (*ConfigPolicy) Kind() Kind { return KindConfig }

// Validate implements TaskPolicy.
func (*ConfigPolicy) Validate() error { return nil }
