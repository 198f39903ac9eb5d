package database_test

import (
	"context"
	"fmt"
	"testing"

	"idp/database/databasetest"
)

// TestStatementCache: on one connection (a transaction) the same statement
// runs again while its earlier rows are still open, and hundreds of
// distinct statements run, all with right results.
func TestStatementCache(t *testing.T) {
	db := databasetest.Open(t, databasetest.SQLiteURL(t))
	ctx := context.Background()
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
	// More distinct statements than the cache holds.
	for i := range 300 {
		var n int
		if err := tx.QueryRowContext(ctx, fmt.Sprintf("SELECT n + %d FROM nums WHERE n = ?", i), 1).Scan(&n); err != nil || n != 1+i {
			t.Fatalf("statement %d: %d, %v", i, n, err)
		}
	}
}
