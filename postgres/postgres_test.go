package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/postgres"
	"github.com/mds-dev/mds/postgres/pgtest"
	"github.com/mds-dev/mds/storetest"
)

// MustOpen opens a store in a fresh schema of the test database and drops
// the schema when the test ends.
func MustOpen(tb testing.TB) mds.Store {
	s, _ := openSchema(tb)
	return s
}

// openSchema is MustOpen that also returns the URL of the schema, for a
// second node to connect to.
func openSchema(tb testing.TB) (mds.Store, string) {
	tb.Helper()
	u := pgtest.Schema(tb)
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		tb.Fatal(err)
	}
	return s, u
}

func TestStore(t *testing.T) {
	pgtest.Server(t) // skip or fail once, before the subtests
	storetest.Run(t, MustOpen)
}

// TestListenTellsOtherNodes: a write on one node reaches another node's
// snapshot through NOTIFY, with no polling at all; the message names the
// app written, and the other node recompiles that app alone.
func TestListenTellsOtherNodes(t *testing.T) {
	a, url := openSchema(t)
	t.Cleanup(func() { a.Close() })
	b, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	shop, blog := storetest.MustCreateApp(t, a, "shop"), storetest.MustCreateApp(t, a, "blog")
	var tasks []*mds.Task
	for _, app := range []*mds.App{shop, blog} {
		task := storetest.NewTask(t, storetest.MustCreatePackage(t, a, app, "2.0"), mds.Targeting{})
		task.Status = mds.StatusLive
		if err := a.CreateTask(context.Background(), task, "tester"); err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, task)
	}
	src := &storetest.RecordingLive{LiveStore: b}
	live := delivery.NewLive(src)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := live.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	shopOffer, blogOffer := storetest.OfferOf(t, live.Current(), shop, "u"), storetest.OfferOf(t, live.Current(), blog, "u")
	heard := make(chan mds.Change, 16)
	go postgres.Listen(ctx, url, func(c mds.Change) {
		if err := live.Heard(ctx, c); err != nil {
			t.Error(err)
		}
		heard <- c
	}, func(err error) { t.Log(err) })
	if c := <-heard; c != (mds.Change{}) {
		t.Fatalf("first call %+v; want the zero Change once LISTEN is in place", c)
	}
	if _, err := a.UpdateTask(ctx, shop.ID, tasks[0].ID, "tester", func(t *mds.Task) (string, error) {
		return "pause", t.Apply(mds.ActionPause)
	}); err != nil {
		t.Fatal(err)
	}
	want, _ := a.Revision(ctx)
	select {
	case c := <-heard:
		if c != (mds.Change{Revision: want, AppID: shop.ID}) {
			t.Errorf("heard %+v; want revision %d of app %d", c, want, shop.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node b heard nothing of node a's write")
	}
	if got := live.Current().Revision; got != want {
		t.Fatalf("node b at revision %d after hearing of %d", got, want)
	}
	if set := src.Last(); set.Full || len(set.Changed) != 1 || set.Changed[0] != shop.ID {
		t.Errorf("node b loaded %+v; want shop alone", set)
	}
	if storetest.OfferOf(t, live.Current(), shop, "u") != nil || shopOffer == nil {
		t.Error("shop's paused task is still offered on node b")
	}
	if storetest.OfferOf(t, live.Current(), blog, "u") != blogOffer {
		t.Error("node b recompiled blog for a write to shop")
	}
}

// TestMigrateFromV2 carries a populated schema-2 database forward.
func TestMigrateFromV2(t *testing.T) {
	storetest.RunMigration(t, func(t testing.TB) storetest.Legacy {
		u := pgtest.Schema(t)
		db, err := postgres.OpenAt(context.Background(), u, 2)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return storetest.Legacy{DB: db, Upgrade: func(t testing.TB) mds.Store {
			s, err := postgres.Open(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}}
	})
}
