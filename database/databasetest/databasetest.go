// Package databasetest gives tests fresh, migrated databases: SQLite always,
// MySQL (or MariaDB) when IDP_TEST_MYSQL_DSN names a server and PostgreSQL
// when IDP_TEST_POSTGRES_DSN does, for example
//
//	IDP_TEST_MYSQL_DSN=mysql://root@127.0.0.1:3306/idp_test
//	IDP_TEST_POSTGRES_DSN=postgres://postgres@127.0.0.1:5432/idp_test
//
// Every call creates its own database (a file in the test's temporary
// directory, or a new MySQL or PostgreSQL database named after the DSN's
// database plus a random suffix, dropped when the test ends), so tests never
// see each other's rows.
package databasetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"idp/database"
)

// MySQLEnv and PostgresEnv are the environment variables that enable the
// MySQL and PostgreSQL runs.
const (
	MySQLEnv    = "IDP_TEST_MYSQL_DSN"
	PostgresEnv = "IDP_TEST_POSTGRES_DSN"
)

// Engine is a database engine tests run against.
type Engine struct {
	Name string
	// NewURL returns the URL of a fresh, empty database for t.
	NewURL func(t testing.TB) string
}

// Engines lists SQLite and, when configured, MySQL and PostgreSQL. In CI
// (CI set in the environment) a missing MySQL or PostgreSQL configuration
// fails the test instead of silently skipping that engine.
func Engines(t testing.TB) []Engine {
	engines := []Engine{{Name: "sqlite", NewURL: SQLiteURL}}
	for _, e := range []struct {
		env, name, label string
		newURL           func(testing.TB) string
	}{
		{MySQLEnv, "mysql", "MySQL", MySQLURL},
		{PostgresEnv, "postgres", "PostgreSQL", PostgresURL},
	} {
		if os.Getenv(e.env) != "" {
			engines = append(engines, Engine{Name: e.name, NewURL: e.newURL})
		} else if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set in CI: the %s runs would be skipped", e.env, e.label)
		}
	}
	return engines
}

// Each runs fn as a subtest per engine, each with a fresh migrated database.
func Each(t *testing.T, fn func(t *testing.T, db *database.DB)) {
	t.Helper()
	for _, e := range Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			fn(t, Open(t, e.NewURL(t)))
		})
	}
}

// Open opens and migrates the database at rawURL and closes it when t ends.
func Open(t testing.TB, rawURL string) *database.DB {
	t.Helper()
	ctx := context.Background()
	db, err := database.Open(ctx, rawURL)
	if err != nil {
		t.Fatalf("open %s: %v", rawURL, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// SQLiteURL returns the URL of a new SQLite database file.
func SQLiteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "idp.db")
}

// MySQLURL creates a new empty MySQL database on the server named by
// IDP_TEST_MYSQL_DSN and returns its URL; the database is dropped when t
// ends.
func MySQLURL(t testing.TB) string {
	t.Helper()
	return fresh(t, MySQLEnv)
}

// fresh creates a new database on the server named by env and drops it
// when t ends.
func fresh(t testing.TB, env string) string {
	t.Helper()
	u, name := freshDatabase(t, env)
	dbURL, drop, err := database.CreateDatabase(context.Background(), u.String(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Logf("%v", err)
		}
	})
	return dbURL
}

// freshDatabase parses the server URL in the variable env (skipping t when
// it is unset) and names a new database on it: the URL's database name,
// or idp_test, with a random suffix.
func freshDatabase(t testing.TB, env string) (*url.URL, string) {
	t.Helper()
	base := os.Getenv(env)
	if base == "" {
		t.Skipf("%s not set", env)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	var suffix [6]byte
	rand.Read(suffix[:])
	prefix := strings.TrimPrefix(u.Path, "/")
	if prefix == "" {
		prefix = "idp_test"
	}
	return u, prefix + "_" + hex.EncodeToString(suffix[:])
}

// PostgresURL creates a new empty PostgreSQL database on the server named
// by IDP_TEST_POSTGRES_DSN and returns its URL; the database is dropped when
// t ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return fresh(t, PostgresEnv)
}
