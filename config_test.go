package mds_test

import (
	"strings"
	"testing"

	"github.com/mds-dev/mds"
)

func TestCheckConfigValue(t *testing.T) {
	for _, c := range []struct {
		t        mds.ConfigType
		in, want string // want "" for a refusal
	}{
		{mds.ConfigString, `"hello"`, `"hello"`},
		{mds.ConfigString, ` "a\u0041<" `, `"aA<"`},
		{mds.ConfigString, `7`, ``},
		{mds.ConfigString, `null`, ``},
		{mds.ConfigInteger, `42`, `42`},
		{mds.ConfigInteger, `-9223372036854775808`, `-9223372036854775808`},
		{mds.ConfigInteger, `1e2`, `100`},
		{mds.ConfigInteger, `3.0`, `3`},
		{mds.ConfigInteger, `1.5`, ``},
		{mds.ConfigInteger, `9223372036854775808`, ``},
		{mds.ConfigInteger, `9007199254740993.5`, ``},
		{mds.ConfigInteger, `1.0000000000000001`, ``},
		{mds.ConfigInteger, `9223372036854775807`, `9223372036854775807`},
		{mds.ConfigInteger, `"7"`, ``},
		{mds.ConfigInteger, `true`, ``},
		{mds.ConfigFloat, `0.25`, `0.25`},
		{mds.ConfigFloat, `1E3`, `1000`},
		{mds.ConfigFloat, `-0.5e-3`, `-0.0005`},
		{mds.ConfigFloat, `1e999`, ``},
		{mds.ConfigFloat, `"0.5"`, ``},
		{mds.ConfigBoolean, `true`, `true`},
		{mds.ConfigBoolean, `false`, `false`},
		{mds.ConfigBoolean, `"true"`, ``},
		{mds.ConfigBoolean, `1`, ``},
		{mds.ConfigJSON, ` {"a": [1, 2], "b": null} `, `{"a":[1,2],"b":null}`},
		{mds.ConfigJSON, `{"b":1.10,"a":{"d":"<",  "c":[{"y":1,"x":2}]}}`, `{"a":{"c":[{"x":2,"y":1}],"d":"<"},"b":1.10}`},
		{mds.ConfigJSON, `{"a":1,"a":2}`, ``},
		{mds.ConfigJSON, `[{"a":{"b":1,"b":2}}]`, ``},
		{mds.ConfigJSON, `[{"a":1},{"a":2}]`, `[{"a":1},{"a":2}]`},
		{mds.ConfigJSON, "\"\xff\"", ``},
		{mds.ConfigString, "\"\xff\"", ``},
		{mds.ConfigJSON, `null`, `null`},
		{mds.ConfigJSON, `{"a":}`, ``},
		{mds.ConfigJSON, `1 2`, ``},
		{mds.ConfigJSON, ``, ``},
		{mds.ConfigJSON, `"` + strings.Repeat("x", mds.MaxConfigValue) + `"`, ``},
		{"date", `"2026"`, ``},
	} {
		got, err := mds.CheckConfigValue(c.t, []byte(c.in))
		switch {
		case c.want == "" && mds.ErrorCode(err) != mds.EINVALID:
			t.Errorf("%s %.40s: %s, %v; want it refused", c.t, c.in, got, err)
		case c.want != "" && (err != nil || string(got) != c.want):
			t.Errorf("%s %.40s: %s, %v; want %s", c.t, c.in, got, err, c.want)
		}
	}
}

func TestConfigNames(t *testing.T) {
	for _, ns := range []string{"checkout", "a", "h5_shop-1"} {
		if err := mds.ValidConfigNamespace(ns); err != nil {
			t.Errorf("namespace %q: %v", ns, err)
		}
	}
	for _, ns := range []string{"", "Checkout", ".a", "a.b", "a b", strings.Repeat("a", 65), "a/b"} {
		if mds.ErrorCode(mds.ValidConfigNamespace(ns)) != mds.EINVALID {
			t.Errorf("namespace %q accepted", ns)
		}
	}
	for _, k := range []string{"new_flow.enabled", "A", "checkout.maxItems", strings.Repeat("k", 128)} {
		if err := mds.ValidConfigKey(k); err != nil {
			t.Errorf("key %q: %v", k, err)
		}
	}
	for _, k := range []string{"", "_a", "a b", "a/b", "é", strings.Repeat("k", 129)} {
		if mds.ErrorCode(mds.ValidConfigKey(k)) != mds.EINVALID {
			t.Errorf("key %q accepted", k)
		}
	}
}
