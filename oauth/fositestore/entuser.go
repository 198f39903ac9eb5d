package fositestore

import (
	"idp/ent"
	"idp/ent/user"
	"idp/storage"
)

// oauthUser is the user type the oauth package takes, *ent.User until it
// takes *storage.User. Removed, with toOAuthUser and this file's import of
// idp/ent, when the oauth package takes *storage.User: then Users,
// ActiveUser and Chain.User name *storage.User.
type oauthUser = ent.User

// toOAuthUser converts storage's user for the oauth package; nil stays
// nil. Removed when the oauth package takes *storage.User.
func toOAuthUser(u *storage.User) *oauthUser {
	if u == nil {
		return nil
	}
	out := &ent.User{ID: u.ID, Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified,
		PasswordHash: u.PasswordHash, FirstName: u.FirstName, LastName: u.LastName, Gender: user.Gender(u.Gender),
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, PasswordChangedAt: u.PasswordChangedAt}
	if u.PictureKey != "" {
		out.PictureKey = &u.PictureKey
	}
	return out
}
