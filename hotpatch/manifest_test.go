package hotpatch_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/hotpatch"
	"github.com/mds-dev/mds/hotpatch/hotpatchtest"
	"github.com/mds-dev/mds/signing"
)

// TestValidPath: a hotpatch's paths are bundle's (whose tests hold every
// rule).
func TestValidPath(t *testing.T) {
	if err := hotpatch.ValidPath("lib/arm64-v8a/libfix.so"); err != nil {
		t.Error(err)
	}
	wantRefusal(t, hotpatch.ValidPath("lib/../../evil"), `has a ".." segment`, nil)
}

func validManifest() hotpatch.Manifest {
	return hotpatch.Manifest{
		Format:       hotpatch.Format,
		AppKey:       "ak_abc",
		Platform:     mds.IOS,
		Targets:      []hotpatch.Target{{AppVersion: "1.10.0"}, {AppVersion: "1.9.0", Build: 2}},
		PatchVersion: 1,
		Notes:        "line one\r\nline two\ttabbed <b>&</b>",
		CreatedAt:    "2026-12-04T02:00:00Z",
		KeyID:        strings.Repeat("ab", 32),
		Alg:          signing.ECDSAP256,
		Files: []hotpatch.File{
			{Path: "A.js", Size: 0, SHA256: strings.Repeat("0", 64)},
			{Path: "b/c.js", Size: 10, SHA256: strings.Repeat("f", 64)},
		},
	}
}

func TestValidate(t *testing.T) {
	m := validManifest()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*hotpatch.Manifest)
		want   string
	}{
		{"format", func(m *hotpatch.Manifest) { m.Format = "mds-hotpatch/2" }, `format is "mds-hotpatch/2"`},
		{"no app key", func(m *hotpatch.Manifest) { m.AppKey = "" }, "no app_key"},
		{"long app key", func(m *hotpatch.Manifest) { m.AppKey = strings.Repeat("k", 257) }, "app key is 257 bytes"},
		{"app key with a newline", func(m *hotpatch.Manifest) { m.AppKey = "ak\n" }, "app key has a line feed"},
		{"platform", func(m *hotpatch.Manifest) { m.Platform = "windows" }, `platform "windows" is not one of`},
		{"no targets", func(m *hotpatch.Manifest) { m.Targets = nil }, "names 0"},
		{"101 targets", func(m *hotpatch.Manifest) {
			m.Targets = nil
			for i := range 101 {
				m.Targets = append(m.Targets, hotpatch.Target{AppVersion: "1.0", Build: int64(i + 1)})
			}
		}, "names 101"},
		{"bad version", func(m *hotpatch.Manifest) { m.Targets[0].AppVersion = "1..0" }, "target app version"},
		{"negative build", func(m *hotpatch.Manifest) { m.Targets[0].Build = -1 }, "has build -1"},
		{"duplicate target", func(m *hotpatch.Manifest) { m.Targets[1] = m.Targets[0] }, "names app version 1.10.0 build 0 twice"},
		{"unsorted targets", func(m *hotpatch.Manifest) { m.Targets[0], m.Targets[1] = m.Targets[1], m.Targets[0] }, "targets must be sorted"},
		{"unsorted builds", func(m *hotpatch.Manifest) {
			m.Targets = []hotpatch.Target{{AppVersion: "1.0", Build: 5}, {AppVersion: "1.0", Build: 2}}
		}, "1.0 build 2 comes after 1.0 build 5"},
		{"patch version", func(m *hotpatch.Manifest) { m.PatchVersion = 0 }, "patch version 0 must be 1 or more"},
		{"notes control", func(m *hotpatch.Manifest) { m.Notes = "a\x1bb" }, "release notes has the control character"},
		{"notes too long", func(m *hotpatch.Manifest) { m.Notes = strings.Repeat("n", 8<<10+1) }, "release notes is 8193 bytes"},
		{"created_at offset", func(m *hotpatch.Manifest) { m.CreatedAt = "2026-12-04T10:00:00+08:00" }, "must be a UTC time to the second"},
		{"created_at fraction", func(m *hotpatch.Manifest) { m.CreatedAt = "2026-12-04T02:00:00.5Z" }, "must be a UTC time to the second"},
		{"created_at lowercase", func(m *hotpatch.Manifest) { m.CreatedAt = "2026-12-04t02:00:00z" }, "must be a UTC time to the second"},
		{"created_at empty", func(m *hotpatch.Manifest) { m.CreatedAt = "" }, "must be a UTC time to the second"},
		{"key id uppercase", func(m *hotpatch.Manifest) { m.KeyID = strings.Repeat("AB", 32) }, "must be 64 lowercase hex digits"},
		{"alg", func(m *hotpatch.Manifest) { m.Alg = "rsa" }, `alg "rsa" is not one of`},
		{"no files", func(m *hotpatch.Manifest) { m.Files = nil }, "lists no files"},
		{"bad path", func(m *hotpatch.Manifest) { m.Files[0].Path = "../A.js" }, `has a ".." segment`},
		{"unsorted files", func(m *hotpatch.Manifest) { m.Files[0], m.Files[1] = m.Files[1], m.Files[0] }, `"A.js" comes after "b/c.js"`},
		{"duplicate file", func(m *hotpatch.Manifest) { m.Files[1] = m.Files[0] }, `lists file "A.js" twice`},
		{"case duplicate", func(m *hotpatch.Manifest) { m.Files[1].Path = "a.js" }, `files "A.js" and "a.js" differ only in case`},
		{"kelvin sign", func(m *hotpatch.Manifest) {
			m.Files = []hotpatch.File{{Path: "k", Size: 1, SHA256: m.Files[1].SHA256}, {Path: "\u212a", Size: 1, SHA256: m.Files[1].SHA256}}
		}, "differ only in case"},
		{"file under a file, case-folded", func(m *hotpatch.Manifest) { m.Files[1].Path = "a.js/x" }, `file "A.js" is also a directory holding "a.js/x"`},
		{"negative size", func(m *hotpatch.Manifest) { m.Files[0].Size = -1 }, "negative size"},
		{"sha uppercase", func(m *hotpatch.Manifest) { m.Files[1].SHA256 = strings.Repeat("F", 64) }, "must be 64 lowercase hex digits"},
		{"sha short", func(m *hotpatch.Manifest) { m.Files[1].SHA256 = "ff" }, "must be 64 lowercase hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validManifest()
			tt.change(&m)
			wantRefusal(t, m.Validate(), tt.want, nil)
			_, err := m.Encode()
			wantRefusal(t, err, tt.want, nil)
		})
	}
}

func TestEncodeCanonical(t *testing.T) {
	m := validManifest()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"format":"mds-hotpatch/1","app_key":"ak_abc","platform":"ios","targets":[{"app_version":"1.10.0"},{"app_version":"1.9.0","build":2}],` +
		`"patch_version":1,"notes":"line one\r\nline two\ttabbed <b>&</b>","created_at":"2026-12-04T02:00:00Z",` +
		`"key_id":"` + strings.Repeat("ab", 32) + `","alg":"ecdsa-p256","files":[{"path":"A.js","size":0,"sha256":"` + strings.Repeat("0", 64) +
		`"},{"path":"b/c.js","size":10,"sha256":"` + strings.Repeat("f", 64) + `"}]}`
	if string(b) != want {
		t.Fatalf("canonical form\n got %s\nwant %s", b, want)
	}
	if raw := hotpatchtest.EncodeRaw(t, &m); !bytes.Equal(raw, b) {
		t.Errorf("hotpatchtest.EncodeRaw gives\n%s", raw)
	}
	got, err := hotpatch.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := got.Encode(); !bytes.Equal(again, b) {
		t.Error("parse and encode is not the identity")
	}
	if !got.Created().Equal(time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)) || got.TotalSize() != 10 {
		t.Errorf("Created %v, TotalSize %d", got.Created(), got.TotalSize())
	}

	big := validManifest()
	big.Files = nil
	for i := range 6000 {
		big.Files = append(big.Files, hotpatch.File{Path: fmt.Sprintf("%s%05d", strings.Repeat("p", 100), i), SHA256: strings.Repeat("0", 64)})
	}
	_, err = big.Encode()
	wantRefusal(t, err, "at most 1048576", nil)
}

func TestParseManifestRefuses(t *testing.T) {
	m := validManifest()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	tests := []struct{ name, in, want string }{
		{"spaces", strings.Replace(s, `":`, `": `, 1), "not in canonical form"},
		{"indented", strings.Replace(s, `{"format"`, "{\n  \"format\"", 1), "not in canonical form"},
		{"trailing newline", s + "\n", "not in canonical form"},
		{"trailing data", s + `{}`, "not in canonical form"},
		{"fields reordered", strings.Replace(s, `"format":"mds-hotpatch/1","app_key":"ak_abc"`, `"app_key":"ak_abc","format":"mds-hotpatch/1"`, 1), "not in canonical form"},
		{"field name case", strings.Replace(s, `"notes"`, `"Notes"`, 1), "not in canonical form"},
		{"duplicate field", strings.Replace(s, `"app_key":"ak_abc"`, `"app_key":"ak_evil","app_key":"ak_abc"`, 1), "not in canonical form"},
		{"explicit build 0", strings.Replace(s, `{"app_version":"1.10.0"}`, `{"app_version":"1.10.0","build":0}`, 1), "not in canonical form"},
		{"escaped <", strings.Replace(s, `<b>`, `\u003cb>`, 1), "not in canonical form"},
		{"escaped letter", strings.Replace(s, `"ak_abc"`, `"ak_\u0061bc"`, 1), "not in canonical form"},
		{"unknown field", strings.Replace(s, `"notes"`, `"exec":"x","notes"`, 1), `unknown field "exec"`},
		{"unknown target field", strings.Replace(s, `{"app_version":"1.10.0"}`, `{"app_version":"1.10.0","os":"17"}`, 1), `unknown field "os"`},
		{"not json", "PK\x03\x04", "is not a mds-hotpatch/1 manifest"},
		{"empty", "", "is not a mds-hotpatch/1 manifest"},
		{"array", "[]", "is not a mds-hotpatch/1 manifest"},
		{"float size", strings.Replace(s, `"size":10`, `"size":10.0`, 1), "is not a mds-hotpatch/1 manifest"},
		{"invalid", strings.Replace(s, `"patch_version":1`, `"patch_version":0`, 1), "patch version 0"},
		{"invalid UTF-8", strings.Replace(s, "line one", "line \xff", 1), "not in canonical form"},
		{"too large", s + strings.Repeat(" ", hotpatch.MaxManifest), "at most 1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := hotpatch.ParseManifest([]byte(tt.in))
			if m != nil {
				t.Error("a manifest returned with the error")
			}
			wantRefusal(t, err, tt.want, nil)
		})
	}
}
