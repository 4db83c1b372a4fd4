package httpapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/signing"
)

// TestSignedAnswers: every answer is signed over its exact bytes, names
// the app key the device sent, carries the app's version, which grows
// with each write to the app and no other, and an expiry; answers are
// signed anew, with a later expiry, every half of their lifetime, even
// when nothing changed.
func TestSignedAnswers(t *testing.T) {
	e := newEnv(t, func(c *httpapi.Config) { c.AnswerTTL = 2 * time.Hour })
	shop := e.createApp("shop", mds.Android)
	blog := e.createApp("blog", mds.Android)
	dev := device(shop, mds.Android, "1.0")

	resp, first := e.check(dev)
	etag := resp.Header.Get("Etag")
	if first.Version <= 0 {
		t.Fatalf("version %d", first.Version)
	}
	// Signed per hour (half of 2h): at 12:00 the answer expires at 14:00.
	if want := time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC); !first.Expires.Equal(want) {
		t.Errorf("expires %s, want %s", first.Expires, want)
	}

	// The body is exactly what was signed: one byte changed fails.
	resp, body := e.request("POST", "/client/v1/check", "", dev)
	sig, err := answerSignature(resp.Header.Get("Mds-Signature"), e.AnswerKey.Public().ID())
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(body, []byte(`"upgrade":null`), []byte(`"upgrade":nul `), 1)
	if bytes.Equal(tampered, body) || e.AnswerKey.Public().Verify(tampered, sig) == nil {
		t.Error("a changed answer still verifies")
	}

	// A write to another app moves neither version nor ETag.
	e.createPackage(blog.Slug, e.admin, map[string]any{"platform": "android", "version": "2.0", "source": "url", "url": "https://cdn.example.com/b.apk"})
	resp, again := e.check(dev)
	if again.Version != first.Version || resp.Header.Get("Etag") != etag {
		t.Errorf("another app's write changed the answer: version %d → %d", first.Version, again.Version)
	}
	// A write to the app raises its version, even one devices do not see.
	e.createPackage(shop.Slug, e.admin, map[string]any{"platform": "android", "version": "2.0", "source": "url", "url": "https://cdn.example.com/s.apk"})
	p := e.createPackage(shop.Slug, e.admin, map[string]any{"platform": "android", "version": "3.0", "source": "url", "url": "https://cdn.example.com/s3.apk"})
	task := e.createTask(shop.Slug, e.admin, p.ID, mds.ModeForce, true)
	resp, live := e.check(dev)
	if live.Version <= first.Version || live.Upgrade == nil || resp.Header.Get("Etag") == etag {
		t.Fatalf("after a release: version %d (was %d), upgrade %v", live.Version, first.Version, live.Upgrade)
	}

	// Within the hour: 304. After it: the same version, signed anew with
	// a later expiry, under a new ETag.
	etag = resp.Header.Get("Etag")
	e.advance(59 * time.Minute)
	if resp, _ := e.check(dev, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("within the signing period: %d", resp.StatusCode)
	}
	e.advance(2 * time.Minute)
	resp, later := e.check(dev, "If-None-Match", etag)
	if resp.StatusCode != 200 || later.Version != live.Version || !later.Expires.Equal(live.Expires.Add(time.Hour)) {
		t.Errorf("next period: status %d, version %d (was %d), expires %s (was %s)",
			resp.StatusCode, later.Version, live.Version, later.Expires, live.Expires)
	}

	// A device of a build with the app's previous key is answered for
	// that key, so it can check the answer is for it.
	var rotated mds.App
	e.call("POST", "/api/v1/apps/shop/key", e.admin, nil, 200, &rotated)
	_, old := e.check(dev) // dev still sends the old key; check asserts the answer names it
	if old.Upgrade == nil || old.Upgrade.TaskID != task.ID {
		t.Errorf("previous key: %+v", old.Upgrade)
	}
	dev["app_key"] = rotated.Key
	e.check(dev)
}

// TestAnswerKeyRotation: with two deployment keys every answer carries a
// signature by each, so builds trusting either verify it.
func TestAnswerKeyRotation(t *testing.T) {
	next, err := signing.Generate(signing.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	var e *testEnv
	e = newEnv(t, func(c *httpapi.Config) { c.AnswerKeys = append(c.AnswerKeys, next) })
	shop := e.createApp("shop", mds.Android)
	resp, body := e.request("POST", "/client/v1/check", "", device(shop, mds.Android, "1.0"))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	e.verifyAnswer(resp, body, e.AnswerKey.Public())
	e.verifyAnswer(resp, body, next.Public())
	if n := strings.Count(resp.Header.Get("Mds-Signature"), "keyid="); n != 2 {
		t.Errorf("%d signatures", n)
	}

	// The server's public keys are there for app builds to embed.
	var keys struct {
		Keys []struct {
			ID        string `json:"id"`
			PublicKey string `json:"public_key"`
		} `json:"keys"`
	}
	e.call("GET", "/api/v1/server-keys", e.admin, nil, 200, &keys)
	if len(keys.Keys) != 2 || keys.Keys[0].ID != e.AnswerKey.Public().ID() || keys.Keys[1].ID != next.Public().ID() {
		t.Fatalf("server keys: %+v", keys)
	}
	if k, err := signing.ParsePublicKeyPEM([]byte(keys.Keys[1].PublicKey)); err != nil || !k.Equal(next.Public()) {
		t.Errorf("server key PEM: %v", err)
	}
	resp, _ = e.request("GET", "/api/v1/server-keys", "", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("server keys without a token: %d", resp.StatusCode)
	}
}

// TestAnswerLength: every answer has a Content-Length and is never
// chunked, short or long (net/http measures short ones itself).
func TestAnswerLength(t *testing.T) {
	e := newEnv(t)
	app := e.createApp("shop", mds.Android)
	d := device(app, mds.Android, "1.0")
	for _, notes := range []string{"short", strings.Repeat("Fixes and more. ", mds.MaxNotes/16)} {
		pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": fmt.Sprintf("2.%d", len(notes)),
			"url": "https://example.com/2.apk", "notes": notes})
		e.createTask("shop", e.admin, pkg.ID, mds.ModeSingle, true)
		resp, b := e.request("POST", "/client/v1/check", "", d)
		if resp.StatusCode != 200 || resp.ContentLength != int64(len(b)) || len(resp.TransferEncoding) > 0 {
			t.Errorf("answer of %d bytes: %d, Content-Length %d, Transfer-Encoding %v", len(b), resp.StatusCode, resp.ContentLength, resp.TransferEncoding)
		}
		if len(notes) > 100 && len(b) < 2048 {
			t.Errorf("the long answer is %d bytes: the test wants one past net/http's buffer", len(b))
		}
	}
}
