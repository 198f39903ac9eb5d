// Package storage owns every query idp makes: the ent queries and the few
// raw statements, the differences between SQLite, MySQL and PostgreSQL, and
// the translation of driver errors into the storage errors below. The rest
// of idp depends on small interfaces, declared where they are used, over
// the domain types defined here, never on ent's types.
//
// Each file holds one domain (users, tokens, sessions, …) and its tests run
// on every engine that databasetest configures.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"entgo.io/ent/dialect/sql/sqlgraph"

	"idp/database"
	"idp/ent"
)

// The storage errors. Callers test them with errors.Is; a *ConflictError
// says which field.
var (
	ErrNotFound  = errors.New("storage: not found")
	ErrConflict  = errors.New("storage: conflict")
	ErrRetryable = errors.New("storage: retryable")
)

// ConflictError is returned (wrapping ErrConflict) when a unique value
// belongs to another row; Field names it ("username", "email"), or is empty
// for a unique value no caller reports.
type ConflictError struct{ Field string }

func (e *ConflictError) Error() string { return "storage: " + e.Field + " is taken" }

// Is makes a *ConflictError match ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Store is idp's storage on one database.
type Store struct {
	db      *ent.Client
	sql     *sql.DB
	dialect string
}

// New returns the storage on db.
func New(db *database.DB) *Store {
	return &Store{db: db.Ent, sql: db.SQL, dialect: db.Dialect}
}

// client joins the transaction ctx carries, if any.
func (s *Store) client(ctx context.Context) *ent.Client { return database.Client(ctx, s.db) }

// rebind writes a raw statement's ? placeholders as the dialect wants them.
func (s *Store) rebind(query string) string { return database.Rebind(s.dialect, query) }

// InTx runs fn in a transaction carried by its context, committing when fn
// returns nil; every Store method called with that context joins it. When
// ctx already carries a transaction, fn joins it and the outer caller
// commits.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	return wrap(database.InTx(ctx, s.db, fn))
}

// Retry runs fn, and again while it fails with ErrRetryable, at most
// attempts times in all and not once ctx has ended; it returns fn's last
// error. It is for a write that lost a race to another transaction (a
// MySQL deadlock, a PostgreSQL serialization failure, a busy SQLite): the
// database rolled it back whole, so running it again is safe and then sees
// the winner's write.
func Retry(ctx context.Context, attempts int, fn func() error) error {
	err := fn()
	for attempt := 1; attempt < attempts && errors.Is(err, ErrRetryable) && ctx.Err() == nil; attempt++ {
		err = fn()
	}
	return err
}

// wrap translates a driver or ent error into the storage errors, keeping
// the original in the chain for logs. Errors already translated, and nil,
// pass through.
func wrap(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict), errors.Is(err, ErrRetryable):
		return err
	case ent.IsNotFound(err), errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case sqlgraph.IsUniqueConstraintError(err):
		// ent's constraint errors and the drivers' own, from the raw
		// statements, alike; a foreign key or NOT NULL failure is a bug,
		// not a conflict, and passes through.
		return fmt.Errorf("%w: %w", &ConflictError{Field: conflictField(err)}, err)
	case database.IsRetryable(err):
		return fmt.Errorf("%w: %w", ErrRetryable, err)
	}
	return err
}

// conflictField names the column of a unique-index violation from the
// driver's message, the only place the engines say it: MySQL "Duplicate
// entry … for key 'user_email'", PostgreSQL "… unique constraint
// \"user_email\"", SQLite "UNIQUE constraint failed: users.email".
func conflictField(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "for key"); i >= 0 {
		msg = msg[i:]
	}
	// The unique columns whose conflicts callers report.
	for _, f := range [...]string{"email", "username"} {
		if strings.Contains(msg, f) {
			return f
		}
	}
	return ""
}
