package account

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/fake"
	"idp/storage"
)

// TestCheckPasswordLocksLikeALogin: a wrong password given to
// CheckPassword counts toward the same lock-out as a failed login, in both
// directions, and a locked account is refused even the right password.
func TestCheckPasswordLocksLikeALogin(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		clock := fake.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
		s := newService(t, db, cheap, 0, Options{Now: clock.Now, CodeKey: make([]byte, 32)})
		u, err := s.Create(ctx, NewUser{Username: "ada", Email: "ada@example.com", Password: "correct horse", FirstName: "A", LastName: "L"})
		if err != nil {
			t.Fatal(err)
		}
		const from = "192.0.2.1"
		if _, err := s.CheckPassword(ctx, u.ID, "correct horse", from); err != nil {
			t.Fatalf("the right password: %v", err)
		}
		// Two failed logins and three wrong passwords here: the fifth
		// failure of the address locks it.
		for range 2 {
			if _, err := s.Authenticate(ctx, "ada", "wrong", from); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("a wrong login: %v", err)
			}
		}
		for range 3 {
			if _, err := s.CheckPassword(ctx, u.ID, "wrong", from); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("a wrong password: %v, want ErrInvalidCredentials", err)
			}
		}
		var locked *LockedError
		if _, err := s.CheckPassword(ctx, u.ID, "correct horse", from); !errors.As(err, &locked) {
			t.Fatalf("the right password while locked: %v, want *LockedError", err)
		}
		if _, err := s.Authenticate(ctx, "ada@example.com", "correct horse", from); !errors.As(err, &locked) {
			t.Fatalf("a login after wrong passwords at CheckPassword: %v, want *LockedError", err)
		}
		// Another address is not locked; after the lock, a success clears.
		if _, err := s.CheckPassword(ctx, u.ID, "correct horse", "198.51.100.7"); err != nil {
			t.Fatalf("from another address: %v", err)
		}
		clock.Advance(time.Hour)
		if _, err := s.CheckPassword(ctx, u.ID, "correct horse", from); err != nil {
			t.Fatalf("after the lock: %v", err)
		}
		if _, err := s.CheckPassword(ctx, u.ID, "wrong", from); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("a wrong password after a success: %v", err)
		}
	})
}

// TestConfirmEmail: an email change code moves the account to its address,
// verified, once, within 24 hours; the verification code still verifies
// the present address; a wrong code counts a try against both; the newest
// change wins; a taken address is ErrTaken on "email" and changes nothing.
func TestConfirmEmail(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		clock := fake.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
		s := newService(t, db, cheap, 0, Options{Now: clock.Now, CodeKey: make([]byte, 32)})
		n := 0
		newUser := func() *storage.User {
			t.Helper()
			n++
			name := string(rune('a'+n)) + "user"
			u, err := s.Create(ctx, NewUser{Username: name, Email: name + "@example.com", Password: "correct horse", FirstName: "A", LastName: "L"})
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		change := func(id int64, to string) string {
			t.Helper()
			code, err := s.IssueEmailChangeCode(ctx, id, to)
			if err != nil {
				t.Fatal(err)
			}
			return code
		}
		email := func(id int64) (string, bool) {
			t.Helper()
			u, err := s.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return u.Email, u.EmailVerified
		}
		wrongFor := func(code string) string {
			if code == "00000000" {
				return "11111111"
			}
			return "00000000"
		}

		t.Run("the code moves the account once", func(t *testing.T) {
			u := newUser()
			reset, err := s.IssueResetCode(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			code := change(u.ID, "New@Bücher.Example")
			if got, err := s.PendingEmail(ctx, u.ID); err != nil || got != "new@xn--bcher-kva.example" {
				t.Fatalf("pending %q (%v), want the normalised address", got, err)
			}
			if e, _ := email(u.ID); e != u.Email {
				t.Fatalf("the address changed before the code: %s", e)
			}
			changed, err := s.ConfirmEmail(ctx, u.ID, code)
			if err != nil || !changed {
				t.Fatalf("confirm: %v %v", changed, err)
			}
			if e, v := email(u.ID); e != "new@xn--bcher-kva.example" || !v {
				t.Fatalf("after the code: %s verified %v", e, v)
			}
			if _, err := s.ConfirmEmail(ctx, u.ID, code); !errors.Is(err, ErrBadCode) {
				t.Fatalf("a used code: %v, want ErrBadCode", err)
			}
			if _, err := s.PendingEmail(ctx, u.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("pending after the change: %v", err)
			}
			// The reset code went to the old address: it is gone.
			if live, err := s.HasLiveResetCode(ctx, u.ID); err != nil || live {
				t.Fatalf("a reset code mailed to the old address is live after the change: %v %v (%s)", live, err, reset)
			}
		})
		t.Run("a verification code still verifies the present address", func(t *testing.T) {
			u := newUser()
			verify, err := s.IssueCode(ctx, u.ID, PurposeVerify)
			if err != nil {
				t.Fatal(err)
			}
			code := change(u.ID, "other@example.com")
			if verify == code {
				t.Skip("the two codes collided")
			}
			if changed, err := s.ConfirmEmail(ctx, u.ID, verify); err != nil || changed {
				t.Fatalf("the verification code: changed %v, %v", changed, err)
			}
			if e, v := email(u.ID); e != u.Email || !v {
				t.Fatalf("after the verification code: %s verified %v", e, v)
			}
			// The change code is untouched, and still moves the account.
			if changed, err := s.ConfirmEmail(ctx, u.ID, code); err != nil || !changed {
				t.Fatalf("the change code after verification: %v %v", changed, err)
			}
		})
		t.Run("wrong codes count against both", func(t *testing.T) {
			u := newUser()
			verify, _ := s.IssueCode(ctx, u.ID, PurposeVerify)
			code := change(u.ID, "tries@example.com")
			bad := wrongFor(code)
			if bad == verify {
				bad = "22222222"
			}
			for range MaxCodeAttempts {
				if _, err := s.ConfirmEmail(ctx, u.ID, bad); !errors.Is(err, ErrBadCode) {
					t.Fatalf("a wrong code: %v", err)
				}
			}
			for _, c := range []string{code, verify} {
				if _, err := s.ConfirmEmail(ctx, u.ID, c); !errors.Is(err, ErrBadCode) {
					t.Fatalf("a code after five wrong tries: %v, want ErrBadCode", err)
				}
			}
			if e, v := email(u.ID); e != u.Email || v {
				t.Fatalf("after dead codes: %s verified %v", e, v)
			}
		})
		t.Run("malformed codes are tries too", func(t *testing.T) {
			u := newUser()
			code := change(u.ID, "malformed@example.com")
			for range MaxCodeAttempts {
				s.ConfirmEmail(ctx, u.ID, "x")
			}
			if _, err := s.ConfirmEmail(ctx, u.ID, code); !errors.Is(err, ErrBadCode) {
				t.Fatalf("the code after five malformed tries: %v", err)
			}
		})
		t.Run("a new password ends the change", func(t *testing.T) {
			u := newUser()
			code := change(u.ID, "taker@example.com")
			verify, err := s.IssueCode(ctx, u.ID, PurposeVerify)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SetPassword(ctx, u.ID, u.PasswordHash); err != nil {
				t.Fatal(err)
			}
			if _, err := s.PendingEmail(ctx, u.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a change is pending after a new password: %v", err)
			}
			if _, err := s.ConfirmEmail(ctx, u.ID, code); !errors.Is(err, ErrBadCode) {
				t.Fatalf("the change code after a new password: %v, want ErrBadCode", err)
			}
			if e, _ := email(u.ID); e != u.Email {
				t.Fatalf("the account moved to %s", e)
			}
			// The verification code is the present address's: it stays.
			if changed, err := s.ConfirmEmail(ctx, u.ID, verify); err != nil || changed {
				t.Fatalf("the verification code after a new password: changed %v, %v", changed, err)
			}
		})
		t.Run("24 hours", func(t *testing.T) {
			u := newUser()
			code := change(u.ID, "late@example.com")
			clock.Advance(24*time.Hour + time.Second)
			if _, err := s.ConfirmEmail(ctx, u.ID, code); !errors.Is(err, ErrBadCode) {
				t.Fatalf("an expired code: %v, want ErrBadCode", err)
			}
		})
		t.Run("the newest change wins", func(t *testing.T) {
			u := newUser()
			first := change(u.ID, "first@example.com")
			second := change(u.ID, "second@example.com")
			if first != second {
				if _, err := s.ConfirmEmail(ctx, u.ID, first); !errors.Is(err, ErrBadCode) {
					t.Fatalf("a replaced code: %v", err)
				}
			}
			if _, err := s.ConfirmEmail(ctx, u.ID, second); err != nil {
				t.Fatal(err)
			}
			if e, _ := email(u.ID); e != "second@example.com" {
				t.Fatalf("moved to %s, want the newest address", e)
			}
		})
		t.Run("a taken address changes nothing", func(t *testing.T) {
			u, other := newUser(), newUser()
			code := change(u.ID, other.Email)
			_, err := s.ConfirmEmail(ctx, u.ID, code)
			var taken *TakenError
			if !errors.Is(err, ErrTaken) || !errors.As(err, &taken) || taken.Field != "email" {
				t.Fatalf("confirm to a taken address: %v, want a TakenError on email", err)
			}
			if e, _ := email(u.ID); e != u.Email {
				t.Fatalf("moved to %s", e)
			}
		})
		t.Run("a race for one address has one winner", func(t *testing.T) {
			const racers = 4
			codes := map[int64]string{}
			for range racers {
				u := newUser()
				codes[u.ID] = change(u.ID, "prize@example.com")
			}
			var wg sync.WaitGroup
			errs := make(chan error, racers)
			for id, code := range codes {
				wg.Go(func() {
					_, err := s.ConfirmEmail(ctx, id, code)
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			won, lost := 0, 0
			for err := range errs {
				switch {
				case err == nil:
					won++
				case errors.Is(err, ErrTaken):
					lost++
				default:
					t.Errorf("a racer: %v", err)
				}
			}
			if won != 1 || lost != racers-1 {
				t.Errorf("%d won, %d lost, want 1 and %d", won, lost, racers-1)
			}
		})
	})
}
