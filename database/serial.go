package database

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
)

// serialWrites makes the writers of one process take turns on SQLite before
// asking the database. SQLite allows one writer at a time, and a writer that
// finds the lock taken sleeps in SQLite's busy handler, 1 ms at first and
// longer after, while the lock is usually free again within a fraction of
// that: under concurrent refreshes most of the time went to sleeping. A
// queue in Go hands the turn over at once. Reads are not queued: in WAL mode
// they never wait for the writer.
//
// The rule that comes with it: inside a transaction, write through the
// transaction (Client(ctx, …)), never through the plain client, or the write
// waits for the transaction that waits for it. A wait is bounded by
// writeWait so that such a mistake fails instead of hanging.
type serialWrites struct {
	dialect.Driver
	turn chan struct{}
}

// writeWait bounds how long a writer waits for its turn.
const writeWait = 30 * time.Second

var errWriteWait = errors.New("database: waited too long for the write lock")

func newSerialWrites(d dialect.Driver) *serialWrites {
	return &serialWrites{Driver: d, turn: make(chan struct{}, 1)}
}

func (s *serialWrites) acquire(ctx context.Context) error {
	t := time.NewTimer(writeWait)
	defer t.Stop()
	select {
	case s.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errWriteWait
	}
}

func (s *serialWrites) release() { <-s.turn }

// isWrite tells a statement that changes the database (ent inserts with
// RETURNING through Query) from a read.
func isWrite(query string) bool {
	q := strings.TrimSpace(query)
	if len(q) < 6 {
		return false
	}
	switch strings.ToUpper(q[:6]) {
	case "INSERT", "UPDATE", "DELETE", "REPLAC":
		return true
	}
	return false
}

func (s *serialWrites) Exec(ctx context.Context, query string, args, v any) error {
	if !isWrite(query) {
		return s.Driver.Exec(ctx, query, args, v)
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	return s.Driver.Exec(ctx, query, args, v)
}

func (s *serialWrites) Query(ctx context.Context, query string, args, v any) error {
	if !isWrite(query) {
		return s.Driver.Query(ctx, query, args, v)
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	return s.Driver.Query(ctx, query, args, v)
}

// queryer and execer are the raw methods of ent's SQL driver and
// transaction, which ent's generated QueryContext and ExecContext look for
// (the fixed statements of oauth's Store use them).
type (
	queryer interface {
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	}
	execer interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	}
)

var (
	_ queryer = (*entsql.Driver)(nil)
	_ queryer = (*entsql.Tx)(nil)
	_ execer  = (*entsql.Driver)(nil)
	_ execer  = (*entsql.Tx)(nil)
)

// ExecContext runs a raw statement, a write in its turn.
func (s *serialWrites) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if isWrite(query) {
		if err := s.acquire(ctx); err != nil {
			return nil, err
		}
		defer s.release()
	}
	return s.Driver.(execer).ExecContext(ctx, query, args...)
}

var errQueryWrite = errors.New("database: a write through QueryContext cannot be queued; write through ExecContext or ent")

// QueryContext runs a read. A write is refused: its turn would have to last
// until the caller closes the rows.
func (s *serialWrites) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if isWrite(query) {
		return nil, errQueryWrite
	}
	return s.Driver.(queryer).QueryContext(ctx, query, args...)
}

// Tx holds the turn from begin to commit or rollback: SQLite transactions
// here begin IMMEDIATE, taking the write lock at once.
func (s *serialWrites) Tx(ctx context.Context) (dialect.Tx, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	tx, err := s.Driver.Tx(ctx)
	if err != nil {
		s.release()
		return nil, err
	}
	return &serialTx{Tx: tx, release: sync.OnceFunc(s.release)}, nil
}

type serialTx struct {
	dialect.Tx
	release func()
}

func (t *serialTx) Commit() error {
	defer t.release()
	return t.Tx.Commit()
}

// QueryContext runs inside the transaction, which already holds the turn.
func (t *serialTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.Tx.(queryer).QueryContext(ctx, query, args...)
}

// ExecContext runs inside the transaction, which already holds the turn.
func (t *serialTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.Tx.(execer).ExecContext(ctx, query, args...)
}

func (t *serialTx) Rollback() error {
	defer t.release()
	return t.Tx.Rollback()
}
