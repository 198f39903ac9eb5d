package storage

import (
	"time"

	"idp/ent"
	"idp/ent/user"
)

// Gender is a user's gender as the contract names it.
type Gender string

// The genders.
const (
	GenderFemale      Gender = "female"
	GenderMale        Gender = "male"
	GenderUnspecified Gender = "unspecified"
)

// Valid reports whether g is one of the genders.
func (g Gender) Valid() bool {
	switch g {
	case GenderFemale, GenderMale, GenderUnspecified:
		return true
	}
	return false
}

// User is an account: who it is, how it logs in, what its profile says.
type User struct {
	ID            int64
	Username      string // lower-case
	Email         string // lower-case, the domain in its A-label form
	EmailVerified bool
	PasswordHash  string // PHC string of argon2id
	FirstName     string
	LastName      string
	Gender        Gender
	// PictureKey names the picture's object in picture storage; empty
	// when the user has none.
	PictureKey        string
	CreatedAt         time.Time
	UpdatedAt         time.Time
	PasswordChangedAt time.Time
}

// HasPicture reports whether the user has a picture.
func (u *User) HasPicture() bool { return u.PictureKey != "" }

// userOf converts ent's row.
func userOf(u *ent.User) *User {
	if u == nil {
		return nil
	}
	out := &User{
		ID:                u.ID,
		Username:          u.Username,
		Email:             u.Email,
		EmailVerified:     u.EmailVerified,
		PasswordHash:      u.PasswordHash,
		FirstName:         u.FirstName,
		LastName:          u.LastName,
		Gender:            Gender(u.Gender),
		CreatedAt:         u.CreatedAt,
		UpdatedAt:         u.UpdatedAt,
		PasswordChangedAt: u.PasswordChangedAt,
	}
	if u.PictureKey != nil {
		out.PictureKey = *u.PictureKey
	}
	return out
}

// entGender converts a Gender for ent's queries.
func entGender(g Gender) user.Gender { return user.Gender(g) }
