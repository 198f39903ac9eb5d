package account

import (
	"context"
	"errors"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/fake"
	"idp/storage"
)

// TestVerifyEmail: a verification code verifies the address once, within 24
// hours, and dies after MaxCodeAttempts wrong tries; the newest code wins;
// codes of one purpose never serve the other, and a reset code and a
// verification code live side by side.
func TestVerifyEmail(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		clock := fake.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
		s := newService(t, db, cheap, 0, Options{Now: clock.Now, CodeKey: make([]byte, 32)})
		n := 0
		newUser := func() int64 {
			t.Helper()
			n++
			name := string(rune('a'+n)) + "user"
			u, err := s.Create(ctx, NewUser{Username: name, Email: name + "@example.com", Password: "correct horse", FirstName: "A", LastName: "L"})
			if err != nil {
				t.Fatal(err)
			}
			if u.EmailVerified {
				t.Fatal("a new account's address is verified")
			}
			return u.ID
		}
		issue := func(id int64, p Purpose) string {
			t.Helper()
			code, err := s.IssueCode(ctx, id, p)
			if err != nil {
				t.Fatal(err)
			}
			return code
		}
		verified := func(id int64, want bool, what string) {
			t.Helper()
			u, err := s.Get(ctx, id)
			if err != nil || u.EmailVerified != want {
				t.Fatalf("%s: verified %v (%v), want %v", what, u != nil && u.EmailVerified, err, want)
			}
		}
		wrongFor := func(code string) string {
			if code == "00000000" {
				return "11111111"
			}
			return "00000000"
		}

		t.Run("the code verifies once", func(t *testing.T) {
			id := newUser()
			reset := issue(id, PurposeReset)
			code := issue(id, PurposeVerify)
			if err := s.VerifyEmail(ctx, id, reset); reset != code && !errors.Is(err, ErrBadCode) {
				t.Fatalf("a reset code verified: %v", err)
			}
			verified(id, false, "after a reset code")
			if err := s.VerifyEmail(ctx, id, code); err != nil {
				t.Fatalf("verify: %v", err)
			}
			verified(id, true, "after the code")
			if err := s.VerifyEmail(ctx, id, code); !errors.Is(err, ErrBadCode) {
				t.Fatalf("a used code: %v, want ErrBadCode", err)
			}
			// The reset code was left alone.
			if err := s.CheckResetCode(ctx, id, reset); err != nil {
				t.Fatalf("the reset code after verification: %v", err)
			}
		})
		t.Run("a reset code does not verify", func(t *testing.T) {
			id := newUser()
			code := issue(id, PurposeReset)
			if err := s.VerifyEmail(ctx, id, code); !errors.Is(err, ErrBadCode) {
				t.Fatalf("a reset code as a verification code: %v", err)
			}
			verified(id, false, "after a reset code")
		})
		t.Run("24 hours", func(t *testing.T) {
			id := newUser()
			code := issue(id, PurposeVerify)
			clock.Advance(23 * time.Hour)
			if live, err := s.HasLiveCode(ctx, id, PurposeVerify); err != nil || !live {
				t.Fatalf("after 23 hours: live %v (%v)", live, err)
			}
			clock.Advance(time.Hour)
			if err := s.VerifyEmail(ctx, id, code); !errors.Is(err, ErrBadCode) {
				t.Fatalf("an expired code: %v, want ErrBadCode", err)
			}
			verified(id, false, "after an expired code")
		})
		t.Run("five wrong tries kill it", func(t *testing.T) {
			id := newUser()
			code := issue(id, PurposeVerify)
			for range MaxCodeAttempts {
				if err := s.VerifyEmail(ctx, id, wrongFor(code)); !errors.Is(err, ErrBadCode) {
					t.Fatalf("a wrong code: %v", err)
				}
			}
			if err := s.VerifyEmail(ctx, id, code); !errors.Is(err, ErrBadCode) {
				t.Fatalf("the right code after five wrong tries: %v, want ErrBadCode", err)
			}
			verified(id, false, "after a dead code")
		})
		t.Run("the newest code wins", func(t *testing.T) {
			id := newUser()
			old := issue(id, PurposeVerify)
			code := issue(id, PurposeVerify)
			if old != code {
				if err := s.VerifyEmail(ctx, id, old); !errors.Is(err, ErrBadCode) {
					t.Fatalf("a replaced code: %v, want ErrBadCode", err)
				}
			}
			if err := s.VerifyEmail(ctx, id, code); err != nil {
				t.Fatalf("the newest code: %v", err)
			}
			verified(id, true, "after the newest code")
		})
		t.Run("marked by a reset: the verification code is gone", func(t *testing.T) {
			id := newUser()
			issue(id, PurposeVerify)
			if err := s.MarkEmailVerified(ctx, id); err != nil {
				t.Fatal(err)
			}
			verified(id, true, "marked")
			if live, err := s.HasLiveCode(ctx, id, PurposeVerify); err != nil || live {
				t.Fatalf("a verification code outlived the verification: %v %v", live, err)
			}
		})
		t.Run("the sweep removes expired codes of both purposes", func(t *testing.T) {
			id := newUser()
			issue(id, PurposeVerify)
			issue(id, PurposeReset)
			clock.Advance(25 * time.Hour)
			if _, err := s.DeleteExpiredCodes(ctx); err != nil {
				t.Fatal(err)
			}
			for _, p := range []storage.CodePurpose{storage.CodeVerify, storage.CodeReset} {
				if c, err := storage.New(db).CodeOf(ctx, id, p); !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("the %s code is left: %+v (%v)", p, c, err)
				}
			}
		})
	})
}
