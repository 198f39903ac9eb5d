package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTokenTx: what is written with the context BeginTokenTx returns is
// seen by others once committed, and never when rolled back; a
// transaction begun inside one ctx already carries joins it, and its
// commit and rollback leave it to the outer caller. On every engine.
func TestTokenTx(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		newTestUserWithID(t, s, 7, "ada")
		exp := time.Now().Add(time.Hour)
		stored := func(id string) bool {
			t.Helper()
			_, err := s.AccessTokenRequest(ctx, id)
			if err != nil && !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
			return err == nil
		}
		write := func(txCtx context.Context, id string) {
			t.Helper()
			if err := s.CreateAccessToken(txCtx, tokenRecord(id, "g-"+id, exp)); err != nil {
				t.Fatal(err)
			}
		}

		txCtx, err := s.BeginTokenTx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		write(txCtx, "committed")
		if err := s.CommitTokenTx(txCtx); err != nil {
			t.Fatal(err)
		}
		txCtx, err = s.BeginTokenTx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		write(txCtx, "rolled-back")
		if err := s.RollbackTokenTx(txCtx); err != nil {
			t.Fatal(err)
		}
		if !stored("committed") || stored("rolled-back") {
			t.Errorf("committed stored %v, rolled back stored %v; want true, false", stored("committed"), stored("rolled-back"))
		}

		// Joined: the inner commit and rollback are the outer caller's.
		err = s.InTx(ctx, func(outer context.Context) error {
			inner, err := s.BeginTokenTx(outer)
			if err != nil {
				return err
			}
			write(inner, "joined")
			if err := s.RollbackTokenTx(inner); err != nil {
				return err
			}
			return s.CommitTokenTx(inner)
		})
		if err != nil {
			t.Fatal(err)
		}
		if !stored("joined") {
			t.Error("a joined transaction's rollback undid the outer one's write")
		}
		if err := s.CommitTokenTx(ctx); err == nil {
			t.Error("a commit without a transaction succeeded")
		}
	})
}
