package account

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/password"
	"idp/storage"
)

// cheap are the smallest parameters the password package accepts.
var cheap = password.Params{Memory: 19456, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}

func newService(t *testing.T, db *database.DB, p password.Params, concurrency int, opts Options) *Service {
	t.Helper()
	h, err := password.NewHasher(p, concurrency, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return New(storage.New(db), h, opts)
}

func TestAuthenticate(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s := newService(t, db, cheap, 0, Options{})
		u, err := s.Create(ctx, NewUser{Username: "Ada", Email: "Ada@Example.com", Password: "correct horse", FirstName: "A", LastName: "L"})
		if err != nil {
			t.Fatal(err)
		}
		for _, login := range []string{"ada", " ADA ", "ada@example.com", "ADA@EXAMPLE.COM"} {
			got, err := s.Authenticate(ctx, login, "correct horse", "")
			if err != nil || got.ID != u.ID {
				t.Errorf("login %q: %v", login, err)
			}
		}
		for _, c := range []struct{ login, pw string }{{"ada", "wrong"}, {"nobody", "correct horse"}, {"", "x"}, {"ada@", "x"}} {
			if _, err := s.Authenticate(ctx, c.login, c.pw, ""); !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("login %q/%q: %v, want ErrInvalidCredentials", c.login, c.pw, err)
			}
		}
	})
}

// TestUnknownLoginCostsAHash proves the dummy hash without timing: with the
// single hashing slot taken, an unknown login cannot get an answer before
// a hash slot frees up, exactly like a known one.
func TestUnknownLoginCostsAHash(t *testing.T) {
	db := databasetest.Open(t, databasetest.SQLiteURL(t))
	ctx := context.Background()
	s := newService(t, db, cheap, 1, Options{})
	if _, err := s.Create(ctx, NewUser{Username: "ada", Email: "ada@example.com", Password: "correct horse", FirstName: "A", LastName: "L"}); err != nil {
		t.Fatal(err)
	}
	release := holdSlot(t, s.hasher)
	for _, login := range []string{"ada", "nobody"} {
		if _, err := s.Authenticate(ctx, login, "whatever", ""); !errors.Is(err, password.ErrBusy) {
			t.Errorf("login %q with every hashing slot taken: %v, want ErrBusy (a hash was skipped)", login, err)
		}
	}
	release()
	if _, err := s.Authenticate(ctx, "nobody", "whatever", ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("after release: %v", err)
	}
}

// holdSlot occupies the hasher's only slot with the verification of a
// deliberately expensive stored hash (128 MiB, t=4: about a second), and
// returns once the slot is taken. The verification asks again when it
// queued past the hasher's timeout behind one of the probes below (on a
// loaded machine a probe can hold the slot that long); otherwise nothing
// would take the slot and no probe would ever find it busy.
func holdSlot(t *testing.T, h *password.Hasher) (release func()) {
	t.Helper()
	slow := "$argon2id$v=19$m=131072,t=4,p=1$c29tZXNhbHRzb21lc2FsdA$" + strings.Repeat("A", 43)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, _, err := h.Verify(context.Background(), slow, "x"); !errors.Is(err, password.ErrBusy) {
				return
			}
		}
	}()
	// Wait until the slot is really taken: a second caller is then busy.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, err := h.Hash(context.Background(), "probe"); errors.Is(err, password.ErrBusy) {
			return func() { <-done }
		}
	}
	t.Fatal("could not occupy the hashing slot")
	return nil
}

func TestRehashOnLogin(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		old := newService(t, db, cheap, 0, Options{})
		u, err := old.Create(ctx, NewUser{Username: "ada", Email: "ada@example.com", Password: "correct horse", FirstName: "A", LastName: "L"})
		if err != nil {
			t.Fatal(err)
		}
		stronger := cheap
		stronger.Iterations = 3
		s := newService(t, db, stronger, 0, Options{})
		if _, err := s.Authenticate(ctx, "ada", "wrong", ""); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, u.ID); got.PasswordHash != u.PasswordHash {
			t.Error("a failed login replaced the hash")
		}
		if _, err := s.Authenticate(ctx, "ada", "correct horse", ""); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Get(ctx, u.ID)
		if got.PasswordHash == u.PasswordHash || !strings.Contains(got.PasswordHash, "t=3") {
			t.Errorf("hash not upgraded: %s", got.PasswordHash)
		}
		if _, err := s.Authenticate(ctx, "ada", "correct horse", ""); err != nil {
			t.Errorf("login with the upgraded hash: %v", err)
		}
	})
}

func TestTakenNamesTheField(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s := newService(t, db, cheap, 0, Options{})
		base := NewUser{Username: "user_email", Email: "a@example.com", PasswordHash: "x", FirstName: "A", LastName: "L"}
		if _, err := s.Insert(ctx, base); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			nu    NewUser
			field string
		}{
			// A username that contains "email" must still be named username.
			{NewUser{Username: "USER_EMAIL", Email: "b@example.com", PasswordHash: "x", FirstName: "A", LastName: "L"}, "username"},
			{NewUser{Username: "other", Email: "A@EXAMPLE.COM", PasswordHash: "x", FirstName: "A", LastName: "L"}, "email"},
		} {
			_, err := s.Insert(ctx, c.nu)
			var taken *TakenError
			if !errors.As(err, &taken) || taken.Field != c.field || !errors.Is(err, ErrTaken) {
				t.Errorf("insert %+v: %v, want %s taken", c.nu, err, c.field)
			}
		}
	})
}

// TestEmailDomains: both spellings of an internationalised domain are one
// address, for storing, finding, logging in and the taken check; accounts
// stored before the normalisation, with a Unicode domain, are still found.
func TestEmailDomains(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s := newService(t, db, cheap, 0, Options{})
		u, err := s.Create(ctx, NewUser{Username: "jorg", Email: "Jörg@Bücher.example", Password: "correct horse", FirstName: "J", LastName: "B"})
		if err != nil {
			t.Fatal(err)
		}
		if u.Email != "jörg@xn--bcher-kva.example" {
			t.Errorf("stored as %q, want the domain's A-label", u.Email)
		}
		// An account stored with a Unicode domain before normalisation
		// (storage stores names as given).
		old, err := storage.New(db).CreateUser(ctx, storage.NewUser{Username: "old", Email: "old@bücher.example",
			PasswordHash: u.PasswordHash, FirstName: "O", LastName: "L"})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			login string
			id    int64
		}{
			{"jörg@bücher.example", u.ID}, {"JÖRG@xn--bcher-kva.example", u.ID}, {"jörg@XN--BCHER-KVA.EXAMPLE", u.ID},
			{"old@bücher.example", old.ID}, {"old@xn--bcher-kva.example", old.ID}, {"OLD@BÜCHER.EXAMPLE", old.ID},
		} {
			got, err := s.FindByLogin(ctx, c.login)
			if err != nil || got.ID != c.id {
				t.Errorf("FindByLogin(%q): %v, want user %d", c.login, err, c.id)
			}
			if got, err := s.Authenticate(ctx, c.login, "correct horse", ""); err != nil || got.ID != c.id {
				t.Errorf("Authenticate(%q): %v", c.login, err)
			}
			taken, err := s.Taken(ctx, "someone", c.login)
			if err != nil || len(taken) != 1 || taken[0] != "email" {
				t.Errorf("Taken(%q) = %v %v, want email", c.login, taken, err)
			}
		}
		_, err = s.Create(ctx, NewUser{Username: "other", Email: "jörg@xn--bcher-kva.example", Password: "x", FirstName: "A", LastName: "B"})
		var te *TakenError
		if !errors.As(err, &te) || te.Field != "email" {
			t.Errorf("the other spelling of a stored address: %v, want email taken", err)
		}
	})
}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{"Ada@Example.COM", "ada@example.com", false},
		{" user@Bücher.Example ", "user@xn--bcher-kva.example", false},
		{"user@xn--bcher-kva.example", "user@xn--bcher-kva.example", false},
		{"a@b@bücher.example", "a@b@xn--bcher-kva.example", false}, // the domain is after the last @
		{"ada", "ada", false},
		{"user@", "user@", true},
		{"user@xn--bcher-.example", "", true},
		{"user@a_b.example", "", true},
	}
	for _, tc := range tests {
		got, err := NormalizeEmail(tc.in)
		if tc.bad != errors.Is(err, ErrBadDomain) || !tc.bad && got != tc.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q (bad %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}
