package session_test

import (
	"context"
	"errors"
	"testing"

	"idp/database"
	"idp/session"
	"idp/storage"
)

// TestDeleteUserExcept: a password change in one browser session ends the
// user's other sessions and keeps that one; other users keep theirs, and
// an empty keepID ends them all.
func TestDeleteUserExcept(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, _ := newStore(db)
		create := func(user int64) (string, string) {
			token, sess, err := s.Create(ctx, user, []string{"pwd"}, "", false)
			if err != nil {
				t.Fatal(err)
			}
			return token, sess.ID
		}
		live := func(token string) bool {
			_, err := s.Lookup(ctx, token)
			if err != nil && !errors.Is(err, session.ErrNotFound) {
				t.Fatal(err)
			}
			return err == nil
		}
		keep, keepID := create(1)
		other, _ := create(1)
		b, _ := create(2)
		if err := storage.New(db).InTx(ctx, func(ctx context.Context) error { return s.DeleteUserExcept(ctx, 1, keepID) }); err != nil {
			t.Fatal(err)
		}
		if !live(keep) || live(other) || !live(b) {
			t.Errorf("after DeleteUserExcept: kept %v, other %v, another user's %v; want true false true", live(keep), live(other), live(b))
		}
		// Another user's session id keeps nothing of user 1's.
		_, bID := create(2)
		if err := s.DeleteUserExcept(ctx, 1, bID); err != nil {
			t.Fatal(err)
		}
		if live(keep) {
			t.Error("user 1's session survived DeleteUserExcept with another user's id")
		}
		if err := s.DeleteUserExcept(ctx, 2, ""); err != nil {
			t.Fatal(err)
		}
		if live(b) {
			t.Error("DeleteUserExcept without keepID left a session")
		}
	})
}
