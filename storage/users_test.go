package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

func newTestUser(t *testing.T, s *Store, name string) *User {
	t.Helper()
	u, err := s.CreateUser(context.Background(), NewUser{Username: name, Email: name + "@example.com",
		PasswordHash: "$argon2id$" + name, FirstName: "F", LastName: "L"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// newTestUserWithID stores user id with username name, for the tests
// whose rows name the user by a fixed id (a token's subject "7"). The
// password hash is not empty, so that a read that must leave it out is
// seen to.
func newTestUserWithID(t *testing.T, s *Store, id int64, name string) {
	t.Helper()
	if err := s.db.User.Create().SetID(id).SetUsername(name).SetEmail(name + "@example.com").SetPasswordHash("$argon2id$secret").
		SetFirstName(name).SetLastName("L").Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCreateUser(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u, err := s.CreateUser(ctx, NewUser{Username: "ada", Email: "ada@example.com", PasswordHash: "h",
			FirstName: "Ada", LastName: "Lovelace", Gender: GenderFemale, PictureKey: "pictures/a.png"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.UserByID(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Username != "ada" || got.Email != "ada@example.com" || got.PasswordHash != "h" || got.FirstName != "Ada" ||
			got.LastName != "Lovelace" || got.Gender != GenderFemale || got.PictureKey != "pictures/a.png" || got.EmailVerified {
			t.Errorf("stored %+v", got)
		}
		if !got.HasPicture() {
			t.Error("HasPicture is false for a user with a picture key")
		}
		// The defaults: unspecified gender, no picture.
		b := newTestUser(t, s, "bob")
		if b.Gender != GenderUnspecified || b.HasPicture() {
			t.Errorf("defaults: %+v", b)
		}
		if _, err := s.UserByID(ctx, b.ID+1000); !errors.Is(err, ErrNotFound) {
			t.Errorf("an unknown id: %v, want ErrNotFound", err)
		}
	})
}

// TestCreateUserConflictNamesTheField: a taken username or email is a
// *ConflictError naming the column, whatever the other value contains.
func TestCreateUserConflictNamesTheField(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.CreateUser(ctx, NewUser{Username: "user_email", Email: "a@example.com", PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			nu    NewUser
			field string
		}{
			{NewUser{Username: "user_email", Email: "b@example.com", PasswordHash: "x"}, "username"},
			{NewUser{Username: "other", Email: "a@example.com", PasswordHash: "x"}, "email"},
		} {
			_, err := s.CreateUser(ctx, c.nu)
			var ce *ConflictError
			if !errors.As(err, &ce) || ce.Field != c.field || !errors.Is(err, ErrConflict) {
				t.Errorf("create %+v: %v, want a conflict on %s", c.nu, err, c.field)
			}
		}
	})
}

func TestUserByUsernameAndEmail(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ada := newTestUser(t, s, "ada")
		if u, err := s.UserByUsername(ctx, "ada"); err != nil || u.ID != ada.ID {
			t.Errorf("by username: %v %v", u, err)
		}
		if _, err := s.UserByUsername(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown username: %v", err)
		}
		// Two spellings of one address, each stored by an account (the
		// older before addresses were normalised): the earlier form wins.
		uni, err := s.CreateUser(ctx, NewUser{Username: "uni", Email: "x@bücher.example", PasswordHash: "h"})
		if err != nil {
			t.Fatal(err)
		}
		ascii, err := s.CreateUser(ctx, NewUser{Username: "ascii", Email: "x@xn--bcher-kva.example", PasswordHash: "h"})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			forms []string
			want  int64
		}{
			{[]string{"x@xn--bcher-kva.example", "x@bücher.example"}, ascii.ID},
			{[]string{"x@bücher.example", "x@xn--bcher-kva.example"}, uni.ID},
			{[]string{"nobody@example.com", "x@bücher.example"}, uni.ID},
			{[]string{"ada@example.com"}, ada.ID},
		} {
			if u, err := s.UserByEmail(ctx, c.forms...); err != nil || u.ID != c.want {
				t.Errorf("UserByEmail(%q) = %v, %v; want user %d", c.forms, u, err, c.want)
			}
		}
		if _, err := s.UserByEmail(ctx, "nobody@example.com"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown address: %v", err)
		}
	})
}

func TestTaken(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ada := newTestUser(t, s, "ada")
		bob := newTestUser(t, s, "bob")
		for _, c := range []struct {
			name string
			got  func() (bool, error)
			want bool
		}{
			{"username held", func() (bool, error) { return s.UsernameTaken(ctx, "ada") }, true},
			{"username free", func() (bool, error) { return s.UsernameTaken(ctx, "carol") }, false},
			{"email held, anyone", func() (bool, error) { return s.EmailTaken(ctx, 0, "x@example.com", "ada@example.com") }, true},
			{"email free", func() (bool, error) { return s.EmailTaken(ctx, 0, "carol@example.com") }, false},
			{"email held by the user itself", func() (bool, error) { return s.EmailTaken(ctx, ada.ID, "ada@example.com") }, false},
			{"email held by another", func() (bool, error) { return s.EmailTaken(ctx, bob.ID, "ada@example.com") }, true},
		} {
			if got, err := c.got(); err != nil || got != c.want {
				t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
			}
		}
	})
}

func TestPasswordUpdates(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u, err := s.UserByID(ctx, newTestUser(t, s, "ada").ID) // as stored, at the column's precision
		if err != nil {
			t.Fatal(err)
		}
		// A rehash replaces only the hash it read.
		if ok, err := s.RehashPassword(ctx, u.ID, "stale", "new"); err != nil || ok {
			t.Fatalf("rehash over a changed hash: %v %v", ok, err)
		}
		if got, _ := s.UserByID(ctx, u.ID); got.PasswordHash != u.PasswordHash {
			t.Fatalf("a rehash over a changed hash overwrote it: %s", got.PasswordHash)
		}
		if ok, err := s.RehashPassword(ctx, u.ID, u.PasswordHash, "rehashed"); err != nil || !ok {
			t.Fatalf("rehash: %v %v", ok, err)
		}
		if got, _ := s.UserByID(ctx, u.ID); got.PasswordHash != "rehashed" || !got.PasswordChangedAt.Equal(u.PasswordChangedAt) {
			t.Fatalf("after a rehash: %q, changed at %v (was %v)", got.PasswordHash, got.PasswordChangedAt, u.PasswordChangedAt)
		}
		at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := s.SetPassword(ctx, u.ID, "set", at); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.UserByID(ctx, u.ID); got.PasswordHash != "set" || !got.PasswordChangedAt.Equal(at) {
			t.Errorf("after SetPassword: %q at %v", got.PasswordHash, got.PasswordChangedAt)
		}
		if err := s.SetPassword(ctx, u.ID+1000, "set", at); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetPassword of no user: %v", err)
		}
	})
}

func TestEmailUpdates(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ada := newTestUser(t, s, "ada")
		newTestUser(t, s, "bob")
		if err := s.SetEmailVerified(ctx, ada.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.UserByID(ctx, ada.ID); !got.EmailVerified {
			t.Error("not verified")
		}
		if err := s.SetEmailVerified(ctx, ada.ID+1000); !errors.Is(err, ErrNotFound) {
			t.Errorf("verifying no user: %v", err)
		}
		var ce *ConflictError
		if err := s.ChangeEmail(ctx, ada.ID, "bob@example.com"); !errors.As(err, &ce) || ce.Field != "email" {
			t.Errorf("moving to a taken address: %v, want a conflict on email", err)
		}
		if got, _ := s.UserByID(ctx, ada.ID); got.Email != "ada@example.com" {
			t.Errorf("a refused change moved the user to %s", got.Email)
		}
		carol := newTestUser(t, s, "carol")
		if err := s.ChangeEmail(ctx, carol.ID, "carol.new@example.com"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.UserByID(ctx, carol.ID); got.Email != "carol.new@example.com" || !got.EmailVerified {
			t.Errorf("after ChangeEmail: %s verified %v", got.Email, got.EmailVerified)
		}
		if err := s.ChangeEmail(ctx, carol.ID+1000, "x@example.com"); !errors.Is(err, ErrNotFound) {
			t.Errorf("changing no user: %v", err)
		}
	})
}

func TestUpdateProfile(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u := newTestUser(t, s, "ada")
		first, g := "Augusta", GenderFemale
		got, err := s.UpdateProfile(ctx, u.ID, ProfileUpdate{FirstName: &first, Gender: &g})
		if err != nil {
			t.Fatal(err)
		}
		if got.FirstName != "Augusta" || got.LastName != u.LastName || got.Gender != GenderFemale {
			t.Errorf("returned %+v", got)
		}
		if again, _ := s.UserByID(ctx, u.ID); again.FirstName != "Augusta" || again.LastName != u.LastName || again.Gender != GenderFemale {
			t.Errorf("stored %+v", again)
		}
		if _, err := s.UpdateProfile(ctx, u.ID+1000, ProfileUpdate{FirstName: &first}); !errors.Is(err, ErrNotFound) {
			t.Errorf("updating no user: %v", err)
		}
	})
}

// TestSwapPictureKey: the swap happens only from the key last read, so of
// two racing uploads the second sees its swap refused.
func TestSwapPictureKey(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u := newTestUser(t, s, "ada")
		key := func() string {
			t.Helper()
			got, err := s.UserByID(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.PictureKey
		}
		for _, c := range []struct {
			current, key string
			ok           bool
			after        string
		}{
			{"", "a", true, "a"},
			{"", "b", false, "a"}, // read before a was set
			{"x", "b", false, "a"},
			{"a", "b", true, "b"},
			{"a", "", false, "b"},
			{"b", "", true, ""},
			{"b", "c", false, ""},
		} {
			ok, err := s.SwapPictureKey(ctx, u.ID, c.current, c.key)
			if err != nil || ok != c.ok || key() != c.after {
				t.Errorf("swap %q→%q: %v %v, key %q; want %v, %q", c.current, c.key, ok, err, key(), c.ok, c.after)
			}
		}
		if ok, err := s.SwapPictureKey(ctx, u.ID+1000, "", "a"); err != nil || ok {
			t.Errorf("swap of no user: %v %v", ok, err)
		}
	})
}
