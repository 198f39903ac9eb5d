package storage

import (
	"context"
	"errors"
	"fmt"
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

// TestRetry: a write that lost a race is run again, up to the attempts
// given; any other outcome, or an ended context, stops it.
func TestRetry(t *testing.T) {
	lost := fmt.Errorf("%w: Error 1213 (40001): Deadlock found when trying to get lock", ErrRetryable)
	other := errors.New("disk full")
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		results   []error // what fn returns on each call; nil past the end
		attempts  int
		wantCalls int
		want      error
	}{
		{"first time", context.Background(), nil, 4, 1, nil},
		{"after lost races", context.Background(), []error{lost, lost, lost}, 4, 4, nil},
		{"every attempt lost", context.Background(), []error{lost, lost, lost, lost, lost}, 4, 4, ErrRetryable},
		{"another error is not run again", context.Background(), []error{other}, 4, 1, other},
		{"another error after a lost race", context.Background(), []error{lost, other}, 4, 2, other},
		{"context ended", ended, []error{lost, lost}, 4, 1, ErrRetryable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Retry(tc.ctx, tc.attempts, func() error {
				calls++
				if calls <= len(tc.results) {
					return tc.results[calls-1]
				}
				return nil
			})
			if calls != tc.wantCalls {
				t.Errorf("fn ran %d times, want %d", calls, tc.wantCalls)
			}
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Retry = %v, want %v", err, tc.want)
			}
		})
	}
}
