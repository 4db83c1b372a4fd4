package postgres_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/postgres"
	"github.com/mds-dev/mds/storetest"
)

// defaultURL is the local test server the README and CI describe.
const defaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// baseURL is the server the suite runs against.
var baseURL string

// TestMain probes the server once. Unreachable, the suite runs no tests,
// which `go test ./...` reports as "[no tests to run]" on this package's
// line, and says why under -v; with MDS_TEST_REQUIRE_POSTGRES=1 (set by CI)
// it fails instead.
func TestMain(m *testing.M) {
	flag.Parse()
	baseURL = os.Getenv("MDS_TEST_POSTGRES_URL")
	if baseURL == "" {
		baseURL = defaultURL
	}
	if err := ping(baseURL); err != nil {
		if os.Getenv("MDS_TEST_REQUIRE_POSTGRES") == "1" {
			fmt.Fprintf(os.Stderr, "FAIL: PostgreSQL suite required but %s is unreachable: %v\n", baseURL, err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "PostgreSQL suite skipped: %s is unreachable (%v); set MDS_TEST_POSTGRES_URL\n", baseURL, err)
		flag.Set("test.run", "^$")
	}
	os.Exit(m.Run())
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
	tb.Helper()
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
	s, err := postgres.Open(context.Background(), u.String())
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	// Read again here, where go test records what a test reads, so that a
	// cached result is reused only for the same settings.
	os.Getenv("MDS_TEST_POSTGRES_URL")
	os.Getenv("MDS_TEST_REQUIRE_POSTGRES")
	storetest.Run(t, MustOpen)
}
