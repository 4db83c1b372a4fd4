package delivery

import (
	"encoding/binary"
	"maps"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
)

// Recent keeps a sample of the devices that checked, per app, for audience
// previews ("what share of my devices would this rule set reach?").
//
// Memory is bounded for the whole node: the sample has one budget in
// bytes, shared evenly by the apps that have checked, and each app keeps
// at most perApp devices. A device is kept as a compact record of what
// targeting reads (its fields, at most maxSampledAttributes attributes,
// its address), encoded into a buffer the sample reuses, so recording
// allocates nothing once the sample is full.
//
// Every check is recorded until an app's share is full, so a preview means
// something from the first checks on; after that one check in every few
// of the app's, replacing the oldest, so the check path rarely takes a
// lock, and checks of different apps share no memory that either writes. Each node
// samples its own traffic; behind a load balancer that is a fair sample of
// the whole.
type Recent struct {
	budget int
	perApp int
	every  uint64

	// apps maps app IDs to rings (by ID, so devices on a previous key count
	// too). Read on every check, written once an app: a plain map, copied
	// to add one, is the read that touches the least memory (adding n apps
	// copies n²/2 entries, as add's trimming already visits every ring).
	apps atomic.Pointer[map[int64]*ring]

	mu    sync.Mutex // held to add an app
	rings []*ring
	share atomic.Int64 // bytes each app may hold: budget / apps
}

// Seen is one sampled device, as targeting sees it.
type Seen struct {
	Device mds.Device
	IP     netip.Addr
}

// ring is one app's sample: records in the order they were written, the
// oldest at next once the ring has stopped growing.
type ring struct {
	full  atomic.Bool   // sampling has begun: the share or perApp is reached
	seen  atomic.Uint64 // checks since, to record one in every
	mu    sync.Mutex
	items [][]byte
	next  int
	bytes int // what items hold, counted as cap plus recordOverhead each
}

// recordOverhead is what a record costs besides its bytes: its slice header.
const recordOverhead = 24

// maxSampledAttributes bounds the custom attributes kept per sampled device:
// the app key that lets a device check ships in the app, so anyone can
// send the largest body allowed.
const maxSampledAttributes = 16

// Defaults: the whole node's budget, the devices one app keeps, and how
// many checks there are to one recorded once an app's part is full.
const (
	DefaultSampleBytes  = 64 << 20
	DefaultSamplePerApp = 2000
	DefaultSampleEvery  = 8
)

// NewRecent keeps a sample of at most budget bytes in all and perApp
// devices per app, recording one check in every once an app's part is full.
func NewRecent(budget, perApp, every int) *Recent {
	r := &Recent{budget: max(budget, 0), perApp: max(perApp, 1), every: uint64(max(every, 1))}
	r.share.Store(int64(r.budget))
	r.apps.Store(&map[int64]*ring{})
	return r
}

// Bytes is what the sample holds now, in bytes: never more than its budget.
func (r *Recent) Bytes() int {
	r.mu.Lock()
	rings := r.rings
	r.mu.Unlock()
	n := 0
	for _, rg := range rings {
		rg.mu.Lock()
		n += rg.bytes
		rg.mu.Unlock()
	}
	return n
}

// Record samples the input's check; call it only for known apps, so that
// made-up app keys cannot grow the sample. It keeps none of the input's
// memory: the device's strings may be reused after it returns.
func (r *Recent) Record(app int64, in *gray.Input) {
	rg := (*r.apps.Load())[app]
	if rg == nil {
		rg = r.add(app)
	}
	if rg.full.Load() && rg.seen.Add(1)%r.every != 0 {
		return
	}
	rg.mu.Lock()
	defer rg.mu.Unlock()
	// Read under the ring's lock: add shrinks the share before it trims
	// each ring under its lock, so a share read here is never stale.
	share := int(r.share.Load())
	if !rg.full.Load() || len(rg.items) == 0 {
		// Grow while the share allows; a record of about this size must fit.
		if size := recordSize(in); len(rg.items) < r.perApp && rg.bytes+recordOverhead+roomFor(size) <= share {
			rec := appendRecord(recordBuffer(nil, size), in)
			rg.items = append(rg.items, rec)
			rg.bytes += cap(rec) + recordOverhead
			// Past 16 attributes the record may keep others than were
			// sized, and grow: the budget holds all the same.
			rg.trim(share)
			return
		}
		rg.startSampling()
		if len(rg.items) == 0 {
			return // a share too small for this record
		}
	}
	old := rg.items[rg.next]
	rec := appendRecord(recordBuffer(old, recordSize(in)), in)
	rg.bytes += cap(rec) - cap(old)
	rg.items[rg.next] = rec
	rg.next = (rg.next + 1) % len(rg.items)
	rg.trim(share)
}

// add makes app's ring, shrinking every app's share to make room.
func (r *Recent) add(app int64) *ring {
	r.mu.Lock()
	defer r.mu.Unlock()
	apps := *r.apps.Load()
	if rg := apps[app]; rg != nil {
		return rg
	}
	rg := &ring{}
	r.rings = append(r.rings, rg)
	share := r.budget / len(r.rings)
	r.share.Store(int64(share))
	for _, other := range r.rings {
		other.mu.Lock()
		other.trim(share)
		other.mu.Unlock()
	}
	next := maps.Clone(apps)
	next[app] = rg
	r.apps.Store(&next)
	return rg
}

// startSampling marks the ring full, from a random point of its count, so
// that devices checking in a cycle the sampling interval divides are not
// sampled alike every time.
func (rg *ring) startSampling() {
	if !rg.full.Load() {
		rg.seen.Store(rand.Uint64())
		rg.full.Store(true)
	}
}

// trim drops the oldest records until the ring holds at most share bytes.
func (rg *ring) trim(share int) {
	for rg.bytes > share && len(rg.items) > 0 {
		i := rg.next % len(rg.items)
		rg.bytes -= cap(rg.items[i]) + recordOverhead
		rg.items = append(rg.items[:i], rg.items[i+1:]...)
		if len(rg.items) > 0 {
			rg.next = i % len(rg.items)
		} else {
			rg.next = 0
		}
		rg.startSampling() // it has reached its share
	}
}

// Sample returns the devices sampled for app.
func (r *Recent) Sample(app int64) []Seen {
	rg := (*r.apps.Load())[app]
	if rg == nil {
		return nil
	}
	rg.mu.Lock()
	defer rg.mu.Unlock()
	out := make([]Seen, 0, len(rg.items))
	for _, rec := range rg.items {
		out = append(out, decodeRecord(rec))
	}
	return out
}

// A record is the device's fields in a fixed order, each a uvarint length
// and its bytes; its build as a uvarint; its attributes as a count and
// name-value pairs; and its address as a length (0, 4 or 16) and bytes.

func stringFields(d *mds.Device) [13]*string {
	return [...]*string{&d.AppKey, (*string)(&d.Platform), &d.AppVersion, &d.DeviceID, &d.UserID, &d.Model,
		&d.Brand, &d.OSVersion, &d.Network, &d.Region, &d.City, &d.Channel, &d.Language}
}

// recordSize is the length of in's record.
func recordSize(in *gray.Input) int {
	d := in.Device
	n := 0
	for _, s := range stringFields(d) {
		n += stringSize(*s)
	}
	n += uvarintSize(uint64(max(d.Build, 0)))
	kept := min(len(d.Attributes), maxSampledAttributes)
	n += uvarintSize(uint64(kept))
	for k, v := range d.Attributes {
		if kept == 0 {
			break
		}
		n += stringSize(k) + stringSize(v)
		kept--
	}
	switch {
	case in.IP.Is4():
		n += 5
	case in.IP.Is6():
		n += 17
	default:
		n++
	}
	return n
}

func stringSize(s string) int { return uvarintSize(uint64(len(s))) + len(s) }

func uvarintSize(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// recordBuffer returns b emptied if a record of size bytes fits, else a
// new buffer with room to spare, so that the next devices, of about the
// same size, fit too.
func recordBuffer(b []byte, size int) []byte {
	if cap(b) >= size {
		return b[:0]
	}
	return make([]byte, 0, roomFor(size))
}

func roomFor(size int) int { return (size + size/4 + 31) &^ 31 }

func appendRecord(b []byte, in *gray.Input) []byte {
	d := in.Device
	for _, s := range stringFields(d) {
		b = appendString(b, *s)
	}
	b = binary.AppendUvarint(b, uint64(max(d.Build, 0)))
	kept := min(len(d.Attributes), maxSampledAttributes)
	b = binary.AppendUvarint(b, uint64(kept))
	for k, v := range d.Attributes {
		if kept == 0 {
			break
		}
		b = appendString(appendString(b, k), v)
		kept--
	}
	switch ip := in.IP; {
	case ip.Is4():
		a := ip.As4()
		b = append(append(b, 4), a[:]...)
	case ip.Is6():
		a := ip.As16()
		b = append(append(b, 16), a[:]...)
	default:
		b = append(b, 0)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func decodeRecord(b []byte) Seen {
	var s Seen
	str := func() string {
		n, k := binary.Uvarint(b)
		v := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return v
	}
	for _, f := range stringFields(&s.Device) {
		*f = str()
	}
	build, k := binary.Uvarint(b)
	b = b[k:]
	s.Device.Build = int64(build)
	attrs, k := binary.Uvarint(b)
	b = b[k:]
	if attrs > 0 {
		s.Device.Attributes = make(map[string]string, attrs)
		for range attrs {
			name := str()
			s.Device.Attributes[name] = str()
		}
	}
	switch n := int(b[0]); n {
	case 4:
		s.IP = netip.AddrFrom4([4]byte(b[1:5]))
	case 16:
		s.IP = netip.AddrFrom16([16]byte(b[1:17]))
	}
	return s
}
