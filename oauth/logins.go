package oauth

import (
	"context"
	"idp/oauth/fositestore"
	"net/http"

	"idp/oauth/token"
	"idp/session"
)

// Login is one live login of a user through the token endpoint: a
// refresh-token chain (the login and all its refreshes). Its RequestID is
// for EndLogin, not for showing: a list shows an id derived from it.
type Login = fositestore.Login

// Logins returns the live refresh-token chains of subject, in no
// particular order.
func (s *Server) Logins(ctx context.Context, subject string) ([]Login, error) {
	return s.store.Logins(ctx, subject, s.now())
}

// EndLogin ends subject's grant requestID at once: its refresh tokens are
// refused and its access tokens too, at this service's endpoints. It
// reports false, and ends nothing, for a grant that is not subject's or
// has no active refresh token.
func (s *Server) EndLogin(ctx context.Context, subject, requestID string) (bool, error) {
	return s.store.EndLogin(ctx, subject, requestID)
}

// CurrentLogin returns the grant (request id) of the access token r
// carries, as Logins names it, or "" when there is none on record: call it
// after Verify accepted r. The token is parsed again (the strategy caches
// verified tokens) so that Verify, on every request, stays one read.
func (s *Server) CurrentLogin(ctx context.Context, r *http.Request) (string, error) {
	raw, ok := token.BearerToken(r)
	if !ok {
		return "", nil
	}
	c, err := s.tokens.ParseAccessToken(raw)
	if err != nil {
		return "", nil
	}
	return s.store.GrantOfAccessToken(ctx, token.JWTSignature(raw), c.Subject, token.ChainOf(c.ID))
}

type userAgentKey struct{}

// WithUserAgent returns ctx carrying the User-Agent of the request that
// asks for tokens outside the token endpoint (a signup, a password
// change): IssueTokens records it with the grant, as the token endpoint
// records its own request's.
func WithUserAgent(ctx context.Context, ua string) context.Context {
	return context.WithValue(ctx, userAgentKey{}, ua)
}

// userAgent is what a token grant records of a User-Agent header.
func userAgent(ua string) string { return session.CleanUserAgent(ua) }

// userAgentFrom is the user agent ctx carries, cleaned; "" for none.
func userAgentFrom(ctx context.Context) string {
	ua, _ := ctx.Value(userAgentKey{}).(string)
	return userAgent(ua)
}
