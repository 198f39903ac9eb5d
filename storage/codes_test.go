package storage

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func TestPutCodeReplaces(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u := newTestUser(t, s, "ada")
		now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
		put := func(p CodePurpose, hash, email string) {
			t.Helper()
			if err := s.PutCode(ctx, Code{UserID: u.ID, Purpose: p, Hash: []byte(hash), ExpiresAt: now.Add(time.Hour), CreatedAt: now, NewEmail: email}); err != nil {
				t.Fatal(err)
			}
		}
		put(CodeEmailChange, "one", "first@example.com")
		if err := s.CountCodeAttempt(ctx, u.ID, CodeEmailChange); err != nil {
			t.Fatal(err)
		}
		c, err := s.CodeOf(ctx, u.ID, CodeEmailChange)
		if err != nil || c.Attempts != 1 || c.NewEmail != "first@example.com" || !bytes.Equal(c.Hash, []byte("one")) ||
			!c.ExpiresAt.Equal(now.Add(time.Hour)) || !c.CreatedAt.Equal(now) || c.UserID != u.ID || c.Purpose != CodeEmailChange {
			t.Fatalf("stored %+v (%v)", c, err)
		}
		// The newest code of a purpose replaces the row, its tries and its
		// address.
		put(CodeEmailChange, "two", "second@example.com")
		if c, err := s.CodeOf(ctx, u.ID, CodeEmailChange); err != nil || c.Attempts != 0 || c.NewEmail != "second@example.com" || !bytes.Equal(c.Hash, []byte("two")) {
			t.Fatalf("replaced by %+v (%v)", c, err)
		}
		// Another purpose is a row of its own.
		put(CodeReset, "reset", "")
		if c, err := s.CodeOf(ctx, u.ID, CodeReset); err != nil || c.NewEmail != "" || !bytes.Equal(c.Hash, []byte("reset")) {
			t.Fatalf("reset code %+v (%v)", c, err)
		}
		if c, _ := s.CodeOf(ctx, u.ID, CodeEmailChange); !bytes.Equal(c.Hash, []byte("two")) {
			t.Fatal("a reset code replaced the email change code")
		}
		if _, err := s.CodeOf(ctx, u.ID, CodeVerify); !errors.Is(err, ErrNotFound) {
			t.Errorf("no verify code: %v", err)
		}
		codes, err := s.CodesOf(ctx, u.ID, CodeVerify, CodeEmailChange)
		if err != nil || len(codes) != 1 || codes[0].Purpose != CodeEmailChange {
			t.Errorf("CodesOf(verify, email change) = %+v %v", codes, err)
		}
	})
}

// TestLiveCode: a code is live before it expires and while it has tries
// left, and only a live code with the right hash is consumed, once.
func TestLiveCode(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u := newTestUser(t, s, "ada")
		now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
		const maxTries = 2
		issue := func() {
			t.Helper()
			if err := s.PutCode(ctx, Code{UserID: u.ID, Purpose: CodeReset, Hash: []byte("h"), ExpiresAt: now.Add(time.Hour), CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		live := func(at time.Time) bool {
			t.Helper()
			ok, err := s.HasLiveCode(ctx, u.ID, CodeReset, at, maxTries)
			if err != nil {
				t.Fatal(err)
			}
			c, err := s.LiveCodeOf(ctx, u.ID, CodeReset, at, maxTries)
			if ok != (err == nil) || !ok && !errors.Is(err, ErrNotFound) {
				t.Fatalf("HasLiveCode %v, LiveCodeOf %v", ok, err)
			}
			if ok && !c.Live(at, maxTries) {
				t.Fatal("LiveCodeOf returned a code that is not Live")
			}
			return ok
		}
		issue()
		if !live(now) || live(now.Add(time.Hour)) {
			t.Fatal("a fresh code is not live before its expiry, or is after it")
		}
		if ok, err := s.ConsumeCode(ctx, u.ID, CodeReset, []byte("h"), now.Add(time.Hour), maxTries); err != nil || ok {
			t.Fatalf("consumed an expired code: %v %v", ok, err)
		}
		if ok, err := s.ConsumeCode(ctx, u.ID, CodeReset, []byte("wrong"), now, maxTries); err != nil || ok {
			t.Fatalf("consumed with a wrong hash: %v %v", ok, err)
		}
		for range maxTries {
			if err := s.CountCodeAttempt(ctx, u.ID, CodeReset); err != nil {
				t.Fatal(err)
			}
		}
		if live(now) {
			t.Fatal("a code out of tries is live")
		}
		if ok, err := s.ConsumeCode(ctx, u.ID, CodeReset, []byte("h"), now, maxTries); err != nil || ok {
			t.Fatalf("consumed a code out of tries: %v %v", ok, err)
		}
		issue()
		if ok, err := s.ConsumeCode(ctx, u.ID, CodeReset, []byte("h"), now, maxTries); err != nil || !ok {
			t.Fatalf("consume: %v %v", ok, err)
		}
		if ok, err := s.ConsumeCode(ctx, u.ID, CodeReset, []byte("h"), now, maxTries); err != nil || ok {
			t.Fatalf("consumed twice: %v %v", ok, err)
		}
		if _, err := s.CodeOf(ctx, u.ID, CodeReset); !errors.Is(err, ErrNotFound) {
			t.Errorf("the consumed code is still there: %v", err)
		}
		// A wrong try at no code is no error.
		if err := s.CountCodeAttempt(ctx, u.ID, CodeReset); err != nil {
			t.Errorf("counting a try at no code: %v", err)
		}
	})
}

func TestDeleteCodes(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ada, bob := newTestUser(t, s, "ada"), newTestUser(t, s, "bob")
		now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
		for _, id := range []int64{ada.ID, bob.ID} {
			for _, p := range []CodePurpose{CodeReset, CodeVerify, CodeEmailChange} {
				if err := s.PutCode(ctx, Code{UserID: id, Purpose: p, Hash: []byte("h"), ExpiresAt: now.Add(time.Hour), CreatedAt: now}); err != nil {
					t.Fatal(err)
				}
			}
		}
		left := func(id int64) int {
			t.Helper()
			cs, err := s.CodesOf(ctx, id, CodeReset, CodeVerify, CodeEmailChange)
			if err != nil {
				t.Fatal(err)
			}
			return len(cs)
		}
		if err := s.DeleteCodes(ctx, ada.ID, CodeVerify); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CodeOf(ctx, ada.ID, CodeVerify); !errors.Is(err, ErrNotFound) || left(ada.ID) != 2 {
			t.Fatalf("after deleting the verify code: %v, %d left", err, left(ada.ID))
		}
		if err := s.DeleteCodes(ctx, ada.ID, CodeReset, CodeEmailChange); err != nil {
			t.Fatal(err)
		}
		if n := left(ada.ID); n != 0 {
			t.Fatalf("%d codes of ada left", n)
		}
		if n := left(bob.ID); n != 3 {
			t.Fatalf("bob has %d codes, want 3", n)
		}
	})
}

func TestDeleteExpiredCodes(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ada, bob := newTestUser(t, s, "ada"), newTestUser(t, s, "bob")
		now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
		put := func(id int64, p CodePurpose, expires time.Time) {
			t.Helper()
			if err := s.PutCode(ctx, Code{UserID: id, Purpose: p, Hash: []byte("h"), ExpiresAt: expires, CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		put(ada.ID, CodeReset, now.Add(-time.Minute))
		put(ada.ID, CodeVerify, now.Add(-time.Hour))
		put(bob.ID, CodeReset, now.Add(time.Minute))
		n, err := s.DeleteExpiredCodes(ctx, now)
		if err != nil || n != 2 {
			t.Fatalf("DeleteExpiredCodes = %d, %v; want 2", n, err)
		}
		if cs, _ := s.CodesOf(ctx, ada.ID, CodeReset, CodeVerify); len(cs) != 0 {
			t.Errorf("expired codes left: %+v", cs)
		}
		if _, err := s.CodeOf(ctx, bob.ID, CodeReset); err != nil {
			t.Errorf("a live code was swept: %v", err)
		}
	})
}
