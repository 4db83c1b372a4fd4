package postgres_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/postgres"
	"github.com/mds-dev/mds/storetest"
)

// defaultURL is the local test server the README and CI describe.
const defaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// MustOpen opens a store in a fresh schema of the test database and drops the
// schema when the test ends. Without a reachable server it skips, unless
// MDS_TEST_REQUIRE_POSTGRES=1 (set by CI) makes that a failure.
func MustOpen(tb testing.TB) mds.Store {
	tb.Helper()
	base := os.Getenv("MDS_TEST_POSTGRES_URL")
	if base == "" {
		base = defaultURL
	}
	admin, err := sql.Open("pgx", base)
	if err == nil {
		err = admin.Ping()
	}
	if err != nil {
		if os.Getenv("MDS_TEST_REQUIRE_POSTGRES") == "1" {
			tb.Fatalf("PostgreSQL suite required but %s is unreachable: %v", base, err)
		}
		tb.Skipf("PostgreSQL suite skipped: %s is unreachable (%v); set MDS_TEST_POSTGRES_URL", base, err)
	}
	tb.Cleanup(func() { admin.Close() })
	schema := fmt.Sprintf("mdstest_%x", rand.Text()[:12])
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			tb.Errorf("drop test schema: %v", err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	s, err := postgres.Open(context.Background(), u.String())
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, MustOpen)
}
