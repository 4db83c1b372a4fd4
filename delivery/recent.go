package delivery

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
)

// Recent keeps a bounded sample of the devices that checked, per app, for
// audience previews ("what share of my devices would this rule set
// reach?"). Memory is capped at size devices per app. Every check is
// recorded until an app's sample is full, so a preview means something
// from the first checks on; after that one check in every few, so the
// check path rarely takes a lock. Each node samples its own traffic;
// behind a load balancer that is a fair sample of the whole.
type Recent struct {
	size  int
	every uint64
	seen  atomic.Uint64
	apps  sync.Map // app ID → *ring; by ID, so devices on a previous key count too
}

// Seen is one sampled check.
type Seen struct {
	Device mds.Device
	IP     netip.Addr
	At     time.Time
}

type ring struct {
	full  atomic.Bool // len(items) == size: sampling has begun
	mu    sync.Mutex
	items []Seen
	next  int
}

// maxSampledAttributes bounds the custom attributes kept per sampled device.
const maxSampledAttributes = 16

// NewRecent keeps up to size devices per app, recording one check in every.
func NewRecent(size, every int) *Recent {
	return &Recent{size: size, every: uint64(max(every, 1))}
}

// Record samples the input's check; call it only for known apps, so that
// made-up app keys cannot grow the map.
func (r *Recent) Record(app int64, in *gray.Input) {
	v, ok := r.apps.Load(app)
	if !ok {
		v, _ = r.apps.LoadOrStore(app, &ring{items: make([]Seen, 0, r.size)})
	}
	rg := v.(*ring)
	if rg.full.Load() && r.seen.Add(1)%r.every != 0 {
		return
	}
	s := Seen{Device: *in.Device, IP: in.IP, At: in.Now}
	s.Device.LastReminded = nil // targeting never reads it
	if len(s.Device.Attributes) > maxSampledAttributes {
		// Bound what one sample holds: the app key that lets a device check
		// ships in the app, so anyone can send the largest body allowed.
		kept := make(map[string]string, maxSampledAttributes)
		for k, v := range s.Device.Attributes {
			if len(kept) == maxSampledAttributes {
				break
			}
			kept[k] = v
		}
		s.Device.Attributes = kept
	}
	rg.mu.Lock()
	if len(rg.items) < r.size {
		rg.items = append(rg.items, s)
		if len(rg.items) == r.size {
			rg.full.Store(true)
		}
	} else {
		rg.items[rg.next] = s
		rg.next = (rg.next + 1) % r.size
	}
	rg.mu.Unlock()
}

// Sample returns a copy of the devices sampled for app.
func (r *Recent) Sample(app int64) []Seen {
	v, ok := r.apps.Load(app)
	if !ok {
		return nil
	}
	rg := v.(*ring)
	rg.mu.Lock()
	defer rg.mu.Unlock()
	return append([]Seen(nil), rg.items...)
}
