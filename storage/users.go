package storage

import (
	"context"
	"time"

	"idp/ent/user"
)

// NewUser is an account to store. Its names are stored as given: the
// caller normalises them (lower case, the domain's A-label), which is what
// makes the unique indexes unique regardless of letter case.
type NewUser struct {
	Username, Email     string
	PasswordHash        string
	FirstName, LastName string
	// Gender; empty takes the column's default, unspecified.
	Gender Gender
	// PictureKey; empty: no picture.
	PictureKey string
}

// CreateUser stores a new user. A username or email that belongs to
// another user gives a *ConflictError naming the field.
func (s *Store) CreateUser(ctx context.Context, nu NewUser) (*User, error) {
	c := s.client(ctx).User.Create().
		SetUsername(nu.Username).
		SetEmail(nu.Email).
		SetPasswordHash(nu.PasswordHash).
		SetFirstName(nu.FirstName).
		SetLastName(nu.LastName)
	if nu.Gender != "" {
		c.SetGender(entGender(nu.Gender))
	}
	if nu.PictureKey != "" {
		c.SetPictureKey(nu.PictureKey)
	}
	u, err := c.Save(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	return userOf(u), nil
}

// UserByID returns the user id; ErrNotFound when there is none.
func (s *Store) UserByID(ctx context.Context, id int64) (*User, error) {
	u, err := s.client(ctx).User.Get(ctx, id)
	if err != nil {
		return nil, wrap(err)
	}
	return userOf(u), nil
}

// UserByUsername returns the user of a (normalised) username; ErrNotFound
// when there is none.
func (s *Store) UserByUsername(ctx context.Context, username string) (*User, error) {
	u, err := s.client(ctx).User.Query().Where(user.Username(username)).Only(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	return userOf(u), nil
}

// UserByEmail returns the user stored under one of the spellings of an
// address, in one query. Should several spellings each belong to a user
// (accounts stored before addresses were normalised), the earliest
// spelling in forms wins; a row that matched only under the database's
// collation comes last. ErrNotFound when none matches.
func (s *Store) UserByEmail(ctx context.Context, forms ...string) (*User, error) {
	us, err := s.client(ctx).User.Query().Where(user.EmailIn(forms...)).All(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	for _, f := range forms {
		for _, u := range us {
			if u.Email == f {
				return userOf(u), nil
			}
		}
	}
	if len(us) > 0 {
		return userOf(us[0]), nil
	}
	return nil, ErrNotFound
}

// UsernameTaken reports whether a user holds the (normalised) username.
func (s *Store) UsernameTaken(ctx context.Context, username string) (bool, error) {
	ok, err := s.client(ctx).User.Query().Where(user.Username(username)).Exist(ctx)
	return ok, wrap(err)
}

// EmailTaken reports whether a user other than exceptID (0: any user)
// holds one of the spellings of an address.
func (s *Store) EmailTaken(ctx context.Context, exceptID int64, forms ...string) (bool, error) {
	q := s.client(ctx).User.Query().Where(user.EmailIn(forms...))
	if exceptID != 0 {
		q.Where(user.IDNEQ(exceptID))
	}
	ok, err := q.Exist(ctx)
	return ok, wrap(err)
}

// RehashPassword replaces the user's password hash old by new, only while
// the stored hash is still old: a password changed meanwhile is never
// overwritten. It reports whether it replaced it.
func (s *Store) RehashPassword(ctx context.Context, id int64, old, new string) (bool, error) {
	n, err := s.client(ctx).User.Update().
		Where(user.ID(id), user.PasswordHash(old)).
		SetPasswordHash(new).
		Save(ctx)
	return n > 0, wrap(err)
}

// SetPassword stores a new password hash and the time of the change, which
// tokens issued before it are judged by. ErrNotFound when there is no such
// user.
func (s *Store) SetPassword(ctx context.Context, id int64, hash string, changedAt time.Time) error {
	return wrap(s.client(ctx).User.UpdateOneID(id).
		SetPasswordHash(hash).
		SetPasswordChangedAt(changedAt).
		Exec(ctx))
}

// SetEmailVerified marks the user's address verified. ErrNotFound when
// there is no such user.
func (s *Store) SetEmailVerified(ctx context.Context, id int64) error {
	return wrap(s.client(ctx).User.UpdateOneID(id).SetEmailVerified(true).Exec(ctx))
}

// ChangeEmail moves the user to a (normalised) address its owner proved,
// marking it verified. An address another user holds in this spelling
// gives a *ConflictError on "email"; ErrNotFound when there is no such
// user.
func (s *Store) ChangeEmail(ctx context.Context, id int64, email string) error {
	return wrap(s.client(ctx).User.UpdateOneID(id).
		SetEmail(email).
		SetEmailVerified(true).
		Exec(ctx))
}

// ProfileUpdate is a change of a user's profile fields: nil fields stay as
// they are.
type ProfileUpdate struct {
	FirstName, LastName *string
	Gender              *Gender
}

// UpdateProfile applies p to the user and returns the user as stored now.
// ErrNotFound when there is no such user.
func (s *Store) UpdateProfile(ctx context.Context, id int64, p ProfileUpdate) (*User, error) {
	q := s.client(ctx).User.UpdateOneID(id)
	if p.FirstName != nil {
		q.SetFirstName(*p.FirstName)
	}
	if p.LastName != nil {
		q.SetLastName(*p.LastName)
	}
	if p.Gender != nil {
		q.SetGender(entGender(*p.Gender))
	}
	u, err := q.Save(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	return userOf(u), nil
}

// SwapPictureKey points the user's picture at key ("" clears it), only
// while the stored key is still current ("" for none): two uploads racing
// each see whether theirs replaced the key they read. It reports whether
// it swapped; false also when the user is gone.
func (s *Store) SwapPictureKey(ctx context.Context, id int64, current, key string) (bool, error) {
	q := s.client(ctx).User.Update().Where(user.ID(id))
	if current == "" {
		q.Where(user.PictureKeyIsNil())
	} else {
		q.Where(user.PictureKey(current))
	}
	if key == "" {
		q.ClearPictureKey()
	} else {
		q.SetPictureKey(key)
	}
	n, err := q.Save(ctx)
	return n == 1, wrap(err)
}
