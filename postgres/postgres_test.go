package postgres_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/postgres"
	"github.com/mds-dev/mds/storetest"
)

// defaultURL is the local test server the README and CI describe.
const defaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// server returns the URL of the test server, or skips the test when it is
// unreachable, or fails it when MDS_TEST_REQUIRE_POSTGRES=1 (set by CI).
// The variables are read inside the test so that go test keys its cache on
// them.
func server(tb testing.TB) string {
	tb.Helper()
	url := os.Getenv("MDS_TEST_POSTGRES_URL")
	if url == "" {
		url = defaultURL
	}
	if err := ping(url); err != nil {
		if os.Getenv("MDS_TEST_REQUIRE_POSTGRES") == "1" {
			tb.Fatalf("PostgreSQL suite required but %s is unreachable: %v", url, err)
		}
		tb.Skipf("PostgreSQL suite skipped: %s is unreachable (%v); set MDS_TEST_POSTGRES_URL", url, err)
	}
	return url
}

func ping(url string) error {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

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
	u := newSchema(tb)
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		tb.Fatal(err)
	}
	return s, u
}

// newSchema makes a fresh schema of the test database, dropped when the
// test ends, and returns the URL that uses it.
func newSchema(tb testing.TB) string {
	tb.Helper()
	baseURL := server(tb)
	admin, err := sql.Open("pgx", baseURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { admin.Close() })
	schema := "mdstest_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			tb.Errorf("drop test schema: %v", err)
		}
	})
	u, err := url.Parse(baseURL)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func TestStore(t *testing.T) {
	server(t) // skip or fail once, before the subtests
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
		u := newSchema(t)
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
