package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/sqlite"
	"github.com/mds-dev/mds/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t testing.TB) mds.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "mds.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestReopen checks that migrations are idempotent and data survives.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mds.db")
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	storetest.MustCreateApp(t, s, "shop")
	s.Close()
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.FindApp(ctx, "shop"); err != nil {
		t.Fatalf("app lost across reopen: %v", err)
	}
}

// TestMigrateFromV2 carries a populated schema-2 database forward.
func TestMigrateFromV2(t *testing.T) {
	storetest.RunMigration(t, func(t testing.TB) storetest.Legacy {
		path := filepath.Join(t.TempDir(), "mds.db")
		db, err := sqlite.OpenAt(context.Background(), path, 2)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return storetest.Legacy{DB: db, Upgrade: func(t testing.TB) mds.Store {
			s, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}}
	})
}
