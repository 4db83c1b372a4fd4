package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mds-dev/mds/blobtest"
)

// TestMain lets the test binary double as `mds serve`, so a test can run
// the real server in a child process and kill it.
func TestMain(m *testing.M) {
	if os.Getenv("MDS_TEST_CHILD") == "serve" {
		// As main does: SIGTERM and interrupts shut the server down.
		ctx, _ := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		if err := run(ctx, []string{"serve"}, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const childToken = "kill-test-admin-token-0123456789abcdef"

// child is a running `mds serve` in another process.
type child struct {
	cmd        *exec.Cmd
	base       string
	management string // the management API's URL when it listens apart
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)(?: management_addr=(\S+))?`)

func startChild(t *testing.T, data string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MDS_TEST_CHILD=serve", "MDS_DATA="+data, "MDS_ADDR=127.0.0.1:0",
		"MDS_ADMIN_TOKEN="+childToken, "MDS_DATABASE_URL=", "MDS_LOG_FORMAT=text", "MDS_LOG_LEVEL=info")
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m
			}
		}
	}()
	select {
	case m := <-addr:
		c := &child{cmd: cmd, base: "http://" + m[1]}
		if m[2] != "" {
			c.management = "http://" + m[2]
		}
		return c
	case <-time.After(30 * time.Second):
		t.Fatal("child server did not start")
		return nil
	}
}

func (c *child) do(t *testing.T, method, path string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, c.base+path, body)
	req.Header.Set("Authorization", "Bearer "+childToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestKillDuringUpload kills the server process with SIGKILL while a package
// is streaming in, restarts it on the same data, and checks that neither a
// partial blob nor a package row survived, and that the service works on.
func TestKillDuringUpload(t *testing.T) {
	data := t.TempDir()
	c := startChild(t, data)
	if resp, b := c.do(t, "POST", "/api/v1/apps", strings.NewReader(`{"slug":"shop","platforms":["android"]}`)); resp.StatusCode != 201 {
		t.Fatalf("create app: %d %s", resp.StatusCode, b)
	}

	const total = 64 << 20
	content := make([]byte, total)
	for i := range content {
		content[i] = byte(i*131 + i>>12)
	}
	sent := total / 4
	c.killMidUpload(t, data, "POST", "/api/v1/apps/shop/blobs?sha256="+blobtest.Sum(content), content, sent)

	tmp := filepath.Join(data, "tmp")
	c = startChild(t, data)
	for _, sum := range []string{blobtest.Sum(content), blobtest.Sum(content[:sent])} {
		if resp, _ := c.do(t, "GET", "/api/v1/apps/shop/blobs/"+sum, nil); resp.StatusCode != 404 {
			t.Errorf("blob %s… after the kill: %d, want 404", sum[:12], resp.StatusCode)
		}
	}
	if n := tmpBytes(t, tmp); n != 0 {
		t.Errorf("%d bytes of the interrupted upload left in %s after restart", n, tmp)
	}
	if files := blobFiles(t, filepath.Join(data, "blobs")); len(files) != 0 {
		t.Errorf("blob files after the kill: %v", files)
	}
	resp, b := c.do(t, "GET", "/api/v1/apps/shop/packages", nil)
	var list struct{ Packages []json.RawMessage }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(b), &list) != nil || len(list.Packages) != 0 {
		t.Errorf("packages after the kill: %d %s", resp.StatusCode, b)
	}

	// The restarted server takes the same upload whole.
	resp, b = c.do(t, "POST", "/api/v1/apps/shop/blobs?sha256="+blobtest.Sum(content), strings.NewReader(string(content)))
	if resp.StatusCode != 201 {
		t.Fatalf("upload after restart: %d %s", resp.StatusCode, b)
	}
	body := fmt.Sprintf(`{"platform":"android","version":"2.0.0","sha256":%q}`, blobtest.Sum(content))
	if resp, b := c.do(t, "POST", "/api/v1/apps/shop/packages", strings.NewReader(body)); resp.StatusCode != 201 {
		t.Fatalf("package after restart: %d %s", resp.StatusCode, b)
	}
}

// killMidUpload sends the first sent bytes of content as the body of a
// request of total length, then stalls as a slow client would, and kills
// the server with SIGKILL once part of the body is on its disk.
func (c *child) killMidUpload(t *testing.T, data, method, path string, content []byte, sent int) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() {
		pw.Write(content[:sent]) // then stall until the kill
	}()
	req, _ := http.NewRequest(method, c.base+path, pr)
	req.Header.Set("Authorization", "Bearer "+childToken)
	req.ContentLength = int64(len(content))
	uploadErr := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("upload finished with %d", resp.StatusCode)
		}
		uploadErr <- err
	}()
	tmp := filepath.Join(data, "tmp")
	deadline := time.Now().Add(30 * time.Second)
	for tmpBytes(t, tmp) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the upload never reached the server's disk")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
	pw.CloseWithError(io.ErrClosedPipe)
	if err := <-uploadErr; err == nil || strings.Contains(err.Error(), "finished") {
		t.Fatalf("upload survived the kill: %v", err)
	}
	if tmpBytes(t, tmp) == 0 {
		t.Fatal("no partial upload on disk: the kill did not land mid-upload")
	}
}

// TestKillDuringWhitelistUpload kills the server while a whitelist file is
// being checked into its spool: after a restart nothing of it is left on
// disk, and the whitelist holds its old entries.
func TestKillDuringWhitelistUpload(t *testing.T) {
	data := t.TempDir()
	c := startChild(t, data)
	for _, step := range []struct{ method, path, body string }{
		{"POST", "/api/v1/apps", `{"slug":"shop","platforms":["android"]}`},
		{"POST", "/api/v1/apps/shop/whitelists", `{"name":"testers","kind":"user"}`},
		{"PATCH", "/api/v1/apps/shop/whitelists/1/entries", `{"add":["alice","bob"]}`},
	} {
		if resp, b := c.do(t, step.method, step.path, strings.NewReader(step.body)); resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", step.method, step.path, resp.StatusCode, b)
		}
	}
	var file strings.Builder
	for i := range 200_000 {
		fmt.Fprintf(&file, "user-%07d\n", i)
	}
	content := []byte(file.String())
	c.killMidUpload(t, data, "PUT", "/api/v1/apps/shop/whitelists/1/entries", content, len(content)/2)

	c = startChild(t, data)
	if n := tmpBytes(t, filepath.Join(data, "tmp")); n != 0 {
		t.Errorf("%d bytes of the interrupted whitelist upload left after restart", n)
	}
	resp, b := c.do(t, "GET", "/api/v1/apps/shop/whitelists/1", nil)
	var w struct{ Entries int }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(b), &w) != nil || w.Entries != 2 {
		t.Errorf("whitelist after the kill: %d %s; want its 2 old entries", resp.StatusCode, b)
	}
}

// tmpBytes counts the bytes of every file under dir: uploads in progress.
func tmpBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	return files
}

// TestSeparateAddresses: with MDS_MANAGEMENT_ADDR the device address
// serves devices only, and management and metrics listen apart.
func TestSeparateAddresses(t *testing.T) {
	c := startChild(t, t.TempDir(), "MDS_MANAGEMENT_ADDR=127.0.0.1:0")
	if c.management == "" {
		t.Fatal("the server did not say where management listens")
	}
	get := func(url string) int {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+childToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for url, want := range map[string]int{
		c.base + "/api/v1/apps":                          404,
		c.base + "/metrics":                              404,
		c.base + "/readyz":                               200,
		c.base + "/client/v1/blobs/" + blobtest.Sum(nil): 404,
		c.management + "/api/v1/apps":                    200,
		c.management + "/metrics":                        200,
		c.management + "/client/v1/check":                404,
	} {
		if got := get(url); got != want {
			t.Errorf("GET %s: %d, want %d", url, got, want)
		}
	}
	resp, err := http.Post(c.base+"/client/v1/check", "application/json", strings.NewReader(`{"app_key":"ak_x","platform":"android","app_version":"1.0","device_id":"d"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("a check on the device address: %d, want the unknown app's 404", resp.StatusCode)
	}
}
