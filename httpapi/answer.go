package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strconv"
	"sync/atomic"

	"github.com/mds-dev/mds/delivery"
)

// A check answer is a JSON object with one member per kind, in the order of
// mds.Kinds; a kind with nothing for the device is null, so SDKs ignore
// kinds they predate. Each kind's section is encoded once per offer (and
// variant: an upgrade that reminds or not) and kept with the offer; an
// answer is its sections written one after another, and its ETag is
// derived from theirs. So a check encodes nothing, and an answer changes,
// and with it its ETag, exactly when a section does: an unrelated write
// leaves a device's answer, and its 304, alone.

// Kinds, as they appear in an answer.
const (
	kindUpgrade = iota
	kinds
)

var (
	answerKeys = [kinds][]byte{kindUpgrade: []byte(`{"upgrade":`)}
	answerEnd  = []byte("}\n")
)

// section is one kind's part of an answer: its JSON value and a digest of
// it. alone is the answer of this section with every other kind null,
// assembled once: the common case, where a device gets one kind at a time.
type section struct {
	body   []byte
	digest [16]byte
	alone  answer
}

func newSection(kind int, v any) *section {
	body, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and numbers always encode
	}
	s := &section{body: body}
	sum := sha256.Sum256(body)
	copy(s.digest[:], sum[:])
	var parts [kinds]*section
	for i := range parts {
		parts[i] = nullSection
	}
	parts[kind] = s
	s.alone.assemble(parts)
	return s
}

// nullSection is a kind with nothing for the device; nullAnswer is an
// answer with nothing at all.
var (
	nullSection = func() *section {
		s := &section{body: []byte("null")}
		sum := sha256.Sum256(s.body)
		copy(s.digest[:], sum[:])
		return s
	}()
	nullAnswer = func() *answer {
		a := &answer{}
		a.assemble([kinds]*section{nullSection})
		return a
	}()
)

// answer is a check answer ready to send, its headers' values too. The
// header values are in the answer itself, and their bytes in one string:
// an answer is read on every check, and with thousands of apps it is
// seldom in a CPU cache, so the fewer places it spans the better. The
// header values handed to net/http are slices of the answer's own array;
// an answer is never assembled again once handed out.
type answer struct {
	sections [kinds]*section
	headers  [2]string // the ETag, the Content-Length
}

// etag is the answer's ETag, quoted.
func (a *answer) etag() string { return a.headers[0] }

// etagHeader and lengthHeader are header values: capped at one, so that a
// handler adding a value copies rather than writes into the answer.
func (a *answer) etagHeader() []string   { return a.headers[:1:1] }
func (a *answer) lengthHeader() []string { return a.headers[1:2:2] }

// assemble frames sections as a, in place. The ETag hashes the sections'
// digests, not their bytes: 16 bytes a kind, whatever the answer's size.
func (a *answer) assemble(sections [kinds]*section) {
	a.sections = sections
	var digests [kinds * 16]byte
	n := len(answerEnd)
	for i, s := range sections {
		copy(digests[16*i:], s.digest[:])
		n += len(answerKeys[i]) + len(s.body)
	}
	sum := sha256.Sum256(digests[:])
	var tag [2 + 2*16]byte
	tag[0], tag[len(tag)-1] = '"', '"'
	hex.Encode(tag[1:len(tag)-1], sum[:16])
	values := string(strconv.AppendInt(tag[:], int64(n), 10))
	a.headers = [2]string{values[:len(tag)], values[len(tag):]}
}

func (a *answer) write(w io.Writer) {
	for i, s := range a.sections {
		w.Write(answerKeys[i])
		w.Write(s.body)
	}
	w.Write(answerEnd)
}

// variants is how many sections an offer may have.
const variants = 2

// answerSet builds and keeps the sections of offers, for answers that
// link to URLs on one public URL.
type answerSet struct {
	links *links
}

// offerSections are the sections of one offer, built lazily, kept in the
// offer's Memo: an offer of an app no write touched is carried into the
// next snapshot, and its sections with it, so a write re-encodes nothing
// of the apps it did not change.
type offerSections struct {
	links    *links // what the sections were built with
	sections [variants]atomic.Pointer[section]
}

// memo returns the section of variant v of offer o, of kind kind, building
// it once. Racing first calls may both build; one result wins, and both
// are equal.
func (set *answerSet) memo(kind int, o *delivery.Offer, v int, build func() any) *section {
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
	slot.CompareAndSwap(nil, newSection(kind, build()))
	return slot.Load()
}

// answer returns the answer for a decision.
func (set *answerSet) answer(dec delivery.Decision) *answer {
	parts := [kinds]*section{kindUpgrade: set.upgrade(dec.Upgrade)}
	only := -1
	for i, s := range parts {
		if s == nullSection {
			continue
		}
		if only >= 0 {
			a := &answer{}
			a.assemble(parts)
			return a
		}
		only = i
	}
	if only < 0 {
		return nullAnswer
	}
	return &parts[only].alone
}
