package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/ory/fosite"

	"idp/oauth/token"
	"idp/storage"
)

// idTokenHandler issues OpenID Connect ID tokens at the token endpoint for
// the password and authorization_code grants when "openid" is granted:
// fosite issues none for the one, and its OpenID Connect handler for the
// other would need a session type and signer of its own, while this one
// signs every ID token alike. (The refresh grant's handler issues its own,
// with the user it read with the token.)
type idTokenHandler struct{ s *Server }

var _ fosite.TokenEndpointHandler = idTokenHandler{}

func (h idTokenHandler) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(GrantPassword) || r.GetGrantTypes().ExactOne(GrantAuthorizationCode)
}

func (h idTokenHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

// HandleTokenEndpointRequest has nothing to check: the grant handlers did.
func (h idTokenHandler) HandleTokenEndpointRequest(context.Context, fosite.AccessRequester) error {
	return fosite.ErrUnknownRequest
}

func (h idTokenHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	scopes := token.AccessScope(r)
	if !slices.Contains(scopes, ScopeOpenID) {
		return fosite.ErrUnknownRequest
	}
	token, err := h.s.idToken(ctx, r, scopes, resp.GetAccessToken(), nil)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	resp.SetExtra("id_token", token)
	return nil
}

// idToken signs r's ID token with the claims scopes allow about u, the
// user of r's subject; nil reads the user.
func (s *Server) idToken(ctx context.Context, r fosite.Requester, scopes []string, accessToken string, u *storage.User) (string, error) {
	sess, ok := r.GetSession().(*token.Session)
	if !ok {
		return "", fmt.Errorf("oauth: unexpected session type %T", r.GetSession())
	}
	id, ok := token.UserID(sess.Subject)
	if !ok {
		return "", fmt.Errorf("oauth: ID token for non-user subject %q", sess.Subject)
	}
	if u == nil {
		var err error
		if u, err = s.users.Get(ctx, id); err != nil {
			return "", err
		}
	} else if u.ID != id {
		return "", fmt.Errorf("oauth: ID token for subject %q with user %d", sess.Subject, u.ID)
	}
	now := s.now()
	claims := idTokenClaims{
		Issuer:          s.cfg.Issuer,
		Audience:        r.GetClient().GetID(),
		AuthorizedParty: r.GetClient().GetID(),
		IssuedAt:        now.Unix(),
		Expiry:          now.Add(s.cfg.IDTokenTTL).Unix(),
		Methods:         sess.Methods,
		SessionID:       sess.SessionID,
		userClaims:      s.userClaims(ctx, u, scopes),
	}
	if !sess.AuthTime.IsZero() {
		claims.AuthTime = sess.AuthTime.Unix()
	}
	// The nonce belongs to the authentication (OIDC Core §3.1.3.6); a
	// refreshed ID token should not repeat it (§12.2).
	if ar, ok := r.(fosite.AccessRequester); ok && ar.GetGrantTypes().ExactOne(GrantAuthorizationCode) {
		claims.Nonce = sess.Nonce
	}
	if accessToken != "" {
		claims.AccessTokenHash = leftHalfHash(accessToken)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return s.signer.Sign(payload, token.TypeIDToken)
}

// idTokenClaims are an ID token's claims (OIDC Core §2): the ones about the
// token, then the user's.
type idTokenClaims struct {
	Issuer   string `json:"iss"`
	Audience string `json:"aud"`
	// azp is the client, which refreshed ID tokens keep (OIDC Core §12.2).
	AuthorizedParty string   `json:"azp"`
	IssuedAt        int64    `json:"iat"`
	Expiry          int64    `json:"exp"`
	AuthTime        int64    `json:"auth_time,omitempty"`
	Nonce           string   `json:"nonce,omitempty"`
	Methods         []string `json:"amr,omitempty"`
	SessionID       string   `json:"sid,omitempty"`
	AccessTokenHash string   `json:"at_hash,omitempty"`
	userClaims
}

// leftHalfHash is the at_hash of OIDC Core §3.1.3.6 for RS256.
func leftHalfHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}
