package offline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delta"
	"github.com/mds-dev/mds/localfs"
	"github.com/mds-dev/mds/offline"
	"github.com/mds-dev/mds/offline/offlinetest"
	"github.com/mds-dev/mds/signing"
	"github.com/mds-dev/mds/sqlite"
)

// deployment is a store and blob store with an app whose team key is k.
type deployment struct {
	store mds.Store
	blobs *localfs.BlobStore
	dir   string
	app   *mds.App
	key   *signing.PrivateKey
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(t.Context(), filepath.Join(dir, "mds.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	blobs, err := localfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close() })
	app := &mds.App{Slug: "shop", Name: "Shop", Key: mds.NewAppKey(), Platforms: []mds.Platform{mds.Android}}
	if err := app.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateApp(t.Context(), app); err != nil {
		t.Fatal(err)
	}
	k := key(t)
	pub := k.Public()
	if err := store.AddTeamKey(t.Context(), &mds.TeamKey{AppID: app.ID, ID: pub.ID(), Alg: string(pub.Alg()), PEM: string(pub.MarshalPEM()),
		Name: "team", CreatedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	return &deployment{store: store, blobs: blobs, dir: dir, app: app, key: k}
}

// release packs version v of package home, stores it as the server does
// (its file, its spec with its canonical form) and releases it to
// everyone; it returns the package and its canonical form.
func (d *deployment) release(t *testing.T, v string, size int) (*mds.Artifact, []byte) {
	t.Helper()
	b := offlinetest.Pack(t, offlinetest.Site(v, size), offlinetest.Manifest(d.app.Key, "home", v), d.key)
	p := open(t, b)
	var canonical bytes.Buffer
	if _, err := p.WriteCanonical(&canonical); err != nil {
		t.Fatal(err)
	}
	csum := sha256.Sum256(canonical.Bytes())
	blob, err := d.blobs.Put(t.Context(), bytes.NewReader(b), "")
	if err != nil {
		t.Fatal(err)
	}
	a := &mds.Artifact{AppID: d.app.ID, Kind: mds.KindOffline, Version: v, CreatedBy: "test",
		Spec: p.Manifest.Spec(blob.SHA256, blob.Size, hex.EncodeToString(csum[:]), int64(canonical.Len()))}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := d.store.CreateArtifact(t.Context(), a, blob); err != nil {
		t.Fatal(err)
	}
	task := &mds.Task{AppID: d.app.ID, Kind: mds.KindOffline, ArtifactID: a.ID, Policy: &mds.OfflinePolicy{}, Status: mds.StatusLive}
	if err := task.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := d.store.CreateTask(t.Context(), task, "test"); err != nil {
		t.Fatal(err)
	}
	return a, canonical.Bytes()
}

func (d *deployment) deltas(t *testing.T) map[string]*mds.Delta {
	t.Helper()
	list, err := d.store.ListDeltas(t.Context(), d.app.ID, "home")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*mds.Delta{}
	for _, x := range list {
		out[x.FromVersion+"→"+x.ToVersion] = x
	}
	return out
}

// TestBuilder: a released version gets a ready delta from the one before,
// which turns that version's canonical form into its own, and which the
// live set offers; a delta not smaller than the package allows is
// skipped; a stored package that does not rebuild what was recorded of it
// fails the delta for good; the builder counts what it did.
func TestBuilder(t *testing.T) {
	d := newDeployment(t)
	refreshed := 0
	b := &offline.Builder{Store: d.store, Blobs: d.blobs, Refresh: func(context.Context) error { refreshed++; return nil }}
	_, v1 := d.release(t, "1.0.0", 200_000)
	if b.BuildOne(t.Context()) {
		t.Fatal("built something with one version released")
	}
	_, v2 := d.release(t, "1.1.0", 200_000)
	if !b.BuildOne(t.Context()) || b.BuildOne(t.Context()) {
		t.Fatal("did not build exactly the one delta queued")
	}
	got := d.deltas(t)["1.0.0→1.1.0"]
	if got == nil || got.Status != mds.DeltaReady || got.Size == 0 || got.Attempts != 1 || refreshed != 1 {
		t.Fatalf("delta %+v (refreshed %d), want ready", got, refreshed)
	}
	rc, blob, err := d.blobs.Open(t.Context(), got.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := delta.Apply(&out, v1, rc, int64(len(v2))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), v2) {
		t.Error("the delta does not turn 1.0.0's canonical form into 1.1.0's")
	}
	if blob.Size != got.Size || float64(got.Size) > 0.1*float64(len(v2)) {
		t.Errorf("a delta of %d bytes (blob %d) between versions of %d that differ in a few lines", got.Size, blob.Size, len(v2))
	}
	set, err := d.store.LoadLive(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Deltas) != 1 || set.Deltas[0].SHA256 != got.SHA256 {
		t.Errorf("the live set's deltas: %+v", set.Deltas)
	}

	// A builder that offers deltas only below a thousandth of the package
	// skips the next one.
	picky := &offline.Builder{Store: d.store, Blobs: d.blobs, MaxShare: 0.001}
	d.release(t, "1.2.0", 200_000)
	for picky.BuildOne(t.Context()) {
	}
	skipped := d.deltas(t)["1.1.0→1.2.0"]
	if skipped == nil || skipped.Status != mds.DeltaSkipped || !strings.Contains(skipped.Reason, "of the full package") || skipped.SHA256 != "" || skipped.Size == 0 {
		t.Errorf("delta %+v, want skipped for its size", skipped)
	}

	// A stored package altered on disk does not rebuild its canonical
	// form: the delta fails, and is not tried again.
	a3, _ := d.release(t, "1.3.0", 200_000)
	path := filepath.Join(d.dir, "blobs", a3.Spec.(*mds.OfflineSpec).SHA256[:2], a3.Spec.(*mds.OfflineSpec).SHA256)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("not a package"), 0o644); err != nil {
		t.Fatal(err)
	}
	for b.BuildOne(t.Context()) {
	}
	for name, x := range d.deltas(t) {
		if strings.HasSuffix(name, "→1.3.0") && (x.Status != mds.DeltaFailed || x.Attempts != 1 || x.Reason == "") {
			t.Errorf("delta %s to an altered package: %+v, want failed at once", name, x)
		}
	}
	st := b.Stats()
	if st.Building != 0 || st.Built[mds.DeltaReady] != 1 || st.Built[mds.DeltaFailed] != 3 || st.Seconds <= 0 {
		t.Errorf("stats %+v", st)
	}
}

// flakyBlobs is a blob store whose Open fails while failing is set, and
// calls onOpen first when it is set.
type flakyBlobs struct {
	mds.BlobStore
	failing bool
	onOpen  func()
}

func (f *flakyBlobs) Open(ctx context.Context, sum string) (io.ReadSeekCloser, mds.Blob, error) {
	if f.onOpen != nil {
		f.onOpen()
	}
	if f.failing || ctx.Err() != nil {
		return nil, mds.Blob{}, errors.New("the blob store does not answer")
	}
	return f.BlobStore.Open(ctx, sum)
}

// TestBuilderRetries: a build that fails for a reason that may pass is
// tried again after its retry delay, not at once; one cut short by a
// shutdown is handed back at once.
func TestBuilderRetries(t *testing.T) {
	d := newDeployment(t)
	blobs := &flakyBlobs{BlobStore: d.blobs, failing: true}
	b := &offline.Builder{Store: d.store, Blobs: blobs, RetryDelay: time.Hour}
	d.release(t, "1.0.0", 20_000)
	d.release(t, "1.1.0", 20_000)
	if !b.BuildOne(t.Context()) {
		t.Fatal("nothing built")
	}
	got := d.deltas(t)["1.0.0→1.1.0"]
	if got.Status != mds.DeltaPending || !strings.Contains(got.Reason, "does not answer") || got.Attempts != 1 || time.Until(got.RetryAt) < 59*time.Minute {
		t.Fatalf("after a failure: %+v; want it pending, retried in an hour", got)
	}
	blobs.failing = false
	if b.BuildOne(t.Context()) {
		t.Fatal("a failed build was tried again at once")
	}
	soon := &offline.Builder{Store: d.store, Blobs: blobs, RetryDelay: time.Millisecond}
	d.release(t, "1.2.0", 20_000)
	blobs.failing = true
	for soon.BuildOne(t.Context()) {
		if n := len(d.deltas(t)); n > 10 {
			break
		}
		blobs.failing = false
		time.Sleep(5 * time.Millisecond)
	}
	for name, x := range d.deltas(t) {
		if strings.HasSuffix(name, "→1.2.0") && x.Status != mds.DeltaReady {
			t.Errorf("delta %s after a retry: %+v", name, x)
		}
	}

	// A shutdown in the middle of a build hands the delta back.
	d.release(t, "1.3.0", 20_000)
	ctx, cancel := context.WithCancel(t.Context())
	blobs.onOpen = cancel // the shutdown comes as the build reads a package
	stopping := &offline.Builder{Store: d.store, Blobs: blobs}
	if stopping.BuildOne(ctx) {
		t.Error("a builder shutting down went on")
	}
	blobs.onOpen = nil
	var handedBack int
	for name, x := range d.deltas(t) {
		if strings.HasSuffix(name, "→1.3.0") && x.Status == mds.DeltaPending && strings.Contains(x.Reason, "shut down") {
			handedBack++
			if x.Attempts != 0 || !x.RetryAt.IsZero() {
				t.Errorf("a delta handed back at shutdown: attempts %d, retry at %v; want neither counted", x.Attempts, x.RetryAt)
			}
		}
	}
	if handedBack != 1 {
		t.Errorf("%d deltas handed back by a builder shutting down, want 1: %v", handedBack, d.deltas(t))
	}
	if !soon.BuildOne(t.Context()) {
		t.Error("a delta handed back is not claimed at once")
	}
}
