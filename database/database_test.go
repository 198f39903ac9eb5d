package database_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"idp/database"
	"idp/database/databasetest"
	"idp/ent"
	"idp/ent/user"
)

func TestRoundTrip(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		changed := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)
		u, err := db.Ent.User.Create().SetID(42).SetUsername("alice").SetEmail("alice@example.com").
			SetPasswordHash("x").SetFirstName("Alice").SetLastName("Liddell").
			SetPasswordChangedAt(changed).Save(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.Ent.User.Query().Where(user.Username("alice")).Only(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != u.ID || got.Gender != user.GenderUnspecified {
			t.Errorf("got %+v", got)
		}
		if !got.PasswordChangedAt.Equal(changed) {
			t.Errorf("password_changed_at = %v, want %v (sub-second precision kept)", got.PasswordChangedAt, changed)
		}
		_, err = db.Ent.User.Create().SetID(43).SetUsername("alice").SetEmail("other@example.com").
			SetPasswordHash("x").SetFirstName("A").SetLastName("B").Save(ctx)
		if !ent.IsConstraintError(err) {
			t.Errorf("duplicate username: err = %v, want a constraint error", err)
		}
		if err := db.Migrate(ctx); err != nil {
			t.Errorf("second migrate: %v", err)
		}
	})
}

func TestOpenRejectsBadURLs(t *testing.T) {
	for _, raw := range []string{
		"", "ftp://x/y", "mysql://root@127.0.0.1:1/", "sqlite:",
		"postgres://postgres@127.0.0.1:1/", "postgres://postgres@127.0.0.1:5432/idp?connect_timeout=x",
		"postgres://postgres@127.0.0.1:1/idp?connect_timeout=1", "postgresql://postgres@127.0.0.1:1/idp?connect_timeout=1",
	} {
		if db, err := database.Open(context.Background(), raw); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", raw)
		}
	}
}

func TestRedact(t *testing.T) {
	for raw, want := range map[string]string{
		"mysql://idp:s3cret@db:3306/idp":                                               "mysql://idp:xxxxx@db:3306/idp",
		"postgres://idp:s3cret@db:5432/idp?sslmode=verify":                             "postgres://idp:xxxxx@db:5432/idp?sslmode=verify",
		"postgres://idp@db:5432/idp?password=s3cret":                                   "postgres://idp@db:5432/idp?password=xxxxx",
		"postgres://idp@db/idp?sslmode=verify-full&sslpassword=s3cret&password=s3cret": "postgres://idp@db/idp?password=xxxxx&sslmode=verify-full&sslpassword=xxxxx",
		"postgres://idp:s3cret@db:x/idp?password=s3cret":                               "…@db:x/idp?…",
	} {
		if got := database.Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestOpenErrorHidesPassword(t *testing.T) {
	for _, raw := range []string{
		"postgres://idp:s3cret@127.0.0.1:1/idp?connect_timeout=1",
		"postgres://idp:s3cret@127.0.0.1:5432/idp?connect_timeout=x",
		"postgres://idp@127.0.0.1:1/idp?connect_timeout=1&password=s3cret",
		"postgres://idp@127.0.0.1:5432/idp?connect_timeout=x&password=s3cret",
	} {
		db, err := database.Open(context.Background(), raw)
		if err == nil {
			db.Close()
			t.Fatalf("Open(%q) succeeded", raw)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q): error %q shows the password", raw, err)
		}
	}
}

func TestRebind(t *testing.T) {
	for _, tc := range []struct{ dialect, in, want string }{
		{dialect.MySQL, "SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = ? AND c = ?"},
		{dialect.SQLite, "SELECT a FROM t WHERE b = ?", "SELECT a FROM t WHERE b = ?"},
		{dialect.Postgres, "SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = $1 AND c = $2"},
		{dialect.Postgres, "INSERT INTO t VALUES (?,?,?)", "INSERT INTO t VALUES ($1,$2,$3)"},
		{dialect.Postgres, "SELECT '?', \"a?\" FROM t WHERE b = ? AND c = 'it''s ?'", "SELECT '?', \"a?\" FROM t WHERE b = $1 AND c = 'it''s ?'"},
		{dialect.Postgres, "SELECT 1", "SELECT 1"},
	} {
		if got := database.Rebind(tc.dialect, tc.in); got != tc.want {
			t.Errorf("Rebind(%s, %q) = %q, want %q", tc.dialect, tc.in, got, tc.want)
		}
	}
}

// TestRawStatements runs the hand-written SQL idp relies on, through the
// dialect helpers, on every engine.
func TestRawStatements(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		if _, err := db.Ent.User.Create().SetID(7).SetUsername("bob").SetEmail("bob@example.com").
			SetPasswordHash("x").SetFirstName("Bob").SetLastName("B").Save(ctx); err != nil {
			t.Fatal(err)
		}
		q := database.Rebind(db.Dialect, "SELECT username FROM users WHERE id = "+database.BigIntCast(db.Dialect, "?")+" AND email = ?")
		var name string
		if err := db.SQL.QueryRowContext(ctx, q, "7", "bob@example.com").Scan(&name); err != nil || name != "bob" {
			t.Errorf("%s: name %q, err %v", q, name, err)
		}
		if got := db.Ent.Dialect(); got != db.Dialect {
			t.Errorf("ent client dialect %q, want %q", got, db.Dialect)
		}
	})
}

func TestIsRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "40001"}, true},
		{fmt.Errorf("commit: %w", &pgconn.PgError{Code: "40P01"}), true},
		{&pgconn.PgError{Code: "23505"}, false},
		{&mysql.MySQLError{Number: 1213}, true},
		{&mysql.MySQLError{Number: 1062}, false},
		{errors.New("40001"), false},
	} {
		if got := database.IsRetryable(tc.err); got != tc.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestMigrateDropsRetiredTables: a database from before the one-row-per-login
// refresh chains loses its refresh_tokens table (and the user data in it)
// at the next migration, which still succeeds when the table is gone.
func TestMigrateDropsRetiredTables(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		if _, err := db.SQL.ExecContext(ctx, "CREATE TABLE refresh_tokens (id VARCHAR(64) PRIMARY KEY, subject VARCHAR(128))"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SQL.ExecContext(ctx, "INSERT INTO refresh_tokens (id, subject) VALUES ('a', '42')"); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := db.Migrate(ctx); err != nil {
				t.Fatalf("migrate: %v", err)
			}
		}
		var n int
		err := db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM refresh_tokens").Scan(&n)
		if err == nil {
			t.Errorf("refresh_tokens still holds %d rows after the migration, want the table dropped", n)
		}
	})
}
