package cli_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/httpapi"
)

// TestCLIGrayRelease drives a gray release from the CLI: a whitelist from a
// file, a rule set, a gray task, a targeting edit, explain, preview, promote.
func TestCLIGrayRelease(t *testing.T) {
	url := newServer(t, func(c *httpapi.Config) { c.Recent = delivery.NewRecent(1<<20, 100, 1) })
	out := mustCLI(t, url, cliAdmin, "app", "create", "shop", "--platform", "android", "--json")
	var app mds.App
	json.Unmarshal([]byte(out), &app)
	mustCLI(t, url, cliAdmin, "package", "create", "--app", "shop", "--platform", "android", "--version", "3.0", "--url", "https://cdn.example.com/3.0.apk")

	file := filepath.Join(t.TempDir(), "testers.csv")
	os.WriteFile(file, []byte("user_id,team\nalice,qa\nbob,qa\n"), 0o600)
	out = mustCLI(t, url, cliAdmin, "whitelist", "create", "--app", "shop", "testers", "--kind", "user", "--file", file)
	if !strings.Contains(out, "entries    2 (0 regular expressions)") {
		t.Fatalf("whitelist create:\n%s", out)
	}
	bad := filepath.Join(t.TempDir(), "bad.txt")
	os.WriteFile(bad, []byte("carol\nhas space\n"), 0o600)
	if _, err := mdsCLI(t, url, cliAdmin, "whitelist", "upload", "--app", "shop", "1", bad); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad whitelist file: %v", err)
	}
	mustCLI(t, url, cliAdmin, "whitelist", "add", "--app", "shop", "1", "dave")
	out = mustCLI(t, url, cliAdmin, "whitelist", "show", "--app", "shop", "1", "--entries", "10")
	if strings.Fields(out)[0] != "alice" || !strings.Contains(out, "dave") {
		t.Errorf("whitelist entries:\n%s", out)
	}
	mustCLI(t, url, cliAdmin, "ruleset", "create", "--app", "shop", "modern", "--rule", "os_version VERSION_GTE 12")
	out = mustCLI(t, url, cliAdmin, "task", "create", "--app", "shop", "--package", "1", "--mode", "force",
		"--whitelist", "1", "--ruleset", "1", "--percent", "0", "--rule", "network IN wifi", "--release")
	if !strings.Contains(out, "live (gray)") || !strings.Contains(out, "rule       network IN wifi") || !strings.Contains(out, "whitelist  1") {
		t.Fatalf("gray task create:\n%s", out)
	}
	check := func(user string) bool {
		body := fmt.Sprintf(`{"app_key":%q,"platform":"android","app_version":"2.0","device_id":"d-%s","user_id":%q,"os_version":"14","network":"wifi"}`, app.Key, user, user)
		resp, err := http.Post(url+"/client/v1/check", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a struct{ Upgrade any }
		json.NewDecoder(resp.Body).Decode(&a)
		return a.Upgrade != nil
	}
	if !check("alice") || !check("dave") || check("erin") {
		t.Error("gray audience wrong: want alice and dave, not erin")
	}
	out = mustCLI(t, url, cliAdmin, "explain", "--app", "shop", "--app-version", "2.0", "--device-id", "d-erin", "--user-id", "erin", "--os-version", "14", "--network", "wifi")
	if !strings.Contains(out, "task 1 (3.0 gray)") || !strings.Contains(out, `not in whitelist "testers"`) {
		t.Errorf("explain:\n%s", out)
	}
	mustCLI(t, url, cliAdmin, "task", "target", "--app", "shop", "1", "--percent", "100")
	if !check("erin") {
		t.Error("after --percent 100, erin is not offered the task")
	}
	out = mustCLI(t, url, cliAdmin, "preview", "--app", "shop", "--rule", "user_id IN alice,erin")
	if !strings.Contains(out, "3 of 4 recently seen devices match (75.0%)") {
		t.Errorf("preview:\n%s", out)
	}
	out = mustCLI(t, url, cliAdmin, "task", "promote", "--app", "shop", "1")
	if !strings.Contains(out, "live (official)") {
		t.Errorf("promote:\n%s", out)
	}
	// Promotion dropped the gates, and the task shows what is in force.
	if strings.Contains(out, "whitelist") || !strings.Contains(out, "rule set  1") {
		t.Errorf("promoted task still shows its gates, or lost its rule set:\n%s", out)
	}
	if _, err := mdsCLI(t, url, cliAdmin, "ruleset", "delete", "--app", "shop", "1"); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("deleting a rule set in use: %v", err)
	}
	mustCLI(t, url, cliAdmin, "whitelist", "delete", "--app", "shop", "1")
	mustCLI(t, url, cliAdmin, "task", "stop", "--app", "shop", "1")
	mustCLI(t, url, cliAdmin, "ruleset", "delete", "--app", "shop", "1")
}
