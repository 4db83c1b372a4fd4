//go:build unix

package sdk

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/signing"
)

// lockEnv names the environment variable that makes TestLockChild the
// child: its value is the state directory to open.
const lockEnv = "MDS_SDK_LOCK_CHILD"

// TestOpenLocks: a state directory is used by one Client at a time,
// across processes and within one; Close gives it up, and a closed
// client changes nothing.
func TestOpenLocks(t *testing.T) {
	e := newEnv(t)
	child := func() (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLockChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), lockEnv+"="+e.dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	if out, err := child(); err == nil || !strings.Contains(out, "state directory "+e.dir+" is in use by another process") {
		t.Fatalf("another process opened a directory in use: %v\n%s", err, out)
	}
	if _, err := Open(e.dir, e.config()); err == nil || !strings.Contains(err.Error(), "is in use by another process") {
		t.Fatalf("a second client opened a directory in use: %v", err)
	}
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Close(); err != nil {
		t.Fatalf("closing twice: %v", err)
	}
	if out, err := child(); err != nil {
		t.Fatalf("the directory once closed: %v\n%s", err, out)
	}
	// A closed client commits nothing.
	before := e.snapshot()
	if _, err := e.c.Check(t.Context()); !errors.Is(err, errClosed) {
		t.Errorf("check after Close: %v", err)
	}
	if _, err := e.c.Start(); err != nil && !errors.Is(err, errClosed) {
		t.Errorf("start after Close: %v", err)
	}
	e.assertUnchanged(before)
	e.c = e.open()
}

// TestLockChild is the child of TestOpenLocks: it opens the directory,
// and fails if it cannot.
func TestLockChild(t *testing.T) {
	dir := os.Getenv(lockEnv)
	if dir == "" {
		t.Skip("run by TestOpenLocks")
	}
	c, err := Open(dir, Config{
		Server:     "http://127.0.0.1:1", // never asked
		Device:     mds.Device{AppKey: testApp, Platform: mds.Android, AppVersion: testAppVersion, DeviceID: "d"},
		ServerKeys: []*signing.PublicKey{mustKey(t, signing.Ed25519).Public()},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
