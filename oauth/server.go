// Package oauth is the OAuth 2.0 and OpenID Connect side of idp: fosite
// composed for the password and client_credentials grants, the grant
// registry, a refresh_token grant handler of idp's own, the client
// registry, and the token, revocation, introspection, userinfo and
// discovery endpoints with the bearer check. What a token is lives in
// oauth/token, how fosite's requests and idp's token rows are stored in
// oauth/fositestore; this package decides and answers.
package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"

	"idp/oauth/fositestore"
	"idp/oauth/token"
	"idp/ratelimit"
	"idp/storage"
)

// Users is what the token service needs of the user accounts.
type Users interface {
	// Authenticate checks a login (username or email, any letter case)
	// and password of a client at the address from. Bad credentials give
	// an error wrapping account.ErrInvalidCredentials, whatever was wrong.
	Authenticate(ctx context.Context, login, password, from string) (*storage.User, error)
	// Get returns a user by id, or an error wrapping account.ErrNotFound.
	Get(ctx context.Context, id int64) (*storage.User, error)
}

// Config configures the token service.
type Config struct {
	// Issuer is the public base URL, without a trailing slash.
	Issuer string
	// Token lifetimes.
	AccessTokenTTL, RefreshTokenTTL, IDTokenTTL time.Duration
	// RefreshTokenSecrets key the HMAC of refresh tokens: the first signs,
	// all verify, so a secret can be rotated without logging anyone out.
	// Each is at least 32 bytes.
	RefreshTokenSecrets [][]byte
	// RefreshReuseLeeway is how long after a refresh token was rotated
	// the same client may present it again and get the same successor
	// (an app retrying a refresh whose answer it lost), instead of the
	// revocation of the whole grant that reuse otherwise causes. 0 turns
	// it off.
	RefreshReuseLeeway time.Duration
	// PictureURL turns a stored picture key into the URL of the "picture"
	// claim; nil leaves the claim out.
	PictureURL func(ctx context.Context, key string) (string, error)
	// ObserveGrant, when set, is told the grant type and outcome
	// ("success" or the RFC 6749 error code) of every token request.
	ObserveGrant func(grantType, outcome string)
	// UILocales are the languages of the sign-in pages, for discovery's
	// ui_locales_supported.
	UILocales []string
	// Guard rate-limits the endpoints where credentials can be guessed;
	// nil limits nothing.
	Guard *ratelimit.Guard
	// Logger receives server-side errors; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c *Config) validate() error {
	u, err := url.Parse(c.Issuer)
	if err != nil || !u.IsAbs() || u.Host == "" || strings.HasSuffix(c.Issuer, "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("oauth: issuer %q must be an absolute URL without a trailing slash, query or fragment", c.Issuer)
	}
	if c.AccessTokenTTL <= 0 || c.RefreshTokenTTL <= 0 || c.IDTokenTTL <= 0 {
		return errors.New("oauth: token lifetimes must be positive")
	}
	if c.RefreshReuseLeeway < 0 {
		return errors.New("oauth: the refresh reuse leeway must not be negative")
	}
	if len(c.RefreshTokenSecrets) == 0 {
		return errors.New("oauth: a refresh token secret is required")
	}
	for _, s := range c.RefreshTokenSecrets {
		if len(s) < 32 {
			return errors.New("oauth: refresh token secrets must be at least 32 bytes")
		}
	}
	return nil
}

// Server is the token service and its HTTP endpoints.
type Server struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	provider fosite.OAuth2Provider
	store    *fositestore.Store
	clients  *Clients
	users    Users
	signer   token.Signer
	tokens   *token.Strategy

	discovery    []byte
	discoveryTag string
}

// New composes the token service.
func New(cfg Config, store fositestore.Storage, signer token.Signer, users Users, clients *Clients) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, clients: clients, users: users, signer: signer}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.store = fositestore.New(store, clients, users, s.now)

	fc := &fosite.Config{
		AccessTokenLifespan:  cfg.AccessTokenTTL,
		RefreshTokenLifespan: cfg.RefreshTokenTTL,
		IDTokenLifespan:      cfg.IDTokenTTL,
		AccessTokenIssuer:    cfg.Issuer,
		IDTokenIssuer:        cfg.Issuer,
		TokenURL:             cfg.Issuer + "/oauth2/token",
		ScopeStrategy:        fosite.ExactScopeStrategy,
		// Audiences are compared exactly: "https://api" must not grant
		// "https://api.evil".
		AudienceMatchingStrategy: fosite.ExactAudienceMatchingStrategy,
		RefreshTokenScopes:       []string{ScopeOfflineAccess},
		GlobalSecret:             cfg.RefreshTokenSecrets[0],
		RotatedGlobalSecrets:     cfg.RefreshTokenSecrets[1:],
		TokenEntropy:             32,
		// Codes live at most 5 minutes; PKCE is S256 only, required of
		// public clients (RFC 9700 §2.1.1). The redirect URI is kept with
		// the code so that the token request must repeat it.
		AuthorizeCodeLifespan:          5 * time.Minute,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		SanitationWhiteList:            []string{"redirect_uri"},
		OmitRedirectScopeParam:         true,

		ClientAuthenticationStrategy: func(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
			return s.AuthenticateClient(ctx, r, form)
		},
	}
	var err error
	s.tokens, err = token.NewStrategy(signer, cfg.Issuer, cfg.RefreshTokenSecrets[0],
		oauth2.NewHMACSHAStrategyUnPrefixed(&hmac.HMACStrategy{Config: fc}, fc), s.now)
	if err != nil {
		return nil, err
	}
	// The grants, from their one list, then revocation and introspection.
	var factories []compose.Factory
	for _, g := range grantTypes {
		factories = append(factories, g.factories...)
	}
	factories = append(factories, compose.OAuth2TokenRevocationFactory, compose.OAuth2TokenIntrospectionFactory)
	s.provider = compose.Compose(fc, s.store, s.tokens, factories...)
	for _, g := range grantTypes {
		if g.handler != nil {
			fc.TokenEndpointHandlers.Append(g.handler(s))
		}
	}
	// After the password grant's handler, which mints the access token it
	// hashes.
	fc.TokenEndpointHandlers.Append(idTokenHandler{s})
	// Replaced in place, after every Append: Append drops a handler whose
	// type is already listed, and each wrapper has the same type.
	for i, h := range fc.TokenEndpointHandlers {
		fc.TokenEndpointHandlers[i] = ownGrantOnly{h}
	}

	if s.discovery, err = discoveryDocument(cfg.Issuer, SupportedGrantTypes(), SupportedScopes(), cfg.UILocales); err != nil {
		return nil, err
	}
	s.discoveryTag = etag(s.discovery)
	return s, nil
}

// Mount adds the OAuth 2.0 and OpenID Connect routes to r.
func (s *Server) Mount(r chi.Router) {
	r.Get("/.well-known/openid-configuration", s.handleDiscovery)
	r.Get("/.well-known/oauth-authorization-server", s.handleDiscovery)
	r.With(s.limit("token")).Post("/oauth2/token", s.handleToken)
	r.With(s.limit("revoke")).Post("/oauth2/revoke", s.handleRevoke)
	r.With(s.limit("introspect")).Post("/oauth2/introspect", s.handleIntrospect)
	r.Get("/userinfo", s.handleUserinfo)
	r.Post("/userinfo", s.handleUserinfo)
}

// limit rate-limits a route per client address, refusing with 429
// slow_down and Retry-After.
func (s *Server) limit(name string) func(http.Handler) http.Handler {
	return s.cfg.Guard.Limit(name, func(w http.ResponseWriter, r *http.Request, wait time.Duration) {
		writeError(w, http.StatusTooManyRequests, "slow_down",
			"Too many requests from this address; retry after "+ratelimit.RetryAfter(wait)+" seconds.")
	})
}

// RevokeSubject ends every grant of a user, as after a password reset, on
// the transaction ctx carries if any.
func (s *Server) RevokeSubject(ctx context.Context, subject string) error {
	return s.store.RevokeSubject(ctx, subject)
}

// DeleteExpiredTokens removes token rows that expired over a minute ago
// (the minute spares a token still in use by a request that checked it).
func (s *Server) DeleteExpiredTokens(ctx context.Context) (int, error) {
	return s.store.DeleteExpired(ctx, s.now().Add(-time.Minute))
}
