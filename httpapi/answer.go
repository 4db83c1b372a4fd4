package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/signing"
)

// A check answer is a JSON object: the app key the device sent, the app's
// version (its revision: it only grows), an expiry, and the state of the
// device it was computed for (platform, app version, build, the hotpatch
// it runs), then one member per kind, in the order of mds.Kinds; a kind
// with nothing for the device is null, so SDKs ignore kinds they predate.
// The device's state is there so that an answer made for one device
// state cannot be passed off as another's: a device refuses an answer
// that does not echo what it sent. The body is signed by the
// deployment's keys (the Mds-Signature header), so a device can refuse an
// answer that is replayed, frozen past its expiry, or not ours.
//
// Nothing is encoded or signed per check. Each kind's section is encoded
// once per offer (and variant: an upgrade that reminds or not) and kept
// with the offer; each distinct answer, sections framed for an app, is
// assembled and signed once per signing period and kept with the app's
// part of the snapshot. Its ETag is a digest of its body, so it changes
// exactly when what the device is told changes, and once a period, when
// the answer is signed anew with a later expiry.

// Kinds, as they appear in an answer.
const (
	kindUpgrade = iota
	kindHotpatch
	kinds
)

var (
	deviceKey  = []byte(`"device":`)
	answerKeys = [kinds][]byte{kindUpgrade: []byte(`"upgrade":`), kindHotpatch: []byte(`,"hotpatch":`)}
	answerEnd  = []byte("}\n")
)

// deviceState is what of a device's check its answer depends on besides
// its audience, and echoes: platform, app version, build, and the patch it
// runs (zero for none). Its strings point into the check's body until the
// answer is kept, when they are cloned.
type deviceState struct {
	platform   mds.Platform
	appVersion string
	build      int64
	patch      mds.AppliedPatch
}

func stateOf(d *mds.Device) deviceState {
	s := deviceState{platform: d.Platform, appVersion: d.AppVersion, build: d.Build}
	if d.Hotpatch != nil {
		s.patch = *d.Hotpatch
	}
	return s
}

// echo is the answer's "device" member.
func (s deviceState) echo() any {
	e := struct {
		Platform   mds.Platform      `json:"platform"`
		AppVersion string            `json:"app_version"`
		Build      int64             `json:"build"`
		Hotpatch   *mds.AppliedPatch `json:"hotpatch"`
	}{s.platform, s.appVersion, s.build, nil}
	if s.patch.ID != 0 {
		e.Hotpatch = &s.patch
	}
	return &e
}

// section is one kind's part of an answer: its JSON value.
type section struct {
	body []byte
}

func newSection(v any) *section {
	body, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and numbers always encode
	}
	return &section{body: body}
}

// nullSection is a kind with nothing for the device.
var nullSection = &section{body: []byte("null")}

// answer is a signed check answer ready to send, its headers' values too.
// The header values are one string: an answer is read on every check, and
// with thousands of apps it is seldom in a CPU cache, so the fewer places
// it spans the better. The values handed to net/http are slices of the
// answer's own array; an answer never changes once handed out.
type answer struct {
	body    []byte
	headers [3]string // the ETag, the Content-Length, the Mds-Signature
}

// etag is the answer's ETag, quoted.
func (a *answer) etag() string { return a.headers[0] }

// The header values, capped at one, so that a handler adding a value
// copies rather than writes into the answer.
func (a *answer) etagHeader() []string      { return a.headers[:1:1] }
func (a *answer) lengthHeader() []string    { return a.headers[1:2:2] }
func (a *answer) signatureHeader() []string { return a.headers[2:3:3] }

func (a *answer) write(w io.Writer) { w.Write(a.body) }

// newAnswer frames sections after prefix and the device's state, and
// signs the result.
func newAnswer(prefix []byte, dev deviceState, sections [kinds]*section, sg *signer) *answer {
	echo, err := json.Marshal(dev.echo())
	if err != nil {
		panic(err) // strings and numbers always encode
	}
	n := len(prefix) + len(deviceKey) + len(echo) + 1 + len(answerEnd)
	for i, s := range sections {
		n += len(answerKeys[i]) + len(s.body)
	}
	body := make([]byte, 0, n)
	body = append(body, prefix...)
	body = append(append(append(body, deviceKey...), echo...), ',')
	for i, s := range sections {
		body = append(append(body, answerKeys[i]...), s.body...)
	}
	body = append(body, answerEnd...)
	sum := sha256.Sum256(body)
	var tag [2 + 2*16]byte
	tag[0], tag[len(tag)-1] = '"', '"'
	hex.Encode(tag[1:len(tag)-1], sum[:16])
	length := strconv.Itoa(len(body))
	values := string(tag[:]) + length + sg.sign(body)
	a := &answer{body: body}
	a.headers = [3]string{values[:len(tag)], values[len(tag) : len(tag)+len(length)], values[len(tag)+len(length):]}
	return a
}

// DefaultAnswerTTL is how long a signed answer is valid by default: how
// long an attacker who holds a device's traffic can freeze it on an old
// answer.
const DefaultAnswerTTL = 24 * time.Hour

// signer signs answers with every deployment key: during a rotation
// devices trust the old key or the new one, and each finds its own.
// Answers are signed per period of half their lifetime: one signed in
// period p expires at the end of period p+1, so whatever a device is sent
// stays valid for at least one more period, and every node sends the
// same body in a period, since the expiry is a function of the period.
type signer struct {
	keys   []*signing.PrivateKey
	period int64 // seconds
}

func newSigner(keys []*signing.PrivateKey, ttl time.Duration) *signer {
	if len(keys) == 0 {
		panic("httpapi: no answer signing key: Config.AnswerKeys must hold the deployment's key")
	}
	if ttl <= 0 {
		ttl = DefaultAnswerTTL
	}
	return &signer{keys: keys, period: max(int64(ttl/time.Second)/2, 1)}
}

// epoch is the signing period now falls in.
func (sg *signer) epoch(now time.Time) int64 { return now.Unix() / sg.period }

// expires is when answers signed in period epoch expire.
func (sg *signer) expires(epoch int64) time.Time {
	return time.Unix((epoch+2)*sg.period, 0).UTC()
}

// sign returns the Mds-Signature value for body: keyid=<hex>;sig=<base64>
// per key, comma-separated.
func (sg *signer) sign(body []byte) string {
	var b strings.Builder
	for i, k := range sg.keys {
		sig, err := k.Sign(body)
		if err != nil {
			panic(err) // signing with a valid in-memory key does not fail
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("keyid=" + k.Public().ID() + ";sig=" + base64.StdEncoding.EncodeToString(sig))
	}
	return b.String()
}

// variants is how many sections an offer may have.
const variants = 2

// answerSet builds and keeps sections and answers, for answers that link
// to URLs on one public URL.
type answerSet struct {
	links  *links
	signer *signer
}

// offerSections are the sections of one offer, built lazily, kept in the
// offer's Memo: an offer of an app no write touched is carried into the
// next snapshot, and its sections with it, so a write re-encodes nothing
// of the apps it did not change.
type offerSections struct {
	links    *links // what the sections were built with
	sections [variants]atomic.Pointer[section]
}

// memo returns the section of variant v of offer o, building it once.
// Racing first calls may both build; one result wins, and both are equal.
func (set *answerSet) memo(o *delivery.Offer, v int, build func() any) *section {
	m, _ := o.Memo.Load().(*offerSections)
	if m == nil || m.links != set.links {
		// The first answer of this offer (or one served on another public
		// URL, which only tests do): a racing builder's set may be lost.
		m = &offerSections{links: set.links}
		o.Memo.Store(m)
	}
	slot := &m.sections[v]
	if s := slot.Load(); s != nil {
		return s
	}
	slot.CompareAndSwap(nil, newSection(build()))
	return slot.Load()
}

// appAnswers are the signed answers of one app's part of a snapshot in
// one signing period, kept in the part's memo. They are read on every
// check, so the map is never written: an answer not yet in it is added to
// a copy, under mu, which replaces it.
type appAnswers struct {
	set     *answerSet
	epoch   int64
	prefix  [2][]byte // the frame before the sections, for the app's key and its previous key
	mu      sync.Mutex
	answers atomic.Pointer[map[answerKey]*answer]
}

// answerKey is what tells an app's answers apart: the sections, which of
// the app's keys the device sent, and the device state echoed.
type answerKey struct {
	sections [kinds]*section
	previous bool
	device   deviceState
}

// maxAppAnswers bounds the answers kept for one app in one period: the
// distinct combinations of offers and device states (app versions and
// builds in use, patches run) seen. Past it the app's answers start over,
// so that devices sending ever new states cost signatures, not memory.
const maxAppAnswers = 4096

// answer returns the signed answer for a decision of device d, at now.
func (set *answerSet) answer(dec delivery.Decision, d *mds.Device, now time.Time) *answer {
	k := answerKey{sections: [kinds]*section{
		kindUpgrade:  set.upgrade(dec.Upgrade),
		kindHotpatch: set.hotpatch(dec.Hotpatch),
	}, previous: d.AppKey != dec.App.Key, device: stateOf(d)}
	epoch := set.signer.epoch(now)
	cur := dec.Memo.Load()
	aa, _ := cur.(*appAnswers)
	if aa == nil || aa.epoch != epoch || aa.set != set {
		next := set.newAppAnswers(dec.App, epoch)
		if !dec.Memo.CompareAndSwap(cur, next) {
			// Another check won; use its answers unless they are of
			// another period too.
			if won, _ := dec.Memo.Load().(*appAnswers); won != nil && won.epoch == epoch && won.set == set {
				next = won
			}
		}
		aa = next
	}
	if a := (*aa.answers.Load())[k]; a != nil {
		return a
	}
	return aa.add(k)
}

func (set *answerSet) newAppAnswers(app *mds.App, epoch int64) *appAnswers {
	aa := &appAnswers{set: set, epoch: epoch}
	expires := set.signer.expires(epoch).Format(time.RFC3339)
	frame := func(key string) []byte {
		k, _ := json.Marshal(key)
		return []byte(`{"app":` + string(k) + `,"version":` + strconv.FormatInt(app.Revision, 10) + `,"expires":"` + expires + `",`)
	}
	aa.prefix[0] = frame(app.Key)
	if app.PreviousKey != "" {
		aa.prefix[1] = frame(app.PreviousKey)
	}
	aa.answers.Store(&map[answerKey]*answer{})
	return aa
}

// add signs the answer k and keeps it.
func (aa *appAnswers) add(k answerKey) *answer {
	aa.mu.Lock()
	defer aa.mu.Unlock()
	old := *aa.answers.Load()
	if a := old[k]; a != nil {
		return a
	}
	prefix := aa.prefix[0]
	if k.previous {
		prefix = aa.prefix[1]
	}
	// The key outlives the check whose body its strings point into.
	k.device.platform = mds.Platform(strings.Clone(string(k.device.platform)))
	k.device.appVersion = strings.Clone(k.device.appVersion)
	a := newAnswer(prefix, k.device, k.sections, aa.set.signer)
	next := map[answerKey]*answer{}
	if len(old) < maxAppAnswers {
		next = maps.Clone(old)
	}
	next[k] = a
	aa.answers.Store(&next)
	return a
}
