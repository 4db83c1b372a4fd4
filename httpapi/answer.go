package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash/maphash"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
	kindOffline
	kindConfig
	kinds
)

var (
	deviceKey  = []byte(`"device":`)
	answerKeys = [kinds][]byte{kindUpgrade: []byte(`"upgrade":`), kindHotpatch: []byte(`,"hotpatch":`), kindOffline: []byte(`,"offline":`), kindConfig: []byte(`,"config":`)}
	answerEnd  = []byte("}\n")
)

// deviceState is what of a device's check its answer depends on besides
// its audience, and echoes: platform, app version, build, the patch it
// runs (zero for none), and the digest of the offline packages it holds
// (mds.AppendHeldDigest; "" for none). Its strings point into the check's
// body, and offline into a buffer of the check's, until the answer is
// kept, when they are cloned.
type deviceState struct {
	platform   mds.Platform
	appVersion string
	build      int64
	patch      mds.AppliedPatch
	offline    string
}

// stateOf is d's state; the digest of what it holds of offline packages
// goes into buf, which the state's offline then points into.
func stateOf(d *mds.Device, buf *[]byte) deviceState {
	s := deviceState{platform: d.Platform, appVersion: d.AppVersion, build: d.Build}
	if d.Hotpatch != nil {
		s.patch = *d.Hotpatch
	}
	if len(d.Offline) > 0 {
		*buf = mds.AppendHeldDigest((*buf)[:0], d.Offline)
		s.offline = unsafe.String(unsafe.SliceData(*buf), len(*buf))
	}
	return s
}

// echo is the answer's "device" member. offline is there only when the
// device holds a package, so that answers to devices that predate the
// kind stay as they were; it is a digest, so that a device's head stays
// small however many packages it holds.
func (s deviceState) echo() any {
	e := struct {
		Platform   mds.Platform      `json:"platform"`
		AppVersion string            `json:"app_version"`
		Build      int64             `json:"build"`
		Hotpatch   *mds.AppliedPatch `json:"hotpatch"`
		Offline    string            `json:"offline,omitempty"`
	}{s.platform, s.appVersion, s.build, nil, s.offline}
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
// Its body is not kept whole: the frame and the device's echo (its head)
// are kept once per device state, and the sections once per offer, so
// that an app's answers for many device states share their largest parts
// and a check reads few bytes that other checks do not also read. The
// header values are one string: with thousands of apps an answer is
// seldom in a CPU cache, so the fewer places it spans the better. The
// values handed to net/http are slices of the answer's own array; an
// answer never changes once handed out.
type answer struct {
	head     []byte
	sections [kinds]*section
	headers  [3]string // the ETag, the Content-Length, the Mds-Signature
	// content tells apart what answers say to the device, leaving out
	// the app's version and the expiry: a watcher is sent an answer
	// whose content changed, not one that was only signed anew.
	content [16]byte
	epoch   int64 // the signing period it was signed in
}

// etag is the answer's ETag, quoted.
func (a *answer) etag() string { return a.headers[0] }

// The header values, capped at one, so that a handler adding a value
// copies rather than writes into the answer.
func (a *answer) etagHeader() []string      { return a.headers[:1:1] }
func (a *answer) lengthHeader() []string    { return a.headers[1:2:2] }
func (a *answer) signatureHeader() []string { return a.headers[2:3:3] }

// outcome is the check metric's outcome of the answer.
func (a *answer) outcome() string {
	switch {
	case a.sections[kindUpgrade] != nullSection:
		return "upgrade"
	case a.sections[kindHotpatch] != nullSection:
		return "hotpatch"
	case a.sections[kindOffline] != nullSection:
		return "offline"
	}
	return "none"
}

// appendBody appends the answer's body to buf.
func (a *answer) appendBody(buf []byte) []byte {
	buf = append(buf, a.head...)
	for i, s := range a.sections {
		buf = append(append(buf, answerKeys[i]...), s.body...)
	}
	return append(buf, answerEnd...)
}

// head is the start of a device's answers: prefix, then the device's
// state.
func head(prefix []byte, dev deviceState) []byte {
	echo, err := json.Marshal(dev.echo())
	if err != nil {
		panic(err) // strings and numbers always encode
	}
	h := make([]byte, 0, len(prefix)+len(deviceKey)+len(echo)+1)
	return append(append(append(append(h, prefix...), deviceKey...), echo...), ',')
}

// newAnswer frames sections after head, whose first framed bytes are
// the frame, and signs the result.
func newAnswer(head []byte, framed int, sections [kinds]*section, epoch int64, sg *signer) *answer {
	a := &answer{head: head, sections: sections, epoch: epoch}
	body := a.appendBody(nil)
	content := sha256.Sum256(body[framed:])
	copy(a.content[:], content[:])
	sum := sha256.Sum256(body)
	var tag [2 + 2*16]byte
	tag[0], tag[len(tag)-1] = '"', '"'
	hex.Encode(tag[1:len(tag)-1], sum[:16])
	length := strconv.Itoa(len(body))
	values := string(tag[:]) + length + sg.sign(body)
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

// variants is how many sections an offer may have: an upgrade's that
// reminds or not, a hotpatch's apply or rollback, an offline package's
// in full or with each of its deltas.
const variants = 1 + maxDeltas

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
// a copy, under mu, which replaces it. The heads its answers share are
// only read under mu.
type appAnswers struct {
	set    *answerSet
	epoch  int64
	prefix [2][]byte // the frame before the device's state, for the app's key and its previous key
	mu     sync.Mutex
	heads  map[headKey]*stateHead
	// answers are in shards, by a hash of their key: adding one copies
	// its shard alone, so that filling the memo costs a sixteenth of
	// copying one map.
	answers [answerShards]atomic.Pointer[map[answerKey]*answer]
	// offlines are the offline sections of the answers, by the entries
	// they join (see offline).
	offlines atomic.Pointer[map[string]*offlineSection]
}

// headKey tells apart the heads of an app's answers: which of the app's
// keys the device sent, and the device state echoed.
type headKey struct {
	previous bool
	device   deviceState
}

// stateHead is a head and the key it is kept under, whose strings are the
// head's own.
type stateHead struct {
	key  headKey
	body []byte
}

// answerKey is what tells an app's answers apart: the head and the
// sections.
type answerKey struct {
	headKey
	sections [kinds]*section
}

// answerShards is how many shards an app's answers are kept in.
const answerShards = 16

// answerSeed hashes answer keys to their shard.
var answerSeed = maphash.MakeSeed()

// maxAppAnswers bounds the answers kept for one app in one period: the
// distinct combinations of offers and device states (app versions and
// builds in use, patches run) seen. Past it the app's answers start over,
// so that devices sending ever new states cost signatures, not memory.
const maxAppAnswers = 4096

// answer returns the signed answer for a decision of device d, at now.
// scratch is a buffer of the caller's that the answer's key may point
// into until answer returns.
func (set *answerSet) answer(dec *delivery.Decision, d *mds.Device, now time.Time, scratch *[]byte) *answer {
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
	k := answerKey{headKey{previous: d.AppKey != dec.App.Key, device: stateOf(d, scratch)}, [kinds]*section{
		kindUpgrade:  set.upgrade(dec.Upgrade),
		kindHotpatch: set.hotpatch(dec.Hotpatch),
		kindOffline:  aa.offline(dec.Offline),
		kindConfig:   set.config(dec.Config),
	}}
	shard := &aa.answers[maphash.Comparable(answerSeed, k)%answerShards]
	if a := (*shard.Load())[k]; a != nil {
		return a
	}
	return aa.add(shard, k)
}

func (set *answerSet) newAppAnswers(app *mds.App, epoch int64) *appAnswers {
	aa := &appAnswers{set: set, epoch: epoch, heads: map[headKey]*stateHead{}}
	expires := set.signer.expires(epoch).Format(time.RFC3339)
	frame := func(key string) []byte {
		k, _ := json.Marshal(key)
		return []byte(`{"app":` + string(k) + `,"version":` + strconv.FormatInt(app.Revision, 10) + `,"expires":"` + expires + `",`)
	}
	aa.prefix[0] = frame(app.Key)
	if app.PreviousKey != "" {
		aa.prefix[1] = frame(app.PreviousKey)
	}
	for i := range aa.answers {
		aa.answers[i].Store(&map[answerKey]*answer{})
	}
	aa.offlines.Store(&map[string]*offlineSection{})
	return aa
}

// add signs the answer k and keeps it in shard.
func (aa *appAnswers) add(shard *atomic.Pointer[map[answerKey]*answer], k answerKey) *answer {
	aa.mu.Lock()
	defer aa.mu.Unlock()
	old := *shard.Load()
	if a := old[k]; a != nil {
		return a
	}
	next := map[answerKey]*answer{}
	if len(old) < maxAppAnswers/answerShards {
		next = maps.Clone(old)
	}
	if len(aa.heads) >= maxAppAnswers {
		clear(aa.heads) // the answers keep theirs
	}
	prefix := aa.prefix[0]
	if k.previous {
		prefix = aa.prefix[1]
	}
	h := aa.heads[k.headKey]
	if h == nil {
		// The key outlives the check whose body its strings point into.
		hk := k.headKey
		hk.device.platform = mds.Platform(strings.Clone(string(hk.device.platform)))
		hk.device.appVersion = strings.Clone(hk.device.appVersion)
		hk.device.offline = strings.Clone(hk.device.offline)
		h = &stateHead{key: hk, body: head(prefix, hk.device)}
		aa.heads[hk] = h
	}
	k.headKey = h.key
	a := newAnswer(h.body, len(prefix), k.sections, aa.epoch, aa.set.signer)
	next[k] = a
	shard.Store(&next)
	return a
}
