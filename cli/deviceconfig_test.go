package cli_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
)

// TestDeviceConfigCommand: mds device config prints the values a device
// sees, sorted, and what changed; a gray change shows on the whitelisted
// device only; --json prints the values as JSON; and with the server
// gone, the check fails while --held prints the last values verified.
func TestDeviceConfigCommand(t *testing.T) {
	o := newOfflineTeam(t)
	o.srv.Advance(time.Since(o.srv.Now())) // the device's clock is the real one
	url := o.srv.URL
	server := o.at("server.pub.pem")
	if err := os.WriteFile(server, []byte(mustCLI(t, url, cliAdmin, "keys", "server-public")), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := func(state, id string) []string {
		return []string{"config", "--state", o.at(state), "--server", url, "--app-key", o.appKey, "--platform", "android",
			"--app-version", "2.1.0", "--device-id", id, "--server-key", server}
	}
	if out := mustDevice(t, flags("tester", "d-1")...); out != "no configuration: the app has none for this device\n" {
		t.Errorf("before any configuration:\n%s", out)
	}
	mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "checkout", "new_flow=true", "--type", "boolean")
	mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "checkout", "title=Summer <sale>", "--type", "string")
	mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "search", `weights={"title":2,"body":1}`, "--type", "json")
	want := "checkout.new_flow = true\n" +
		`checkout.title = "Summer <sale>"` + "\n" +
		`search.weights = {"body":1,"title":2}` + "\n"
	if out := mustDevice(t, "config", "--state", o.at("tester")); out != want+"changed: checkout.new_flow, checkout.title, search.weights\n" {
		t.Errorf("config:\n%s\nwant\n%s", out, want)
	}
	if out := mustDevice(t, "config", "--state", o.at("tester")); out != want {
		t.Errorf("config unchanged:\n%s", out)
	}

	// A gray change for d-1 only.
	var wl mds.Whitelist
	if err := json.Unmarshal([]byte(mustCLI(t, url, cliAdmin, "whitelist", "create", "--app", "shop", "testers", "--kind", "device", "--json")), &wl); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, url, cliAdmin, "whitelist", "add", "--app", "shop", strconv.FormatInt(wl.ID, 10), "d-1")
	mustCLI(t, url, cliAdmin, "config", "gray", "--app", "shop", "checkout", "new_flow=false", "--whitelist", strconv.FormatInt(wl.ID, 10))
	if out := mustDevice(t, "config", "--state", o.at("tester")); !strings.HasPrefix(out, "checkout.new_flow = false\n") || !strings.HasSuffix(out, "changed: checkout.new_flow\n") {
		t.Errorf("the whitelisted device:\n%s", out)
	}
	if out := mustDevice(t, flags("other", "d-2")...); !strings.HasPrefix(out, "checkout.new_flow = true\n") {
		t.Errorf("another device:\n%s", out)
	}

	var values map[string]any
	out := mustDevice(t, "config", "--state", o.at("tester"), "--json")
	if err := json.Unmarshal([]byte(out), &values); err != nil || values["checkout.new_flow"] != false || values["checkout.title"] != "Summer <sale>" ||
		values["search.weights"].(map[string]any)["title"] != 2.0 || len(values) != 3 {
		t.Errorf("--json: %v\n%s", err, out)
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if out, err := device(t, "config", "--state", o.at("tester"), "--server", dead.URL); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("config with the server gone: %v\n%s", err, out)
	}
	if out := mustDevice(t, "config", "--state", o.at("tester"), "--held"); !strings.HasPrefix(out, "checkout.new_flow = false\n") || !strings.Contains(out, `checkout.title = "Summer <sale>"`) {
		t.Errorf("--held with the server gone:\n%s", out)
	}
}
