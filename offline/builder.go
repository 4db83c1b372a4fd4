package offline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delta"
)

// Builder builds, in the background, the deltas the store queues when a
// version of an offline package is released: never on a check. It claims
// one at a time per worker, rebuilds the canonical forms of its two
// versions from their stored packages, encodes the delta, stores it as a
// blob and records it ready, which moves its app's revision so that the
// devices holding its base are offered it. A delta not meaningfully
// smaller than the full package is recorded skipped, and devices get the
// full package. Any number of nodes may run a Builder on one store: the
// store hands each delta to one at a time, for a lease.
//
// Memory is bounded by Workers builds at once, each holding the two
// canonical forms and the encoder's state: about 8 bytes per byte of
// input at peak, and delta.MaxInput bytes of input at most (versions
// larger than that together are skipped, and their devices get the whole
// package).
type Builder struct {
	Store mds.Store
	Blobs mds.BlobStore
	Log   *slog.Logger
	// Workers is how many deltas this node builds at once (1 unless set).
	Workers int
	// Poll is how often an idle worker asks the store for work (5 s
	// unless set); Wake asks at once.
	Poll time.Duration
	// Lease is how long a claim lasts before another node may take the
	// delta over (10 minutes unless set): longer than any build.
	Lease time.Duration
	// MaxShare is the largest delta offered, as a share of the full
	// package's size (0.8 unless set): past it the device is better off
	// with the full package, which it can also resume and share.
	MaxShare float64
	// Attempts is how many times a delta whose build failed is tried (3
	// unless set); a delta that cannot be built (its input is too large,
	// a stored package does not match its record) is not tried again.
	Attempts int
	// RetryDelay is how long a delta whose build failed waits before it
	// is tried again, doubling with each attempt (30 s unless set): what
	// failed (the blob store, the database) may take a while to recover.
	RetryDelay time.Duration
	// Refresh, if set, is called once a delta is ready, so that this node
	// offers it at once (delivery.Live.Refresh); other nodes hear of it as
	// of any write.
	Refresh func(context.Context) error
	// Now is the clock of retry times, the store's; time.Now unless set.
	Now func() time.Time

	wake     chan struct{}
	once     sync.Once
	building atomic.Int64
	mu       sync.Mutex
	built    map[mds.DeltaStatus]int64
	seconds  float64
}

func (b *Builder) init() {
	b.once.Do(func() {
		b.wake = make(chan struct{}, 1)
		b.built = map[mds.DeltaStatus]int64{}
		if b.Workers <= 0 {
			b.Workers = 1
		}
		if b.Poll <= 0 {
			b.Poll = 5 * time.Second
		}
		if b.Lease <= 0 {
			b.Lease = 10 * time.Minute
		}
		if b.MaxShare <= 0 {
			b.MaxShare = 0.8
		}
		if b.Attempts <= 0 {
			b.Attempts = 3
		}
		if b.RetryDelay <= 0 {
			b.RetryDelay = 30 * time.Second
		}
		if b.Now == nil {
			b.Now = time.Now
		}
		if b.Log == nil {
			b.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// Wake has an idle worker look for work now: a version was released on
// this node.
func (b *Builder) Wake() {
	b.init()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// BuilderStats is what a Builder did: how many builds are under way, and
// since it started how many ended in each status and how long they took
// in all.
type BuilderStats struct {
	Building int64
	Built    map[mds.DeltaStatus]int64
	Seconds  float64
}

// Stats returns what b did.
func (b *Builder) Stats() BuilderStats {
	b.init()
	b.mu.Lock()
	defer b.mu.Unlock()
	return BuilderStats{Building: b.building.Load(), Built: maps.Clone(b.built), Seconds: b.seconds}
}

// Run builds deltas until ctx ends, then waits for the builds under way
// to stop.
func (b *Builder) Run(ctx context.Context) {
	b.init()
	var wg sync.WaitGroup
	for range b.Workers {
		wg.Go(func() { b.work(ctx) })
	}
	wg.Wait()
}

// work is one worker: builds while there is work, then waits to be woken
// or for the next poll.
func (b *Builder) work(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.wake:
		}
		for ctx.Err() == nil && b.BuildOne(ctx) {
		}
		t.Reset(b.Poll)
	}
}

// BuildOne claims a delta and builds it, and reports whether there was
// one to claim; a failure to reach the store counts as none, and is
// logged.
func (b *Builder) BuildOne(ctx context.Context) bool {
	b.init()
	d, err := b.Store.ClaimDelta(ctx, b.Lease)
	if err != nil {
		if ctx.Err() == nil {
			b.Log.Error("claiming a delta to build", "err", err)
		}
		return false
	}
	if d == nil {
		return false
	}
	b.building.Add(1)
	defer b.building.Add(-1)
	start := time.Now()
	blob, err := b.build(ctx, d)
	d.BuildMillis = time.Since(start).Milliseconds()
	var refusal *skip
	switch {
	case err != nil && ctx.Err() != nil:
		// Cut short by a shutdown: handed back at once for another node,
		// or this one once it restarts, rather than when the lease ends.
		// The attempt does not count against the delta.
		d.Status, d.Reason, d.RetryAt = mds.DeltaPending, "the node building it shut down", time.Time{}
		d.Attempts--
	case errors.As(err, &refusal):
		d.Status, d.Reason = mds.DeltaSkipped, refusal.reason
	case err != nil && (d.Attempts >= b.Attempts || errors.Is(err, errFinal)):
		d.Status, d.Reason = mds.DeltaFailed, err.Error()
	case err != nil:
		d.Status, d.Reason = mds.DeltaPending, err.Error()
		d.RetryAt = b.Now().Add(b.RetryDelay << min(d.Attempts-1, 10))
	default:
		d.Status, d.Reason = mds.DeltaReady, ""
	}
	if err := b.Store.FinishDelta(context.WithoutCancel(ctx), d, blob); err != nil {
		b.Log.Error("recording a delta", "delta", d.String(), "status", d.Status, "err", err)
		return true
	}
	if d.Status == mds.DeltaReady && b.Refresh != nil && ctx.Err() == nil {
		if err := b.Refresh(ctx); err != nil {
			b.Log.Warn("refreshing after a delta: the next poll offers it", "err", err)
		}
	}
	b.mu.Lock()
	b.built[d.Status]++
	b.seconds += time.Since(start).Seconds()
	b.mu.Unlock()
	log := b.Log.Info
	if d.Status == mds.DeltaFailed || d.Status == mds.DeltaPending {
		log = b.Log.Warn
	}
	log("delta built", "app", d.AppID, "delta", d.String(), "status", d.Status, "size", d.Size, "attempt", d.Attempts,
		"ms", d.BuildMillis, "reason", d.Reason)
	return ctx.Err() == nil
}

// skip is why a delta is not worth offering.
type skip struct{ reason string }

func (s *skip) Error() string { return s.reason }

// errFinal marks a build that fails the same way however often it is
// tried: what is stored does not match what the store recorded of it.
var errFinal = errors.New("not to be tried again")

// build builds delta d, setting its size, and stores it; nil blob for a
// delta it skips.
func (b *Builder) build(ctx context.Context, d *mds.Delta) (*mds.Blob, error) {
	from, err := b.spec(ctx, d.AppID, d.From)
	if err != nil {
		return nil, err
	}
	to, err := b.spec(ctx, d.AppID, d.To)
	if err != nil {
		return nil, err
	}
	if in := from.CanonicalSize + to.CanonicalSize; in > delta.MaxInput {
		return nil, &skip{fmt.Sprintf("the two versions are %d bytes together; deltas are built for at most %d", in, delta.MaxInput)}
	}
	old, err := b.canonical(ctx, from)
	if err != nil {
		return nil, err
	}
	target, err := b.canonical(ctx, to)
	if err != nil {
		return nil, err
	}
	patch, err := delta.Encode(old, target)
	if err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	d.Size = int64(len(patch))
	if limit := b.MaxShare * float64(to.Size); float64(d.Size) > limit {
		return nil, &skip{fmt.Sprintf("the delta is %d bytes, %.0f%% of the full package's %d; it is offered up to %.0f%%",
			d.Size, 100*float64(d.Size)/float64(to.Size), to.Size, 100*b.MaxShare)}
	}
	blob, err := b.Blobs.Put(ctx, bytes.NewReader(patch), "")
	if err != nil {
		return nil, fmt.Errorf("storing: %w", err)
	}
	return &blob, nil
}

// spec returns the spec of offline package id of app.
func (b *Builder) spec(ctx context.Context, app, id int64) (*mds.OfflineSpec, error) {
	a, err := b.Store.FindArtifact(ctx, app, id)
	if err != nil {
		return nil, err
	}
	p, ok := a.Spec.(*mds.OfflineSpec)
	if !ok {
		return nil, fmt.Errorf("package %d is %s, not an offline package: %w", id, a.Kind, errFinal)
	}
	return p, nil
}

// canonical rebuilds the canonical form of the package p describes from
// its stored file, and checks it is the one recorded.
func (b *Builder) canonical(ctx context.Context, p *mds.OfflineSpec) ([]byte, error) {
	rc, blob, err := b.Blobs.Open(ctx, p.SHA256)
	if err != nil {
		return nil, fmt.Errorf("opening package %s: %w", p.SHA256, err)
	}
	defer rc.Close()
	ra, ok := rc.(io.ReaderAt)
	if !ok {
		buf, err := io.ReadAll(io.LimitReader(rc, blob.Size))
		if err != nil {
			return nil, fmt.Errorf("reading package %s: %w", p.SHA256, err)
		}
		ra = bytes.NewReader(buf)
	}
	pkg, err := Open(ra, blob.Size, Limits)
	if err != nil {
		return nil, fmt.Errorf("package %s: %w: %w", p.SHA256, err, errFinal)
	}
	out := bytes.NewBuffer(make([]byte, 0, p.CanonicalSize))
	if _, err := pkg.WriteCanonical(out); err != nil {
		if mds.ErrorCode(err) == mds.EINVALID {
			err = fmt.Errorf("%w: %w", err, errFinal)
		}
		return nil, fmt.Errorf("package %s: %w", p.SHA256, err)
	}
	if sum := sha256.Sum256(out.Bytes()); hex.EncodeToString(sum[:]) != p.CanonicalSHA256 {
		return nil, fmt.Errorf("package %s does not rebuild the canonical form recorded of it (%s): %w", p.SHA256, p.CanonicalSHA256, errFinal)
	}
	return out.Bytes(), nil
}
