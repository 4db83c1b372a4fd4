package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/signing"
)

// TestAppAnswersBounded: an app's signed answers are kept per device
// state, at most maxAppAnswers of them; one seen again is the same answer,
// not signed anew.
func TestAppAnswersBounded(t *testing.T) {
	key, err := signing.Generate(signing.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	set := &answerSet{links: &links{base: "http://mds"}, signer: newSigner([]*signing.PrivateKey{key}, time.Hour)}
	var scratch []byte
	dec := delivery.Decision{App: &mds.App{Key: "k", Revision: 7}, Memo: &atomic.Value{}}
	now := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	device := func(i int) *mds.Device {
		return &mds.Device{AppKey: "k", Platform: mds.Android, AppVersion: fmt.Sprintf("2.%d", i)}
	}
	first := set.answer(&dec, device(0), now, &scratch)
	if again := set.answer(&dec, device(0), now, &scratch); again != first {
		t.Error("an answer seen again was signed anew")
	}
	kept := func() (answers, heads int) {
		aa := dec.Memo.Load().(*appAnswers)
		for i := range aa.answers {
			n := len(*aa.answers[i].Load())
			if n > maxAppAnswers/answerShards {
				t.Errorf("shard %d holds %d answers, past its %d", i, n, maxAppAnswers/answerShards)
			}
			answers += n
		}
		return answers, len(aa.heads)
	}
	for i := 1; i < maxAppAnswers/4; i++ {
		set.answer(&dec, device(i), now, &scratch)
	}
	if n, h := kept(); n != maxAppAnswers/4 || h != maxAppAnswers/4 {
		t.Fatalf("%d answers and %d heads kept, want %d of each", n, h, maxAppAnswers/4)
	}
	for i := maxAppAnswers / 4; i < 3*maxAppAnswers; i++ {
		set.answer(&dec, device(i), now, &scratch)
		if n, h := kept(); n > maxAppAnswers || h > maxAppAnswers {
			t.Fatalf("%d answers and %d heads kept after %d; at most %d of each", n, h, i+1, maxAppAnswers)
		}
	}
	// The device's strings point into the check's body, which the next
	// check reuses: the kept answer must hold copies.
	body := []byte("9.9")
	d := &mds.Device{AppKey: "k", Platform: mds.Android, AppVersion: unsafe.String(&body[0], len(body))}
	a := set.answer(&dec, d, now, &scratch)
	copy(body, "8.8")
	if b := set.answer(&dec, &mds.Device{AppKey: "k", Platform: mds.Android, AppVersion: "9.9"}, now, &scratch); b != a {
		t.Error("the kept answer's key changed with the body it came from")
	}
}

// TestAnswersShareTheirParts: the answers of one device state share its
// head, and those of one offer its section; each body is still whole,
// and signed as sent.
func TestAnswersShareTheirParts(t *testing.T) {
	key, err := signing.Generate(signing.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	set := &answerSet{links: &links{base: "http://mds"}, signer: newSigner([]*signing.PrivateKey{key}, time.Hour)}
	var scratch []byte
	app := &mds.App{Key: "k", Revision: 7}
	now := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	offer := func(id int64) delivery.UpgradeChoice {
		a := &mds.Artifact{ID: id, Kind: mds.KindUpgrade, Version: "3.0", Spec: &mds.UpgradeSpec{Source: mds.SourceURL, URL: "https://example.com/a.apk"}}
		return delivery.UpgradeChoice{Offer: &delivery.UpgradeOffer{Offer: &delivery.Offer{Task: &mds.Task{ID: id}, Artifact: a},
			Spec: a.Spec.(*mds.UpgradeSpec), Policy: mds.UpgradePolicy{Mode: mds.ModeSingle}}}
	}
	memo := &atomic.Value{}
	first, second := offer(1), offer(2)
	check := func(c delivery.UpgradeChoice, version string) *answer {
		return set.answer(&delivery.Decision{App: app, Memo: memo, Upgrade: c}, &mds.Device{AppKey: "k", Platform: mds.Android, AppVersion: version}, now, &scratch)
	}
	a1, a2, b1 := check(first, "2.0"), check(second, "2.0"), check(first, "2.1")
	if &a1.head[0] != &a2.head[0] {
		t.Error("two answers of one device state do not share its head")
	}
	if &a1.head[0] == &b1.head[0] {
		t.Error("two device states share a head")
	}
	if a1.sections != b1.sections {
		t.Error("two answers of one offer do not share its section")
	}
	for _, a := range []*answer{a1, a2, b1} {
		body := a.appendBody(nil)
		var v struct {
			App     string
			Version int64
			Device  struct {
				AppVersion string `json:"app_version"`
			}
			Upgrade struct {
				TaskID int64 `json:"task_id"`
			}
		}
		if err := json.Unmarshal(body, &v); err != nil || v.App != "k" || v.Version != 7 {
			t.Fatalf("body %s: %v", body, err)
		}
		if a.lengthHeader()[0] != fmt.Sprint(len(body)) {
			t.Errorf("Content-Length %s for a body of %d bytes", a.lengthHeader()[0], len(body))
		}
		sig := a.signatureHeader()[0]
		b64, ok := strings.CutPrefix(sig, "keyid="+key.Public().ID()+";sig=")
		raw, err := base64.StdEncoding.DecodeString(b64)
		if !ok || err != nil || key.Public().Verify(body, raw) != nil {
			t.Errorf("the signature %q does not verify the body sent", sig)
		}
	}
}
