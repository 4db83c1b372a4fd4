package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/offline/offlinetest"
)

// TestDeviceOfflineCommands: mds device offline installs what a release
// offers, whole and then by delta, lists it, resolves URLs to its files,
// its fallback or the network, and installs an exported preset on a fresh
// device.
func TestDeviceOfflineCommands(t *testing.T) {
	o := newOfflineTeam(t)
	o.srv.Advance(time.Since(o.srv.Now())) // the device's clock is the real one
	server := filepath.Join(o.dir, "server.pub.pem")
	os.WriteFile(server, []byte(mustCLI(t, o.srv.URL, cliAdmin, "keys", "server-public")), 0o644)
	state := o.at("device")
	flags := []string{"--state", state, "--server", o.srv.URL, "--app-key", o.appKey, "--platform", "android", "--app-version", "2.1.0",
		"--device-id", "d-1", "--server-key", server, "--team-key", o.at("team.pub.pem")}
	if out := mustDevice(t, append([]string{"offline", "install"}, flags...)...); !strings.Contains(out, "nothing to install") {
		t.Errorf("install with nothing released:\n%s", out)
	}
	file, _ := o.pack("shop-home", "1.0.0")
	o.release(o.push(file), mds.Targeting{})
	if out := mustDevice(t, "offline", "install", "--state", state); !strings.Contains(words(out), "shop-home 1.0.0 installed full from none") {
		t.Errorf("install:\n%s", out)
	}
	if out := words(mustCLI(t, o.srv.URL, cliAdmin, "package", "list", "--app", "shop")); !strings.Contains(out, "offline shop-home 1.0.0 0 blob") {
		t.Errorf("package list:\n%s", out)
	}
	file, _ = o.pack("shop-home", "1.1.0")
	o.release(o.push(file), mds.Targeting{})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(mustCLI(t, o.srv.URL, cliAdmin, "offline", "status", "--app", "shop"), "1 ready") {
		if time.Now().After(deadline) {
			t.Fatal("the delta was not built within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The builder refreshes the node right after recording the delta;
	// this install may come between the two.
	if err := o.srv.Live.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if out := mustDevice(t, "offline", "install", "--state", state); !strings.Contains(words(out), "shop-home 1.1.0 installed delta from 1.0.0") {
		t.Errorf("install by delta:\n%s", out)
	}
	if out := mustDevice(t, "offline", "list", "--state", state); !strings.Contains(words(out), "shop-home 1.1.0 (previous 1.0.0 kept) "+state) {
		t.Errorf("list:\n%s", out)
	}
	out := mustDevice(t, "offline", "resolve", "--state", state, "https://shop-home.shop.example/assets/app.js")
	local := strings.Fields(out)
	if len(local) < 2 || local[0] != "file" {
		t.Fatalf("resolve:\n%s", out)
	}
	if b, err := os.ReadFile(local[1]); err != nil || string(b) != string(offlinetest.Site("1.1.0", 200_000)["assets/app.js"]) {
		t.Errorf("the resolved file is not 1.1.0's script: %v", err)
	}
	if out := mustDevice(t, "offline", "resolve", "--state", state, "https://shop-home.shop.example/api?x=1"); !strings.Contains(words(out), "fallback https://cdn.shop.example/shop-home/api?x=1") {
		t.Errorf("resolve a path the package lacks:\n%s", out)
	}
	if out := mustDevice(t, "offline", "resolve", "--state", state, "https://example.com/"); !strings.HasPrefix(out, "network") {
		t.Errorf("resolve another host:\n%s", out)
	}
	if _, err := device(t, "offline", "resolve", "--state", state, "not a url"); err == nil {
		t.Error("resolved a relative URL")
	}

	// A fresh device starts from the exported preset.
	mustCLI(t, o.srv.URL, cliAdmin, "offline", "export", "--app", "shop", "--out", o.at("preset"))
	fresh := append([]string{"offline", "preset", o.at("preset")}, flags...)
	fresh[4] = o.at("fresh")
	if out := mustDevice(t, fresh...); !strings.Contains(words(out), "shop-home 1.1.0 installed full from none") {
		t.Errorf("preset:\n%s", out)
	}
	if out := mustDevice(t, "offline", "install", "--state", o.at("fresh")); !strings.Contains(out, "nothing to install") {
		t.Errorf("after the preset:\n%s", out)
	}
}

// words is out with its runs of white space, as tables align them, made
// one space.
func words(out string) string { return strings.Join(strings.Fields(out), " ") }
