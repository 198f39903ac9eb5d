package storage

import (
	"errors"
	"testing"

	"idp/database"
	"idp/database/databasetest"
)

// each runs fn once per configured engine with a fresh, migrated store:
// the storage suite every engine passes.
func each(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Helper()
	databasetest.Each(t, func(t *testing.T, db *database.DB) { fn(t, New(db)) })
}

func TestConflictErrorIsErrConflict(t *testing.T) {
	err := error(&ConflictError{Field: "email"})
	if !errors.Is(err, ErrConflict) {
		t.Fatal("a *ConflictError does not match ErrConflict")
	}
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Field != "email" {
		t.Fatalf("errors.As gave %v", ce)
	}
}
