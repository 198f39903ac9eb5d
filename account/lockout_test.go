package account

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/fake"
)

// A lockStep is one thing that happens in a lock-out story: a login (login
// "" is the case's account) with the right or a wrong password from an
// address, repeated times times, each expected to end as want; or, with
// reset set, a password reset by emailed code.
type lockStep struct {
	advance time.Duration
	reset   bool
	login   string
	from    string
	right   bool
	times   int
	want    string        // "ok", "invalid" or "locked"
	minWait time.Duration // for "locked": the least Retry-After
}

func wrong(from string, times int, want string) lockStep {
	return lockStep{from: from, times: times, want: want}
}

func right(from, want string) lockStep { return lockStep{from: from, right: true, want: want} }

// TestLockoutPerAddress tells lock-out stories: failures lock an account for
// the address they come from, past AccountLockThreshold for every address;
// a success clears its address and the account-wide count; a reset clears
// everything.
func TestLockoutPerAddress(t *testing.T) {
	const (
		attacker = "203.0.113.66"
		owner    = "198.51.100.7"
	)
	tests := []struct {
		name  string
		steps []lockStep
	}{
		{"five failures lock their address only", []lockStep{
			wrong(attacker, 5, "invalid"),
			wrong(attacker, 1, "locked"),
			right(attacker, "locked"),
			right(owner, "ok"),
		}},
		{"the owner's success leaves the attacker's address locked", []lockStep{
			wrong(attacker, 5, "invalid"),
			right(owner, "ok"),
			right(attacker, "locked"),
		}},
		{"the lock doubles with each further failure", []lockStep{
			wrong(attacker, 5, "invalid"),
			{advance: 61 * time.Second, from: attacker, times: 1, want: "invalid"},
			{from: attacker, right: true, want: "locked", minWait: 2*time.Minute - time.Second},
			{advance: 121 * time.Second, from: attacker, times: 1, want: "invalid"},
			{from: attacker, right: true, want: "locked", minWait: 4*time.Minute - time.Second},
		}},
		{"a success clears its address's count", []lockStep{
			wrong(attacker, 4, "invalid"),
			right(attacker, "ok"),
			wrong(attacker, 4, "invalid"),
			right(attacker, "ok"),
		}},
		{"failures are forgotten after a quiet day", []lockStep{
			wrong(attacker, 4, "invalid"),
			{advance: 25 * time.Hour, from: attacker, times: 4, want: "invalid"},
			right(attacker, "ok"),
		}},
		{"the account-wide ceiling locks every address", []lockStep{
			wrong("192.0.2.1", 2, "invalid"), wrong("192.0.2.2", 2, "invalid"), wrong("192.0.2.3", 2, "invalid"),
			wrong("192.0.2.4", 2, "invalid"), wrong("192.0.2.5", 2, "invalid"),
			right(owner, "locked"),
			{advance: 61 * time.Second, from: owner, right: true, want: "ok"},
		}},
		{"a success resets the account-wide count", []lockStep{
			wrong("192.0.2.1", 3, "invalid"), wrong("192.0.2.2", 3, "invalid"), wrong("192.0.2.3", 3, "invalid"),
			right(owner, "ok"),
			wrong("192.0.2.4", 3, "invalid"), wrong("192.0.2.5", 3, "invalid"), wrong("192.0.2.6", 3, "invalid"),
			right(owner, "ok"),
		}},
		{"a reset lifts every lock", []lockStep{
			wrong("192.0.2.1", 5, "invalid"), wrong("192.0.2.2", 5, "invalid"),
			right(owner, "locked"), // past the account-wide ceiling of 10
			{reset: true},
			right("192.0.2.1", "ok"),
			right("192.0.2.2", "ok"),
			right(owner, "ok"),
		}},
		{"unknown logins lock alike, per address", []lockStep{
			{login: "nobody", from: attacker, times: 5, want: "invalid"},
			{login: "nobody", from: attacker, times: 1, want: "locked"},
			{login: "nobody", from: owner, times: 1, want: "invalid"},
			{login: "NOBODY", from: attacker, times: 1, want: "locked"},
		}},
		{"unknown logins reach the account-wide ceiling alike", []lockStep{
			{login: "nobody@example.com", from: "192.0.2.1", times: 5, want: "invalid"},
			{login: "nobody@example.com", from: "192.0.2.2", times: 5, want: "invalid"},
			{login: "nobody@example.com", from: owner, times: 1, want: "locked"},
		}},
	}
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				clock := fake.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
				s := newService(t, db, cheap, 0, Options{AccountLockThreshold: 10, Now: clock.Now})
				name := fmt.Sprintf("user%d", i)
				u, err := s.Create(ctx, NewUser{Username: name, Email: name + "@example.com", Password: "correct horse", FirstName: "A", LastName: "L"})
				if err != nil {
					t.Fatal(err)
				}
				for n, st := range tc.steps {
					clock.Advance(st.advance)
					if st.reset {
						if err := s.SetPassword(ctx, u.ID, u.PasswordHash); err != nil {
							t.Fatal(err)
						}
						continue
					}
					login, pw := st.login, "wrong horse"
					if login == "" {
						login = name
					} else {
						login = fmt.Sprintf("%s-%d", login, i) // a fresh unknown name per case
					}
					if st.right {
						pw = "correct horse"
					}
					for k := range max(st.times, 1) {
						_, err := s.Authenticate(ctx, login, pw, st.from)
						var locked *LockedError
						got := "ok"
						switch {
						case errors.As(err, &locked):
							got = "locked"
						case errors.Is(err, ErrInvalidCredentials):
							got = "invalid"
						case err != nil:
							t.Fatalf("step %d: %v", n+1, err)
						}
						if got != st.want {
							t.Fatalf("step %d (%s from %s, try %d): %s, want %s", n+1, login, st.from, k+1, got, st.want)
						}
						if locked != nil && locked.RetryAfter < st.minWait {
							t.Errorf("step %d: locked for %v, want at least %v", n+1, locked.RetryAfter, st.minWait)
						}
					}
				}
			})
		}
	})
}

// TestLockoutCountsConcurrentFailures: failures that arrive together all
// read the record before hashing, and each must still count, whether the
// record is new or forgotten (a day old): after a burst of eight, the
// address is locked.
func TestLockoutCountsConcurrentFailures(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		clock := fake.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
		s := newService(t, db, cheap, 8, Options{AccountLockThreshold: 100, Now: clock.Now})
		if _, err := s.Create(ctx, NewUser{Username: "ada", Email: "ada@example.com", Password: "correct horse", FirstName: "A", LastName: "L"}); err != nil {
			t.Fatal(err)
		}
		const from = "203.0.113.66"
		for _, round := range []string{"a new record", "a forgotten record"} {
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					if _, err := s.Authenticate(ctx, "ada", "wrong horse", from); !errors.Is(err, ErrInvalidCredentials) {
						var locked *LockedError
						if !errors.As(err, &locked) {
							t.Errorf("%s: a wrong password: %v", round, err)
						}
					}
				})
			}
			wg.Wait()
			var locked *LockedError
			if _, err := s.Authenticate(ctx, "ada", "correct horse", from); !errors.As(err, &locked) {
				t.Errorf("%s: after eight concurrent failures the address is not locked: %v", round, err)
			}
			clock.Advance(25 * time.Hour) // past the lock and the memory of failures
		}
	})
}

// TestLockoutDefaultCeiling: the account-wide ceiling defaults to NIST SP
// 800-63B's 100 consecutive failures.
func TestLockoutDefaultCeiling(t *testing.T) {
	if got := New(nil, nil, Options{}).opts.AccountLockThreshold; got != 100 {
		t.Errorf("default account-wide ceiling %d, want 100", got)
	}
}

func TestHasLiveResetCode(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		clock := fake.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
		s := newService(t, db, cheap, 0, Options{Now: clock.Now, CodeKey: make([]byte, 32)})
		u, err := s.Create(ctx, NewUser{Username: "ada", Email: "ada@example.com", Password: "correct horse", FirstName: "A", LastName: "L"})
		if err != nil {
			t.Fatal(err)
		}
		live := func(want bool, what string) {
			t.Helper()
			if got, err := s.HasLiveResetCode(ctx, u.ID); err != nil || got != want {
				t.Errorf("%s: live %v (%v), want %v", what, got, err, want)
			}
		}
		live(false, "no code")
		code, err := s.IssueResetCode(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		live(true, "a fresh code")
		clock.Advance(16 * time.Minute)
		live(false, "an expired code")
		if code, err = s.IssueResetCode(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		bad := "00000000"
		if code == bad {
			bad = "11111111"
		}
		for range MaxCodeAttempts - 1 {
			s.CheckResetCode(ctx, u.ID, bad)
		}
		live(true, "a code with one try left")
		s.CheckResetCode(ctx, u.ID, bad)
		live(false, "a code killed by wrong tries")
	})
}
