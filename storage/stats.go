package storage

import (
	"context"
	"database/sql"
	"fmt"
	"math"

	"entgo.io/ent/dialect"
)

// GenderCounts is the number of users of each gender.
type GenderCounts struct {
	Female, Male, Unspecified int64
}

// UserStats streams every user id to fn, ascending, at most batch at a
// time, and returns the number of users of each gender, counted over
// exactly the ids streamed. It reads in one read-only transaction of its
// own (it does not join one ctx carries): one snapshot for the counts and
// every batch, so that they agree even while users sign up or are deleted.
//
// Memory stays flat however many users there are: the ids are read by
// keyset pagination (WHERE id > last ORDER BY id LIMIT batch), which costs
// the same for the last page as for the first, where OFFSET would rescan
// every earlier row, into one slice reused for every batch. The counts come
// first, from one aggregate query the index on gender answers without
// reading the rows.
//
// fn is called once per non-empty batch, after the counts are known and
// after the batch has been read completely and its result set closed, so
// that a slow fn (a slow client) stalls the transaction between queries but
// never a result set half-sent by the database server. ids is only valid
// until fn returns. An error before the first call (the transaction, the
// counts, the first batch) is returned without fn having been called; an
// error of fn stops the stream and is returned as it is.
//
// The snapshot is held until the last batch has been given to fn, which
// delays InnoDB purge, PostgreSQL's vacuum or SQLite checkpoints, so the
// caller should bound a slow fn with a deadline on ctx.
func (s *Store) UserStats(ctx context.Context, batch int, fn func(ids []int64) error) (GenderCounts, error) {
	if batch <= 0 {
		return GenderCounts{}, fmt.Errorf("storage: user stats: batch size %d is not positive", batch)
	}
	tx, err := s.sql.BeginTx(ctx, statsTxOptions(s.dialect))
	if err != nil {
		return GenderCounts{}, fmt.Errorf("storage: user stats: begin: %w", wrap(err))
	}
	// The transaction only reads: rolling back just ends the snapshot.
	defer tx.Rollback()

	counts, err := statsCountGenders(ctx, tx)
	if err != nil {
		return GenderCounts{}, err
	}
	// Prepared once, the id query is parsed once per call rather than once
	// per batch.
	page, err := tx.PrepareContext(ctx, s.rebind("SELECT id FROM users WHERE id > ? ORDER BY id LIMIT ?"))
	if err != nil {
		return GenderCounts{}, fmt.Errorf("storage: user stats: prepare: %w", wrap(err))
	}
	defer page.Close()

	ids := make([]int64, 0, batch)
	// Ids are positive, but starting below every int64 means a row that
	// somehow is not is still listed, as it is counted.
	after := int64(math.MinInt64)
	for {
		ids, err = statsReadIDs(ctx, page, after, batch, ids[:0])
		if err != nil {
			return GenderCounts{}, err
		}
		if len(ids) > 0 {
			if err := fn(ids); err != nil {
				return GenderCounts{}, err
			}
		}
		// A short page is the last: it saves the query that would return none.
		if len(ids) < batch {
			return counts, nil
		}
		after = ids[len(ids)-1]
	}
}

// statsTxOptions asks for a transaction that reads one snapshot and takes no
// write lock. MySQL's default isolation is REPEATABLE READ already, but a
// server configured otherwise would let the counts and the ids disagree, so
// it is stated; PostgreSQL's default, READ COMMITTED, takes a snapshot per
// statement, and REPEATABLE READ one for the transaction. SQLite has one
// isolation level; modernc ignores the option and begins read-only
// transactions DEFERRED (not IMMEDIATE like idp's writers), which in WAL
// mode reads a snapshot without blocking writers.
func statsTxOptions(dia string) *sql.TxOptions {
	if dia == dialect.MySQL || dia == dialect.Postgres {
		return &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	return &sql.TxOptions{ReadOnly: true}
}

// statsCountGenders counts the users of each gender in one query, which the
// index on gender answers without reading the rows.
func statsCountGenders(ctx context.Context, tx *sql.Tx) (GenderCounts, error) {
	var c GenderCounts
	rows, err := tx.QueryContext(ctx, "SELECT gender, COUNT(*) FROM users GROUP BY gender")
	if err != nil {
		return c, fmt.Errorf("storage: user stats: count: %w", wrap(err))
	}
	defer rows.Close()
	for rows.Next() {
		var (
			gender string
			n      int64
		)
		if err := rows.Scan(&gender, &n); err != nil {
			return c, fmt.Errorf("storage: user stats: count: %w", wrap(err))
		}
		switch Gender(gender) {
		case GenderFemale:
			c.Female = n
		case GenderMale:
			c.Male = n
		case GenderUnspecified:
			c.Unspecified = n
		default:
			// Dropping the rows would make the counts disagree with the
			// list of ids, which the caller is promised they never do.
			return c, fmt.Errorf("storage: user stats: count: %d users have gender %q, which has no count", n, gender)
		}
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("storage: user stats: count: %w", wrap(err))
	}
	return c, nil
}

// statsReadIDs appends to ids the next at most limit user ids above after, in
// ascending order, and closes the result set before returning, so that the
// connection is idle while the caller's fn runs.
func statsReadIDs(ctx context.Context, page *sql.Stmt, after int64, limit int, ids []int64) ([]int64, error) {
	rows, err := page.QueryContext(ctx, after, limit)
	if err != nil {
		return ids, fmt.Errorf("storage: user stats: list ids: %w", wrap(err))
	}
	defer rows.Close()
	var id int64 // outside the loop: Scan's pointer would move it to the heap
	for rows.Next() {
		if err := rows.Scan(&id); err != nil {
			return ids, fmt.Errorf("storage: user stats: list ids: %w", wrap(err))
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return ids, fmt.Errorf("storage: user stats: list ids: %w", wrap(err))
	}
	if err := rows.Close(); err != nil {
		return ids, fmt.Errorf("storage: user stats: list ids: %w", wrap(err))
	}
	return ids, nil
}
