package offline_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/offline"
)

var (
	sumA = strings.Repeat("a", 64)
	sumB = strings.Repeat("b", 64)
)

// preset is a valid preset of two packages.
func preset() *offline.Preset {
	return &offline.Preset{Format: offline.PresetFormat, AppKey: "ak_shop", Packages: []offline.PresetPackage{
		{Package: "common", Version: "2.0.0", PackageID: 7, Type: mds.OfflineGlobal, File: "common@2.0.0.zip",
			Size: 3, SHA256: sumA, CanonicalSize: 30, CanonicalSHA256: sumB},
		{Package: "shop-home", Version: "1.4.0", PackageID: 9, Type: mds.OfflineNormal, File: "shop-home@1.4.0.zip",
			Size: 5, SHA256: sumB, CanonicalSize: 50, CanonicalSHA256: sumA},
	}}
}

// writePreset writes p's list as Encode makes it, and files of the sizes
// it says, to a new directory.
func writePreset(t *testing.T, p *offline.Preset) string {
	t.Helper()
	dir := t.TempDir()
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, offline.PresetFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, pp := range p.Packages {
		if err := os.WriteFile(filepath.Join(dir, pp.File), make([]byte, pp.Size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestPreset: a preset reads back as written, in the documented form.
func TestPreset(t *testing.T) {
	p := preset()
	dir := writePreset(t, p)
	got, err := offline.ReadPreset(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("read %+v, wrote %+v", got, p)
	}
	b, _ := os.ReadFile(filepath.Join(dir, offline.PresetFile))
	want := `{
  "format": "mds-offline-preset/1",
  "app_key": "ak_shop",
  "packages": [
    {
      "package": "common",
      "version": "2.0.0",
      "package_id": 7,
      "type": "global",
      "file": "common@2.0.0.zip",
      "size": 3,
      "sha256": "` + sumA + `",
      "canonical_size": 30,
      "canonical_sha256": "` + sumB + `"
    },
`
	if !strings.HasPrefix(string(b), want) {
		t.Errorf("%s holds\n%s\nwant it to start\n%s", offline.PresetFile, b, want)
	}
}

// TestPresetInvalid: every field is checked, by Encode and ReadPreset
// alike.
func TestPresetInvalid(t *testing.T) {
	many := preset()
	many.Packages = nil
	for i := range mds.MaxOfflineHeld + 1 {
		name := fmt.Sprintf("p%03d", i)
		many.Packages = append(many.Packages, offline.PresetPackage{Package: name, Version: "1", PackageID: 1, Type: mds.OfflineNormal,
			File: name + "-1.zip", Size: 1, SHA256: sumA, CanonicalSize: 1, CanonicalSHA256: sumA})
	}
	for _, c := range []struct {
		name   string
		change func(p *offline.Preset)
		want   string
	}{
		{"another format", func(p *offline.Preset) { p.Format = "mds-offline-preset/2" }, "format"},
		{"no app key", func(p *offline.Preset) { p.AppKey = "" }, "app_key"},
		{"an app key with a newline", func(p *offline.Preset) { p.AppKey = "ak\nshop" }, "app key"},
		{"no packages", func(p *offline.Preset) { p.Packages = nil }, "no package"},
		{"too many packages", func(p *offline.Preset) { *p = *many }, "at most 128"},
		{"unsorted", func(p *offline.Preset) { p.Packages[0], p.Packages[1] = p.Packages[1], p.Packages[0] }, "sorted"},
		{"a package twice", func(p *offline.Preset) { p.Packages[1] = p.Packages[0] }, "each once"},
		{"a bad package ID", func(p *offline.Preset) { p.Packages[0].Package = "Common" }, "offline package id"},
		{"a bad version", func(p *offline.Preset) { p.Packages[0].Version = "2..0" }, "version"},
		{"no server ID", func(p *offline.Preset) { p.Packages[0].PackageID = 0 }, "package_id"},
		{"an unknown type", func(p *offline.Preset) { p.Packages[0].Type = "shared" }, "type"},
		{"a file in another directory", func(p *offline.Preset) { p.Packages[0].File = "../common@2.0.0.zip" }, `must be "common@2.0.0.zip"`},
		{"a file in a subdirectory", func(p *offline.Preset) { p.Packages[0].File = "x/common@2.0.0.zip" }, `must be "common@2.0.0.zip"`},
		{"a file of another version", func(p *offline.Preset) { p.Packages[0].File = "common@1.0.0.zip" }, `must be "common@2.0.0.zip"`},
		{"no size", func(p *offline.Preset) { p.Packages[0].Size = 0 }, "size and sha256"},
		{"an uppercase sha256", func(p *offline.Preset) { p.Packages[0].SHA256 = strings.ToUpper(sumA) }, "size and sha256"},
		{"no canonical size", func(p *offline.Preset) { p.Packages[1].CanonicalSize = 0 }, "canonical form"},
		{"a short canonical sha256", func(p *offline.Preset) { p.Packages[1].CanonicalSHA256 = sumA[:63] }, "canonical form"},
	} {
		p := preset()
		c.change(p)
		_, err := p.Encode()
		if mds.ErrorCode(err) != mds.EINVALID || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Encode: %v, want invalid mentioning %q", c.name, err, c.want)
		}
		// The same list, written as JSON without Encode's checks.
		dir := writePreset(t, preset())
		if err := p.Validate(); err == nil {
			t.Fatalf("%s: Validate passed", c.name)
		}
		raw, _ := json.Marshal(p)
		os.WriteFile(filepath.Join(dir, offline.PresetFile), raw, 0o644)
		if _, err := offline.ReadPreset(dir); mds.ErrorCode(err) != mds.EINVALID || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ReadPreset: %v, want invalid mentioning %q", c.name, err, c.want)
		}
	}
}

// TestReadPresetFiles: what ReadPreset refuses beyond the list's fields:
// other JSON, and files missing, of another size, or not regular.
func TestReadPresetFiles(t *testing.T) {
	for _, c := range []struct {
		name  string
		spoil func(t *testing.T, dir string)
		want  string
	}{
		{"an unknown field", func(t *testing.T, dir string) { rewrite(t, dir, `"app_key"`, `"signature":"x","app_key"`) }, "unknown field"},
		{"two values", func(t *testing.T, dir string) { appendTo(t, filepath.Join(dir, offline.PresetFile), "{}") }, "more than one"},
		{"not JSON", func(t *testing.T, dir string) { rewrite(t, dir, `{`, `[`) }, offline.PresetFile},
		{"a file of another size", func(t *testing.T, dir string) { appendTo(t, filepath.Join(dir, "common@2.0.0.zip"), "x") }, "4 bytes; the preset says 3"},
		{"a directory for a file", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "shop-home@1.4.0.zip"))
			os.Mkdir(filepath.Join(dir, "shop-home@1.4.0.zip"), 0o755)
		}, "not a regular file"},
		{"too long", func(t *testing.T, dir string) {
			appendTo(t, filepath.Join(dir, offline.PresetFile), strings.Repeat(" ", 1<<20))
		}, "over"},
	} {
		dir := writePreset(t, preset())
		c.spoil(t, dir)
		if _, err := offline.ReadPreset(dir); mds.ErrorCode(err) != mds.EINVALID || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want invalid mentioning %q", c.name, err, c.want)
		}
	}
	dir := writePreset(t, preset())
	os.Remove(filepath.Join(dir, "common@2.0.0.zip"))
	if _, err := offline.ReadPreset(dir); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "common") {
		t.Errorf("a file missing: %v", err)
	}
	if _, err := offline.ReadPreset(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no preset: %v", err)
	}
}

func rewrite(t *testing.T, dir, old, new string) {
	t.Helper()
	path := filepath.Join(dir, offline.PresetFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// TestPresetFileNamesDiffer: no two packages' files share a name, however
// their IDs and versions split.
func TestPresetFileNamesDiffer(t *testing.T) {
	if a, b := offline.PresetFileName("a", "1-1"), offline.PresetFileName("a-1", "1"); a == b {
		t.Errorf("a 1-1 and a-1 1 are both %s", a)
	}
}
