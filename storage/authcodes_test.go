package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAuthorizeCodeRows: a code reads back active with its expiry, is
// invalidated exactly once (an unknown code not at all), and is not
// written for a user who is gone; a PKCE request reads back by the code's
// key and is gone once deleted, deleting again being no error. On every
// engine.
func TestAuthorizeCodeRows(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		newTestUserWithID(t, s, 7, "ada")
		exp := time.Date(2026, 12, 1, 9, 5, 0, 0, time.UTC)
		if err := s.CreateAuthorizeCode(ctx, tokenRecord("code-1", "g1", exp)); err != nil {
			t.Fatal(err)
		}
		code, err := s.AuthorizeCodeByID(ctx, "code-1")
		if err != nil || !code.Active || string(code.Request) != `{"id":"g1"}` || !code.ExpiresAt.Equal(exp) {
			t.Fatalf("AuthorizeCodeByID = %+v, %v", code, err)
		}
		if _, err := s.AuthorizeCodeByID(ctx, "code-unknown"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown code: %v, want ErrNotFound", err)
		}
		for i, want := range []bool{true, false} {
			if ok, err := s.InvalidateAuthorizeCode(ctx, "code-1"); ok != want || err != nil {
				t.Errorf("invalidation %d: %v, %v; want %v", i, ok, err, want)
			}
		}
		if code, err := s.AuthorizeCodeByID(ctx, "code-1"); err != nil || code.Active {
			t.Errorf("after the invalidation: %+v, %v", code, err)
		}
		if ok, err := s.InvalidateAuthorizeCode(ctx, "code-unknown"); ok || err != nil {
			t.Errorf("invalidating an unknown code: %v, %v", ok, err)
		}
		gone := tokenRecord("code-gone", "g2", exp)
		gone.Subject, gone.UserID = "9", 9
		if err := s.CreateAuthorizeCode(ctx, gone); !errors.Is(err, ErrTokenUserGone) {
			t.Errorf("a code for a user who is gone: %v, want ErrTokenUserGone", err)
		}

		if err := s.CreatePKCERequest(ctx, tokenRecord("code-1", "g1", exp)); err != nil {
			t.Fatal(err)
		}
		if data, err := s.PKCERequest(ctx, "code-1"); err != nil || string(data) != `{"id":"g1"}` {
			t.Errorf("PKCERequest = %s, %v", data, err)
		}
		for i := range 2 {
			if err := s.DeletePKCERequest(ctx, "code-1"); err != nil {
				t.Errorf("delete %d: %v", i, err)
			}
		}
		if _, err := s.PKCERequest(ctx, "code-1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after the delete: %v, want ErrNotFound", err)
		}
		if err := s.CreatePKCERequest(ctx, gone); !errors.Is(err, ErrTokenUserGone) {
			t.Errorf("a PKCE request for a user who is gone: %v, want ErrTokenUserGone", err)
		}
	})
}
