package config_test

import (
	"strings"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/config"
)

func TestSchema(t *testing.T) {
	s, err := config.CompileSchema([]byte(`{"type":"object","properties":{"limit":{"type":"integer","minimum":1},
		"mode":{"enum":["fast","safe"]}},"required":["limit"],"additionalProperties":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check([]byte(`{"limit":3,"mode":"safe"}`)); err != nil {
		t.Errorf("a fitting value: %v", err)
	}
	for value, says := range map[string]string{
		`{"limit":0}`:               "/limit",
		`{"mode":"fast"}`:           "limit",
		`{"limit":2,"mode":"slow"}`: "/mode",
		`{"limit":2,"typo":true}`:   "typo",
		`[1]`:                       "object",
	} {
		err := s.Check([]byte(value))
		if mds.ErrorCode(err) != mds.EINVALID || !strings.Contains(err.Error(), says) || strings.Contains(err.Error(), "mem:") {
			t.Errorf("%s: %v; want a refusal naming %q", value, err, says)
		}
	}
}

func TestCompileSchemaRefusals(t *testing.T) {
	for name, raw := range map[string]string{
		"not JSON":        `{"type":`,
		"a bad type":      `{"type":"integr"}`,
		"a remote ref":    `{"$ref":"https://example.com/schema.json"}`,
		"a file ref":      `{"$ref":"file:///etc/passwd"}`,
		"a bad pattern":   `{"type":"string","pattern":"("}`,
		"over the limit":  `{"description":"` + strings.Repeat("x", mds.MaxConfigSchema) + `"}`,
		"minimum of text": `{"minimum":"one"}`,
	} {
		if _, err := config.CompileSchema([]byte(raw)); mds.ErrorCode(err) != mds.EINVALID {
			t.Errorf("%s: compiled, %v", name, err)
		}
	}
	if _, err := config.CompileSchema([]byte(`{"$defs":{"n":{"type":"number"}},"items":{"$ref":"#/$defs/n"}}`)); err != nil {
		t.Errorf("a reference within the schema: %v", err)
	}
	email, err := config.CompileSchema([]byte(`{"type":"string","format":"email"}`))
	if err != nil {
		t.Fatal(err)
	}
	if email.Check([]byte(`"x"`)) == nil || email.Check([]byte(`"a@b.example"`)) != nil {
		t.Error("a format is not asserted")
	}
}
