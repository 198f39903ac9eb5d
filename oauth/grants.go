package oauth

import (
	"context"
	"slices"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"

	"idp/oauth/token"
)

// Grant types this service issues tokens for.
const (
	GrantPassword          = "password"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantAuthorizationCode = "authorization_code"
)

// grantType is one grant the token endpoint serves.
type grantType struct {
	name string
	// factories compose fosite's handlers of the grant, in order; handler
	// is idp's own, appended after fosite's. One of the two is set.
	factories []compose.Factory
	handler   func(*Server) fosite.TokenEndpointHandler
	// confidential grants need a client secret: a public client cannot be
	// registered for one, and the token endpoint refuses it with
	// unauthorized_client.
	confidential bool
	// prepare completes an accepted request before tokens are issued
	// (what is granted, whom the tokens speak for); nil when the grant's
	// handler does that itself.
	prepare func(s *Server, ar fosite.AccessRequester, sess *token.Session)
}

// grantTypes is the one list of grants: it composes the token endpoint and
// its dispatch, bounds what NewClient.Validate accepts, and is the discovery
// document's grant_types_supported. A grant is added here or nowhere.
var grantTypes = []grantType{
	{
		name:      GrantPassword,
		factories: []compose.Factory{compose.OAuth2ResourceOwnerPasswordCredentialsFactory},
		prepare: func(s *Server, ar fosite.AccessRequester, sess *token.Session) {
			s.grantRequested(ar)
			sess.AuthTime = s.now().UTC()
		},
	},
	{
		name:    GrantRefreshToken,
		handler: func(s *Server) fosite.TokenEndpointHandler { return refreshHandler{s} },
		// refreshHandler checks the grant and issues its tokens.
	},
	{
		name:         GrantClientCredentials,
		factories:    []compose.Factory{compose.OAuth2ClientCredentialsGrantFactory},
		confidential: true,
		prepare: func(s *Server, ar fosite.AccessRequester, sess *token.Session) {
			s.grantRequested(ar)
			sess.Subject = ar.GetClient().GetID()
		},
	},
	{
		// The browser sign-in's code (RFC 6749 §4.1) with PKCE (RFC 7636),
		// whose handler must follow the code's. The code request already
		// holds what is granted and whom it speaks for.
		name:      GrantAuthorizationCode,
		factories: []compose.Factory{compose.OAuth2AuthorizeExplicitFactory, compose.OAuth2PKCEFactory},
	},
}

// scopes is the one list of scopes a client may be registered for, and the
// discovery document's scopes_supported.
var scopes = []string{ScopeOpenID, ScopeProfile, ScopeEmail, ScopeOfflineAccess, ScopeUsersStats}

// lookupGrant returns the registered grant called name.
func lookupGrant(name string) (grantType, bool) {
	i := slices.IndexFunc(grantTypes, func(g grantType) bool { return g.name == name })
	if i < 0 {
		return grantType{}, false
	}
	return grantTypes[i], true
}

// SupportedGrantTypes lists the grant types a client may be registered for,
// in a new slice.
func SupportedGrantTypes() []string {
	names := make([]string, len(grantTypes))
	for i, g := range grantTypes {
		names[i] = g.name
	}
	return names
}

// SupportedScopes lists every scope a client may be registered for, in a
// new slice.
func SupportedScopes() []string { return slices.Clone(scopes) }

// ownGrantOnly asks h to issue tokens only for the grants h handles.
// fosite asks every token endpoint handler to populate the answer of every
// grant, and its own handlers turn down the grants they do not handle with
// an error that records the caller's stack: three stack walks on each
// refresh, for an answer no caller reads. Turning those grants down here
// without the walk is what those handlers would answer, minus its cost.
type ownGrantOnly struct{ fosite.TokenEndpointHandler }

func (h ownGrantOnly) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return h.TokenEndpointHandler.PopulateTokenEndpointResponse(ctx, r, resp)
}
