package profile

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math"
	"strconv"

	"entgo.io/ent/dialect"

	"idp/database"
)

// WriteStats writes the statistics document of GET /v1/users/stats for every
// user to w:
//
//	{"user_ids":[1,2,3,4],"count_female":3,"count_male":1,"count_unspecified":0}
//
// followed by a newline, with the ids ascending.
//
// Memory stays flat however many users there are: the ids are read at most
// batch at a time by keyset pagination (WHERE id > last ORDER BY id LIMIT batch),
// which costs the same for the last page as for the first, where OFFSET would
// rescan every earlier row. Each batch is read completely before it is written
// and flushed to w, so a slow client stalls the transaction between queries
// but never a result set half-sent by the database server.
//
// The counts come from one aggregate query, run in the same read-only
// transaction as the id queries, so they are over exactly the rows listed
// even while users sign up or are deleted: on MySQL the transaction is
// REPEATABLE READ, READ ONLY, a consistent snapshot taken by its first query;
// on SQLite a read-only transaction begins DEFERRED (not IMMEDIATE like idp's
// writers), which in WAL mode reads a snapshot without blocking writers. The
// snapshot is held for as long as the client takes to read the document,
// which delays InnoDB purge or SQLite checkpoints, so the caller should bound
// the request with a deadline on ctx and a write timeout on the connection.
//
// Nothing reaches w before the transaction has begun, the counts are known and
// the first batch has been read: an error up to that point is returned with w
// untouched, and the caller can still answer with an error status. Later, a
// failing query or a failing w also returns an error, but w then holds a
// truncated document after a success status; the caller's only honest move is
// to abort the connection, so that the client sees a failed transfer instead
// of mistaking a prefix for the answer.
func WriteStats(ctx context.Context, db *database.DB, w io.Writer, batch int) error {
	if batch <= 0 {
		return fmt.Errorf("profile: stats: batch size %d is not positive", batch)
	}
	tx, err := db.SQL.BeginTx(ctx, statsTxOptions(db.Dialect))
	if err != nil {
		return fmt.Errorf("profile: stats: begin: %w", err)
	}
	// The transaction only reads: rolling back just ends the snapshot.
	defer tx.Rollback()

	counts, err := statsCountGenders(ctx, tx)
	if err != nil {
		return err
	}
	// Prepared once, the id query is parsed once per request rather than once
	// per batch.
	page, err := tx.PrepareContext(ctx, database.Rebind(db.Dialect, "SELECT id FROM users WHERE id > ? ORDER BY id LIMIT ?"))
	if err != nil {
		return fmt.Errorf("profile: stats: prepare: %w", err)
	}
	defer page.Close()

	bw := bufio.NewWriterSize(w, 32<<10)
	ids := make([]int64, 0, batch)
	// num holds one encoded id at a time, so encoding allocates nothing per id.
	num := make([]byte, 0, 24)
	// Ids are positive, but starting below every int64 means a row that
	// somehow is not is still listed, as it is counted.
	after := int64(math.MinInt64)
	// Each id is encoded after a comma; skip is 1 until the first id is
	// written, to leave that comma out.
	skip := 1
	bw.WriteString(`{"user_ids":[`)
	for {
		ids, err = statsReadIDs(ctx, page, after, batch, ids[:0])
		if err != nil {
			return err
		}
		for _, id := range ids {
			num = strconv.AppendInt(append(num[:0], ','), id, 10)
			_, err := bw.Write(num[skip:])
			skip = 0
			if err != nil {
				return fmt.Errorf("profile: stats: write: %w", err)
			}
		}
		// A short page is the last: it saves the query that would return none.
		if len(ids) < batch {
			break
		}
		after = ids[len(ids)-1]
		// Flushing per batch sends the client each page as soon as it is read,
		// rather than holding it in the buffer during the next query.
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("profile: stats: write: %w", err)
		}
	}
	num = append(num[:0], `],"count_female":`...)
	num = strconv.AppendInt(num, counts.female, 10)
	bw.Write(num)
	num = append(num[:0], `,"count_male":`...)
	num = strconv.AppendInt(num, counts.male, 10)
	bw.Write(num)
	num = append(num[:0], `,"count_unspecified":`...)
	num = strconv.AppendInt(num, counts.unspecified, 10)
	bw.Write(num)
	bw.WriteString("}\n")
	// bufio.Writer keeps its first error, so Flush reports any failure of the
	// unchecked writes above.
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("profile: stats: write: %w", err)
	}
	return nil
}

// statsTxOptions asks for a transaction that reads one snapshot and takes no
// write lock. MySQL's default isolation is REPEATABLE READ already, but a
// server configured otherwise would let the counts and the ids disagree, so
// it is stated; PostgreSQL's default, READ COMMITTED, takes a snapshot per
// statement, and REPEATABLE READ one for the transaction. SQLite has one
// isolation level; modernc ignores the option and begins read-only
// transactions DEFERRED.
func statsTxOptions(dia string) *sql.TxOptions {
	if dia == dialect.MySQL || dia == dialect.Postgres {
		return &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	return &sql.TxOptions{ReadOnly: true}
}

// statsCounts is the number of users of each gender.
type statsCounts struct {
	female, male, unspecified int64
}

// statsCountGenders counts the users of each gender in one query, which the
// index on gender answers without reading the rows.
func statsCountGenders(ctx context.Context, tx *sql.Tx) (statsCounts, error) {
	var c statsCounts
	rows, err := tx.QueryContext(ctx, "SELECT gender, COUNT(*) FROM users GROUP BY gender")
	if err != nil {
		return c, fmt.Errorf("profile: stats: count: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			gender string
			n      int64
		)
		if err := rows.Scan(&gender, &n); err != nil {
			return c, fmt.Errorf("profile: stats: count: %w", err)
		}
		switch gender {
		case "female":
			c.female = n
		case "male":
			c.male = n
		case "unspecified":
			c.unspecified = n
		default:
			// Dropping the rows would make the counts disagree with the
			// list of ids, which the document promises they never do.
			return c, fmt.Errorf("profile: stats: count: %d users have gender %q, which the document has no count for", n, gender)
		}
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("profile: stats: count: %w", err)
	}
	return c, nil
}

// statsReadIDs appends to ids the next at most limit user ids above after, in
// ascending order, and closes the result set before returning, so that the
// connection is idle while the caller writes them out.
func statsReadIDs(ctx context.Context, page *sql.Stmt, after int64, limit int, ids []int64) ([]int64, error) {
	rows, err := page.QueryContext(ctx, after, limit)
	if err != nil {
		return ids, fmt.Errorf("profile: stats: list ids: %w", err)
	}
	defer rows.Close()
	var id int64 // outside the loop: Scan's pointer would move it to the heap
	for rows.Next() {
		if err := rows.Scan(&id); err != nil {
			return ids, fmt.Errorf("profile: stats: list ids: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return ids, fmt.Errorf("profile: stats: list ids: %w", err)
	}
	if err := rows.Close(); err != nil {
		return ids, fmt.Errorf("profile: stats: list ids: %w", err)
	}
	return ids, nil
}
