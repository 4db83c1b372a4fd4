// Package config is remote configuration beyond what every layer shares
// (the root package's names, types, limits and canonical values): the
// JSON Schemas teams attach to JSON keys, checked on every write so that
// a value that does not fit cannot ship; and what a device sees of a
// namespace, its version overlaid by the gray changes in force for it,
// newest first. Pure: no storage, no HTTP.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/mds-dev/mds"
)

// Schema is a compiled JSON Schema of a JSON key: draft 2020-12 unless
// its $schema names another draft the library knows.
type Schema struct {
	s *jsonschema.Schema
}

// schemaURL is where a key's schema is compiled; only that one document
// resolves.
const schemaURL = "mem:///schema.json"

// noLoads refuses to load any document: a schema must stand alone, so
// that checking a value reads neither files nor the network.
type noLoads struct{}

func (noLoads) Load(url string) (any, error) {
	return nil, fmt.Errorf("the schema refers to %s; a key's schema must stand alone, without references to other documents", url)
}

// CompileSchema compiles raw, a JSON Schema of at most
// mds.MaxConfigSchema bytes that refers to no other document, and says
// what is wrong with it otherwise.
func CompileSchema(raw []byte) (*Schema, error) {
	if len(raw) > mds.MaxConfigSchema {
		return nil, mds.Errorf(mds.EINVALID, "the schema is %d bytes; at most %d", len(raw), mds.MaxConfigSchema)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, mds.Errorf(mds.EINVALID, "the schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoads{})
	c.DefaultDraft(jsonschema.Draft2020)
	// "format" is an annotation in draft 2020-12; a team that writes
	// "format": "email" means it.
	c.AssertFormat()
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, mds.Errorf(mds.EINVALID, "the schema: %v", err)
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		return nil, mds.Errorf(mds.EINVALID, "the schema is not a valid JSON Schema: %s", tidy(err))
	}
	return &Schema{s: s}, nil
}

// Check checks value, a JSON value, against s, and says where and why it
// does not fit.
func (s *Schema) Check(value []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
	if err != nil {
		return mds.Errorf(mds.EINVALID, "the value is not JSON: %v", err)
	}
	if err := s.s.Validate(v); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return mds.Errorf(mds.EINVALID, "the value does not fit the key's schema: %s", tidy(ve))
		}
		return mds.Errorf(mds.EINVALID, "the value does not fit the key's schema: %v", err)
	}
	return nil
}

// tidy is the library's message without the document's made-up URL,
// which means nothing to whoever wrote the schema, on one line.
func tidy(err error) string {
	msg := strings.ReplaceAll(err.Error(), schemaURL, "the schema")
	lines := strings.Split(msg, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[i]), "- "))
	}
	if len(lines) > 1 && strings.HasPrefix(lines[0], "jsonschema") {
		lines = lines[1:]
	}
	return strings.Join(lines, "; ")
}

// CheckKeys holds every key of keys that has a schema to it: the schema
// must compile and the key's value fit. Keys are checked in name order,
// and the first that does not fit is named.
func CheckKeys(ns string, keys mds.ConfigKeys) error {
	for _, name := range slices.Sorted(maps.Keys(keys)) {
		k := keys[name]
		if len(k.Schema) == 0 {
			continue
		}
		s, err := CompileSchema(k.Schema)
		if err == nil {
			err = s.Check(k.Value)
		}
		if err != nil {
			return mds.Errorf(mds.EINVALID, "%s.%s: %s", ns, name, mds.ErrorMessage(err))
		}
	}
	return nil
}
