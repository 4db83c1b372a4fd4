// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema of the test server, dropped when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx driver for database/sql
)

// DefaultURL is the local test server the README and CI describe.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Server returns the URL of the test server (MDS_TEST_POSTGRES_URL, or
// DefaultURL), or skips the test when it is unreachable, or fails it when
// MDS_TEST_REQUIRE_POSTGRES=1 (set by CI). The variables are read inside
// the test so that go test keys its cache on them.
func Server(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("MDS_TEST_POSTGRES_URL")
	if u == "" {
		u = DefaultURL
	}
	if err := ping(u); err != nil {
		if os.Getenv("MDS_TEST_REQUIRE_POSTGRES") == "1" {
			tb.Fatalf("PostgreSQL suite required but %s is unreachable: %v", u, err)
		}
		tb.Skipf("PostgreSQL suite skipped: %s is unreachable (%v); set MDS_TEST_POSTGRES_URL", u, err)
	}
	return u
}

func ping(u string) error {
	db, err := sql.Open("pgx", u)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// Schema makes a fresh schema of the test database, dropped when the test
// ends, and returns the URL that uses it.
func Schema(tb testing.TB) string {
	tb.Helper()
	baseURL := Server(tb)
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
