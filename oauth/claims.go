package oauth

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"idp/storage"
)

// userClaims are the OpenID Connect claims about a user that the scopes
// allow (OIDC Core §5.4): the same for the ID token and for userinfo. A
// struct rather than a map: userinfo answers on every request, and encoding
// a map (boxing each value, sorting the keys) cost a tenth of its CPU. The
// embedded pointers are the scopes' claim groups; a nil one is left out.
type userClaims struct {
	Subject string `json:"sub"`
	*profileClaims
	*emailClaims
}

type profileClaims struct {
	Name              string `json:"name"`
	GivenName         string `json:"given_name"`
	FamilyName        string `json:"family_name"`
	PreferredUsername string `json:"preferred_username"`
	Gender            string `json:"gender"`
	Picture           string `json:"picture,omitempty"`
	UpdatedAt         int64  `json:"updated_at"`
}

type emailClaims struct {
	Email string `json:"email"`
	// True only once the owner proved the address with a mailed code (a
	// verification code, or a password reset by one): relying parties
	// link accounts by verified email.
	EmailVerified bool `json:"email_verified"`
}

func (s *Server) userClaims(ctx context.Context, u *storage.User, scopes []string) userClaims {
	c := userClaims{Subject: strconv.FormatInt(u.ID, 10)}
	if slices.Contains(scopes, ScopeProfile) {
		c.profileClaims = &profileClaims{
			Name:              strings.TrimSpace(u.FirstName + " " + u.LastName),
			GivenName:         u.FirstName,
			FamilyName:        u.LastName,
			PreferredUsername: u.Username,
			Gender:            string(u.Gender),
			Picture:           s.pictureURL(ctx, u),
			UpdatedAt:         u.UpdatedAt.Unix(),
		}
	}
	if slices.Contains(scopes, ScopeEmail) {
		c.emailClaims = &emailClaims{Email: u.Email, EmailVerified: u.EmailVerified}
	}
	return c
}

func (s *Server) pictureURL(ctx context.Context, u *storage.User) string {
	if !u.HasPicture() || s.cfg.PictureURL == nil {
		return ""
	}
	url, err := s.cfg.PictureURL(ctx, u.PictureKey)
	if err != nil {
		s.log.WarnContext(ctx, "picture URL unavailable", "user", u.ID, "err", err)
		return ""
	}
	return url
}
