package token

import (
	"maps"
	"slices"
	"time"

	"github.com/ory/fosite"
)

// Session is what fosite keeps with every grant. It is stored as JSON with the
// token rows and cloned on refresh, so it holds only what later issuances
// need; token claims are built fresh at each issuance (see AccessClaims), which
// avoids fosite's stale-iat and missing-sub problems with its JWT session.
type Session struct {
	Subject   string                         `json:"sub"`
	AuthTime  time.Time                      `json:"auth_time,omitzero"`
	ExpiresAt map[fosite.TokenType]time.Time `json:"expires_at,omitempty"`
	// AccessScope narrows the access token of one exchange below the scope
	// of the grant, for a refresh request that asks for less (RFC 6749 §6).
	// The refresh token keeps the grant's full scope, as §6 requires.
	AccessScope []string `json:"access_scope,omitempty"`
	// The browser sign-in's: the nonce of the authorization request (for
	// the ID token of the code exchange only), the browser session the
	// grant came from (its public id, the ID token's sid; logout revokes
	// by it) and the authentication methods used (the ID token's amr).
	Nonce     string   `json:"nonce,omitempty"`
	SessionID string   `json:"sid,omitempty"`
	Methods   []string `json:"amr,omitempty"`
	// UserAgent is the User-Agent of the request that started the grant
	// (the password grant, a signup, the code exchange), cleaned and
	// bounded; the list of a user's live logins shows it. Kept here rather
	// than in a column so that a refresh copies it with the session, and
	// its rotation stays one insert.
	UserAgent string `json:"ua,omitempty"`
}

var _ fosite.Session = (*Session)(nil)

// SetExpiresAt implements fosite.Session.
func (s *Session) SetExpiresAt(key fosite.TokenType, exp time.Time) {
	if s.ExpiresAt == nil {
		s.ExpiresAt = make(map[fosite.TokenType]time.Time)
	}
	s.ExpiresAt[key] = exp
}

// GetExpiresAt implements fosite.Session.
func (s *Session) GetExpiresAt(key fosite.TokenType) time.Time { return s.ExpiresAt[key] }

// GetUsername implements fosite.Session. The username is not kept: it can
// change, the subject cannot.
func (s *Session) GetUsername() string { return "" }

// GetSubject implements fosite.Session.
func (s *Session) GetSubject() string { return s.Subject }

// SetSubject is how fosite's password grant hands over the authenticated user.
func (s *Session) SetSubject(subject string) { s.Subject = subject }

// Clone implements fosite.Session with a deep copy, so that a refresh never
// writes into the session of the grant it was cloned from.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	c.ExpiresAt = maps.Clone(s.ExpiresAt)
	c.AccessScope = slices.Clone(s.AccessScope)
	c.Methods = slices.Clone(s.Methods)
	return &c
}

// AccessScope is the scope an access token of this exchange carries.
func AccessScope(r fosite.Requester) []string {
	if s, ok := r.GetSession().(*Session); ok && s.AccessScope != nil {
		return s.AccessScope
	}
	return r.GetGrantedScopes()
}
