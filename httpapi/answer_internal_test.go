package httpapi

import (
	"fmt"
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
	dec := delivery.Decision{App: &mds.App{Key: "k", Revision: 7}, Memo: &atomic.Value{}}
	now := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	device := func(i int) *mds.Device {
		return &mds.Device{AppKey: "k", Platform: mds.Android, AppVersion: fmt.Sprintf("2.%d", i)}
	}
	first := set.answer(dec, device(0), now)
	if again := set.answer(dec, device(0), now); again != first {
		t.Error("an answer seen again was signed anew")
	}
	kept := func() int { return len(*dec.Memo.Load().(*appAnswers).answers.Load()) }
	for i := 1; i < maxAppAnswers; i++ {
		set.answer(dec, device(i), now)
	}
	if n := kept(); n != maxAppAnswers {
		t.Fatalf("%d answers kept, want %d", n, maxAppAnswers)
	}
	set.answer(dec, device(maxAppAnswers), now)
	if n := kept(); n != 1 {
		t.Errorf("past the bound %d answers are kept; they start over", n)
	}
	// The device's strings point into the check's body, which the next
	// check reuses: the kept answer must hold copies.
	body := []byte("9.9")
	d := &mds.Device{AppKey: "k", Platform: mds.Android, AppVersion: unsafe.String(&body[0], len(body))}
	a := set.answer(dec, d, now)
	copy(body, "8.8")
	if b := set.answer(dec, &mds.Device{AppKey: "k", Platform: mds.Android, AppVersion: "9.9"}, now); b != a {
		t.Error("the kept answer's key changed with the body it came from")
	}
}
