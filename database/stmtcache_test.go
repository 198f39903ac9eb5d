package database_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
)

// TestStatementCache: on one connection (a transaction) the same statement
// runs again while its earlier rows are still open, and hundreds of
// distinct statements run, all with right results.
func TestStatementCache(t *testing.T) {
	db := databasetest.Open(t, databasetest.SQLiteURL(t))
	ctx := context.Background()
	testManyStatements(t, db, nil)
	if _, err := db.SQL.Exec("CREATE TABLE nums (n INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		if _, err := db.SQL.Exec("INSERT INTO nums (n) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const q = "SELECT n FROM nums WHERE n > ? ORDER BY n"
	outer, err := tx.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for outer.Next() {
		var n int
		outer.Scan(&n)
		// The same statement, nested: it must not disturb the outer rows.
		var count int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM ("+q+")", n).Scan(&count); err != nil {
			t.Fatal(err)
		}
		inner, err := tx.QueryContext(ctx, q, n)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for inner.Next() {
			got++
		}
		inner.Close()
		if got != 10-n || count != 10-n {
			t.Errorf("after %d: %d and %d rows, want %d", n, got, count, 10-n)
		}
		sum += n
	}
	if err := outer.Err(); err != nil || sum != 55 {
		t.Fatalf("outer rows: sum %d, %v", sum, err)
	}
	outer.Close()
}

// testManyStatements runs more distinct statements than the cache holds on
// one connection (conn, or one of db's), and one that cannot be prepared,
// which must fail with the database's error and leave the connection
// working.
func testManyStatements(t *testing.T, db *database.DB, conn *sql.Conn) {
	ctx := context.Background()
	if conn == nil {
		var err error
		if conn, err = db.SQL.Conn(ctx); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
	}
	for i := range 300 {
		var n int
		if err := conn.QueryRowContext(ctx, fmt.Sprintf("SELECT ? + %d", i), 1).Scan(&n); err != nil || n != 1+i {
			t.Fatalf("statement %d: %d, %v", i, n, err)
		}
	}
	if _, err := conn.ExecContext(ctx, "SELEC ?", 1); err == nil {
		t.Error("a statement with a syntax error ran")
	}
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT ? + 1", 1).Scan(&n); err != nil || n != 2 {
		t.Errorf("after the failed statement: %d, %v", n, err)
	}
}

// TestMySQLPreparedStatements: on MySQL a repeated statement is prepared
// once per connection and then only executed, in the binary protocol, even
// after hundreds of others filled the cache; without the cache every query
// would arrive as interpolated text.
func TestMySQLPreparedStatements(t *testing.T) {
	// Engines, not MySQLURL: in CI a missing MySQL fails instead of skipping.
	for _, e := range databasetest.Engines(t) {
		if e.Name == "mysql" {
			testMySQLPreparedStatements(t, databasetest.Open(t, e.NewURL(t)))
			return
		}
	}
	t.Skipf("%s not set", databasetest.MySQLEnv)
}

func testMySQLPreparedStatements(t *testing.T, db *database.DB) {
	ctx := context.Background()
	conn, err := db.SQL.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	testManyStatements(t, db, conn)
	// One statement reads both counters: it is cached too, prepared at
	// its first use, before the baseline is read.
	status := func() (prepared, executed int) {
		rows, err := conn.QueryContext(ctx, "SHOW SESSION STATUS WHERE Variable_name IN ('Com_stmt_prepare', 'Com_stmt_execute')")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var key string
			var v int
			if err := rows.Scan(&key, &v); err != nil {
				t.Fatal(err)
			}
			if key == "Com_stmt_prepare" {
				prepared = v
			} else {
				executed = v
			}
		}
		return prepared, executed
	}
	prepared, executed := status()
	for i := range 20 {
		var n int
		if err := conn.QueryRowContext(ctx, "SELECT ? * 2", i).Scan(&n); err != nil || n != 2*i {
			t.Fatalf("%d: %d, %v", i, n, err)
		}
	}
	prepared2, executed2 := status()
	if d := prepared2 - prepared; d != 1 {
		t.Errorf("prepared %d times, want once", d)
	}
	if d := executed2 - executed; d < 20 {
		t.Errorf("executed %d prepared statements, want 20", d)
	}
}

// TestRawQueriesOnSQLite: ent's raw QueryContext works through the SQLite
// writer queue, in and out of a transaction, and refuses a write, whose
// turn would have to outlive the call.
func TestRawQueriesOnSQLite(t *testing.T) {
	db := databasetest.Open(t, databasetest.SQLiteURL(t))
	ctx := context.Background()
	read := func(ctx context.Context, c interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	}) {
		t.Helper()
		rows, err := c.QueryContext(ctx, "SELECT ? + 1", 41)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var n int
		if !rows.Next() || rows.Scan(&n) != nil || n != 42 {
			t.Errorf("read: %d", n)
		}
	}
	read(ctx, db.Ent)
	err := database.InTx(ctx, db.Ent, func(ctx context.Context) error {
		read(ctx, database.Client(ctx, db.Ent))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL.Exec("CREATE TABLE marks (n INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if rows, err := db.Ent.QueryContext(ctx, "INSERT INTO marks (n) VALUES (1) RETURNING n"); err == nil {
		rows.Close()
		t.Error("a write through QueryContext was run outside the writer queue")
	}
	var n int
	if err := db.SQL.QueryRow("SELECT COUNT(*) FROM marks").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows written, %v", n, err)
	}

	// Raw writes through ExecContext take their turn in the queue: one
	// through the plain client waits while a transaction holds the turn,
	// until its deadline (in SQLite's busy handler it would ignore the
	// deadline for the 10 s busy timeout); one through the transaction
	// runs in it.
	err = database.InTx(ctx, db.Ent, func(txCtx context.Context) error {
		waitCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := db.Ent.ExecContext(waitCtx, "INSERT INTO marks (n) VALUES (2)")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("a raw write beside a transaction: %v after %v, want it to wait in the queue until its deadline", err, time.Since(start))
		}
		_, err = database.Client(txCtx, db.Ent).ExecContext(txCtx, "INSERT INTO marks (n) VALUES (3)")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Ent.ExecContext(ctx, "INSERT INTO marks (n) VALUES (4)"); err != nil {
		t.Fatal(err)
	}
	if err := db.SQL.QueryRow("SELECT COALESCE(SUM(n), 0) FROM marks").Scan(&n); err != nil || n != 7 {
		t.Errorf("raw writes: sum %d, %v; want 3 + 4", n, err)
	}
}

// TestPostgresPreparedStatements: on PostgreSQL pgx prepares a repeated
// statement once per connection and then only executes it, the job the
// cache of stmtcache.go does for the other engines.
func TestPostgresPreparedStatements(t *testing.T) {
	for _, e := range databasetest.Engines(t) {
		if e.Name != "postgres" {
			continue
		}
		db := databasetest.Open(t, e.NewURL(t))
		ctx := context.Background()
		conn, err := db.SQL.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		const q = "SELECT $1::int * 2"
		for i := range 20 {
			var n int
			if err := conn.QueryRowContext(ctx, q, i).Scan(&n); err != nil || n != 2*i {
				t.Fatalf("%d: %d, %v", i, n, err)
			}
		}
		var prepared int
		if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", q).Scan(&prepared); err != nil {
			t.Fatal(err)
		}
		if prepared != 1 {
			t.Errorf("%d prepared statements for the query on its connection, want 1", prepared)
		}
		return
	}
	t.Skipf("%s not set", databasetest.PostgresEnv)
}
