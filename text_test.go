package mds_test

import (
	"strings"
	"testing"

	"github.com/mds-dev/mds"
)

// wantInvalid fails unless err is EINVALID and its message holds every want.
func wantInvalid(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if mds.ErrorCode(err) != mds.EINVALID {
		t.Errorf("%s: error %v, want EINVALID", what, err)
		return
	}
	for _, w := range want {
		if !strings.Contains(mds.ErrorMessage(err), w) {
			t.Errorf("%s: message %q does not say %q", what, mds.ErrorMessage(err), w)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"测试名单", "beta testers", "Android 12 users", "a", "v1.2_rc-3", "Émilie", "テスト", "ab c",
		"e\u0301cole", "٣ مستخدمين", strings.Repeat("名", mds.MaxNameLen)} {
		if err := mds.ValidName("rule set name", ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	for bad, want := range map[string][]string{
		"":                                 {"rule set name is empty", "1-64"},
		" x":                               {"start with a letter or digit", "U+0020"},
		"_x":                               {"start with a letter or digit", `"_" (U+005F)`},
		"\u0301x":                          {"start with a letter or digit", "U+0301"},
		"x ":                               {"ends with a space"},
		"a\tb":                             {"a tab (U+0009) at character 2"},
		"a\x00b":                           {"U+0000 at character 2"},
		"名单\u202e":                         {"U+202E at character 3"},
		"a/b":                              {`"/" (U+002F) at character 2`, "use letters, digits, spaces and _ . -"},
		"ab\xffc":                          {"not valid UTF-8 at character 3", "0xFF"},
		strings.Repeat("名", 65):            {"longer than 64 characters"},
		strings.Repeat("a", 64*4+1):        {"longer than 64 characters"},
		"x\u3000y":                         {"U+3000 at character 2"}, // an ideographic space is not a space
		strings.Repeat("a", 63) + "\u00a0": {"U+00A0 at character 64"},
	} {
		wantInvalid(t, "ValidName("+strings.ToValidUTF8(bad, "?")+")", mds.ValidName("rule set name", bad), want...)
	}
}

func TestValidChannel(t *testing.T) {
	for _, ok := range []string{"华为", "huawei", "google_play", "xiaomi.cn", "-beta", "ch-7"} {
		if err := mds.ValidChannel(ok); err != nil {
			t.Errorf("ValidChannel(%q) = %v", ok, err)
		}
	}
	for bad, want := range map[string][]string{
		"":                         {"channel is empty"},
		"app store":                {"a space (U+0020) at character 4", "use letters, digits and _ . -"},
		"a\nb":                     {"U+000A"},
		strings.Repeat("渠", 65):    {"longer than 64"},
		"渠道\u2066":                 {"U+2066 at character 3"},
		"a\x80":                    {"not valid UTF-8"},
		strings.Repeat("x", 1<<20): {"longer than 64"},
	} {
		wantInvalid(t, "ValidChannel", mds.ValidChannel(bad), want...)
	}
}

func TestValidText(t *testing.T) {
	for _, tt := range []struct {
		s         string
		multiline bool
	}{
		{"", false},
		{"Fixes a crash on start. 修复启动崩溃。", false},
		{"line one\nline two\n\t- indented", true},
		{"windows\r\nlines\r\n", true},
		{"emoji 👍🏽 and marks e\u0301 and RLM \u200f mark", false},
		{strings.Repeat("é", 50), false}, // 100 bytes, the limit
	} {
		if err := mds.ValidText("notes", tt.s, 100, tt.multiline); err != nil {
			t.Errorf("ValidText(%q, multiline %v) = %v", tt.s, tt.multiline, err)
		}
	}
	for _, tt := range []struct {
		s         string
		multiline bool
		want      []string
	}{
		{strings.Repeat("é", 50) + "x", true, []string{"notes is 101 bytes long", "at most 100"}},
		{"one\ntwo", false, []string{"notes has a line feed (U+000A) at character 4", "one line"}},
		{"a\tb", false, []string{"a tab (U+0009) at character 2"}},
		{"a\rb", true, []string{"carriage return (U+000D) not followed by a line feed at character 2"}},
		{"end\r", true, []string{"carriage return", "character 4"}},
		{"a\r\nb", false, []string{"carriage return (U+000D) at character 2", "one line"}},
		{"bell\a", true, []string{"control character U+0007 at character 5"}},
		{"del\x7f", true, []string{"U+007F at character 4"}},
		{"c1 \u0085 next line", true, []string{"U+0085 at character 4"}},
		{"名\x00", true, []string{"U+0000 at character 2"}},
		{"abc\u202edcba", true, []string{"bidirectional control character U+202E at character 4"}},
		{"\u202a", false, []string{"U+202A at character 1"}},
		{"x\u2066y\u2069", false, []string{"U+2066 at character 2"}},
		{"ok\u2069", false, []string{"U+2069 at character 3"}},
		{"名\xe5\x90", true, []string{"not valid UTF-8 at character 2", "0xE5"}},
	} {
		wantInvalid(t, "ValidText("+strings.ToValidUTF8(tt.s, "?")+")", mds.ValidText("notes", tt.s, 100, tt.multiline), tt.want...)
	}
}
