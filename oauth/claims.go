package oauth

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"idp/ent"
)

// userClaims are the OpenID Connect claims about u that the scopes allow
// (OIDC Core §5.4): the same for the ID token and for userinfo.
func (s *Server) userClaims(ctx context.Context, u *ent.User, scopes []string) map[string]any {
	c := map[string]any{"sub": strconv.FormatInt(u.ID, 10)}
	if slices.Contains(scopes, ScopeProfile) {
		c["preferred_username"] = u.Username
		c["given_name"] = u.FirstName
		c["family_name"] = u.LastName
		c["name"] = strings.TrimSpace(u.FirstName + " " + u.LastName)
		c["gender"] = string(u.Gender)
		c["updated_at"] = u.UpdatedAt.Unix()
		if url := s.pictureURL(ctx, u); url != "" {
			c["picture"] = url
		}
	}
	if slices.Contains(scopes, ScopeEmail) {
		c["email"] = u.Email
		// Addresses are not confirmed at signup; a reset code proves only
		// that someone read one mail. Claiming otherwise would mislead
		// relying parties that link accounts by verified email.
		c["email_verified"] = false
	}
	return c
}

func (s *Server) pictureURL(ctx context.Context, u *ent.User) string {
	if u.PictureKey == nil || s.cfg.PictureURL == nil {
		return ""
	}
	url, err := s.cfg.PictureURL(ctx, *u.PictureKey)
	if err != nil {
		s.log.WarnContext(ctx, "picture URL unavailable", "user", u.ID, "err", err)
		return ""
	}
	return url
}
