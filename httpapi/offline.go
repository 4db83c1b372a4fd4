package httpapi

import (
	"encoding/binary"
	"maps"
	"slices"
	"unsafe"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
)

// The offline kind over HTTP: its section of the check answer, an array
// of the packages the device is offered, by package ID.

// offlineAnswer is one package of the offline section: where to fetch
// it whole, and, for a device that holds an older version, the delta from
// that version when one is ready. Where the package is served, its entry
// page and its fallback are in its signed manifest.
type offlineAnswer struct {
	Package         string            `json:"package"`
	Version         string            `json:"version"`
	Type            mds.OfflineType   `json:"type"`
	TaskID          int64             `json:"task_id"`
	Stage           mds.Stage         `json:"stage"`
	PackageID       int64             `json:"package_id"`
	URL             string            `json:"url"`
	Size            int64             `json:"size"`
	SHA256          string            `json:"sha256"`
	CanonicalSize   int64             `json:"canonical_size"`
	CanonicalSHA256 string            `json:"canonical_sha256"`
	KeyID           string            `json:"key_id"`
	Network         mds.NetworkPolicy `json:"network"`
	Preload         bool              `json:"preload"`
	Requires        []string          `json:"requires,omitempty"`
	Delta           *deltaAnswer      `json:"delta,omitempty"`
}

// deltaAnswer is the delta from the version the device holds.
type deltaAnswer struct {
	From   string `json:"from"`
	URL    string `json:"url"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// maxDeltas is how many deltas to one version an answer may name: one
// section per delta, beside the one in full.
const maxDeltas = mds.MaxDeltaBases

// offlineEntry returns the section of one offered package: variant 0 in
// full, 1+i with the offer's delta i.
func (set *answerSet) offlineEntry(pk delivery.OfflinePick) *section {
	o, v := pk.Offer, 0
	if i := o.DeltaIndex(pk.Delta); i >= 0 && i < maxDeltas {
		v = 1 + i
	}
	return set.memo(o.Offer, v, func() any {
		p := o.Spec
		e := &offlineAnswer{Package: p.Package, Version: o.Artifact.Version, Type: p.Type, TaskID: o.Task.ID, Stage: o.Task.Stage,
			PackageID: o.Artifact.ID, URL: set.links.blob(p.SHA256), Size: p.Size, SHA256: p.SHA256,
			CanonicalSize: p.CanonicalSize, CanonicalSHA256: p.CanonicalSHA256, KeyID: p.KeyID, Network: p.Network, Preload: p.Preload, Requires: p.Requires}
		if v > 0 {
			d := &o.Deltas[v-1]
			e.Delta = &deltaAnswer{From: d.From, URL: set.links.blob(d.SHA256), Size: d.Size, SHA256: d.SHA256}
		}
		return e
	})
}

// offlineSection is a kept offline section and the entries it joins.
type offlineSection struct {
	entries []*section
	section *section
}

// offline returns the offline section for picks, kept in aa by the
// entries it joins, so that checks that are offered the same packages
// share one section and one answer.
func (aa *appAnswers) offline(picks []delivery.OfflinePick) *section {
	if len(picks) == 0 {
		return nullSection
	}
	var entries [16]*section
	list := entries[:0]
	var keyBuf [len(entries) * 8]byte
	key := keyBuf[:0]
	for _, pk := range picks {
		e := aa.set.offlineEntry(pk)
		list = append(list, e)
		key = binary.LittleEndian.AppendUint64(key, uint64(uintptr(unsafe.Pointer(e))))
	}
	// The entries are kept by their offers, which outlive aa: an address
	// is not reused while aa is in use. Compared anyway, for certainty.
	if s := (*aa.offlines.Load())[string(key)]; s != nil && slices.Equal(s.entries, list) {
		return s.section
	}
	aa.mu.Lock()
	defer aa.mu.Unlock()
	old := *aa.offlines.Load()
	if s := old[string(key)]; s != nil && slices.Equal(s.entries, list) {
		return s.section
	}
	next := map[string]*offlineSection{}
	if len(old) < maxAppAnswers {
		next = maps.Clone(old)
	}
	body := []byte{'['}
	for i, e := range list {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, e.body...)
	}
	s := &offlineSection{entries: slices.Clone(list), section: &section{body: append(body, ']')}}
	next[string(key)] = s
	aa.offlines.Store(&next)
	return s.section
}
