package mds

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"strconv"
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
	maxConfigName       = 128
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
// digits, '.', '_' and '-', starting with a letter or digit, like
// "checkout".
func ValidConfigNamespace(ns string) error {
	if !validName(ns, 64, false) {
		return Errorf(EINVALID, "namespace %.80q must be 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit, like checkout", ns)
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
