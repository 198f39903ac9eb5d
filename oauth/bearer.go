package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"idp/account"
	"idp/oauth/token"
	"idp/storage"
)

// Errors of Verify. A caller answers ErrNoToken and ErrInvalidToken with
// 401 and ErrInsufficientScope with 403 (RFC 6750 §3.1); anything else is a
// server-side failure (the database, say).
var (
	ErrNoToken           = errors.New("oauth: no bearer token")
	ErrInvalidToken      = errors.New("oauth: invalid token")
	ErrInsufficientScope = errors.New("oauth: insufficient scope")
)

// Principal is who an access token speaks for.
type Principal struct {
	Subject   string
	ClientID  string
	Scopes    []string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// AuthTime is when the user authenticated for the grant the token
	// belongs to (the token's auth_time: the password grant's, the
	// browser session's login, kept across refreshes); zero when the token
	// carries none.
	AuthTime time.Time
	// User is the user the token was issued to, read fresh; nil for a
	// client's own token (client_credentials).
	User *storage.User
}

// HasScope reports whether the token carries scope.
func (p *Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// Verify authenticates the bearer access token of r for this service's own
// endpoints. Beyond what a third party checks offline (signature by a
// published key, type, issuer, audience, lifetime) it refuses a token whose
// grant was revoked and a user's token issued before their last password
// change. The signature is checked locally; the revocation check and the
// user are one indexed read each. When scopes are given, the token must
// carry all of them.
func (s *Server) Verify(ctx context.Context, r *http.Request, scopes ...string) (*Principal, error) {
	raw, ok := token.BearerToken(r)
	if !ok {
		return nil, ErrNoToken
	}
	c, err := s.tokens.ParseAccessToken(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	p := &Principal{
		Subject:   c.Subject,
		ClientID:  c.ClientID,
		Scopes:    strings.Fields(c.Scope),
		IssuedAt:  time.Unix(c.IssuedAt, 0),
		ExpiresAt: time.Unix(c.ExpiresAt, 0),
	}
	if c.AuthTime > 0 {
		p.AuthTime = time.Unix(c.AuthTime, 0)
	}
	if id, isUser := token.UserID(c.Subject); isUser {
		// The revocation check and the user are one read.
		u, err := s.store.ActiveUser(ctx, token.JWTSignature(raw), c.Subject, token.ChainOf(c.ID), id)
		if err != nil {
			return nil, err
		}
		if u == nil {
			return nil, fmt.Errorf("%w: grant revoked, recorded for another subject, or user gone", ErrInvalidToken)
		}
		// iat has whole seconds; a token issued in the second of the
		// change but before it was revoked with its grant at the change.
		if c.IssuedAt < u.PasswordChangedAt.Unix() {
			return nil, fmt.Errorf("%w: issued before the last password change", ErrInvalidToken)
		}
		p.User = u
	} else {
		active, err := s.store.AccessTokenActive(ctx, token.JWTSignature(raw), c.Subject, token.ChainOf(c.ID))
		if err != nil {
			return nil, err
		}
		if !active {
			return nil, fmt.Errorf("%w: grant revoked", ErrInvalidToken)
		}
	}
	for _, scope := range scopes {
		if !p.HasScope(scope) {
			return p, ErrInsufficientScope
		}
	}
	return p, nil
}

// BearerChallenge is the WWW-Authenticate value for a Verify error
// (RFC 6750 §3). scope names what an insufficient token lacked.
func BearerChallenge(err error, scope string) string {
	if errors.Is(err, ErrInsufficientScope) {
		return `Bearer error="insufficient_scope", scope=` + strconv.Quote(scope)
	}
	return `Bearer error="invalid_token"`
}

func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method == http.MethodPost && r.Header.Get("Authorization") == "" &&
		strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		// RFC 6750 §2.2: the token in the form body (OIDC Core §5.3.1
		// allows it at userinfo), bounded like every OAuth form.
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err == nil {
			if tok := r.PostForm.Get("access_token"); tok != "" {
				r = r.Clone(ctx)
				r.Header.Set("Authorization", "Bearer "+tok)
			}
		}
	}
	p, err := s.Verify(ctx, r, ScopeOpenID)
	if err == nil && p.User == nil {
		err = fmt.Errorf("%w: not a user's token", ErrInvalidToken)
	}
	if err != nil {
		s.writeBearerError(ctx, w, err, ScopeOpenID)
		return
	}
	writeJSON(w, http.StatusOK, s.userClaims(ctx, p.User, p.Scopes))
}

func (s *Server) writeBearerError(ctx context.Context, w http.ResponseWriter, err error, scope string) {
	switch {
	case errors.Is(err, ErrNoToken), errors.Is(err, ErrInvalidToken):
		w.Header().Set("WWW-Authenticate", BearerChallenge(err, scope))
		writeError(w, http.StatusUnauthorized, "invalid_token", "The access token is missing, invalid, expired or revoked.")
	case errors.Is(err, ErrInsufficientScope):
		w.Header().Set("WWW-Authenticate", BearerChallenge(err, scope))
		writeError(w, http.StatusForbidden, "insufficient_scope", "The access token lacks the scope "+scope+".")
	default:
		s.log.ErrorContext(ctx, "verify bearer token", "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Try again shortly.")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	w.Write(body)
}

// handleIntrospect is RFC 7662. The caller must be a confidential client:
// fosite would also take any access token as a credential, which would let
// every user probe everyone's tokens.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if s.parseForm(w, r) {
		return
	}
	c, err := s.AuthenticateClient(ctx, r, r.PostForm)
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) && rfc.CodeField >= http.StatusInternalServerError {
		s.introspectionUnavailable(ctx, w, rfc.Cause())
		return
	}
	if err != nil || c.IsPublic() {
		w.Header().Set("WWW-Authenticate", `Basic realm="idp"`)
		writeError(w, http.StatusUnauthorized, "invalid_client", "Introspection needs a confidential client's credentials.")
		return
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "The token parameter is missing.")
		return
	}
	inactive := map[string]any{"active": false}
	use, ar, err := s.provider.IntrospectToken(ctx, raw, fosite.TokenUse(r.PostForm.Get("token_type_hint")), new(token.Session))
	if err != nil {
		if cause, failed := storageFailure(err); failed {
			// Not an answer about the token: "inactive" would make a
			// resource server refuse a valid token as revoked.
			s.introspectionUnavailable(ctx, w, cause)
			return
		}
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	sess, _ := ar.GetSession().(*token.Session)
	if sess == nil {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	resp := map[string]any{
		"active":    true,
		"iss":       s.cfg.Issuer,
		"sub":       sess.Subject,
		"client_id": ar.GetClient().GetID(),
		"scope":     strings.Join(ar.GetGrantedScopes(), " "),
		"iat":       ar.GetRequestedAt().Unix(),
	}
	switch use {
	case fosite.AccessToken:
		claims, err := s.tokens.ParseAccessToken(raw)
		if err != nil || claims.Subject != sess.Subject || claims.ClientID != ar.GetClient().GetID() {
			// A token speaks only for the subject and client of its record.
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		resp["token_type"] = "Bearer"
		resp["scope"] = claims.Scope
		resp["iat"] = claims.IssuedAt
		resp["exp"] = claims.ExpiresAt
		resp["aud"] = claims.Audience
		resp["jti"] = claims.ID
	case fosite.RefreshToken:
		resp["token_type"] = "refresh_token"
		resp["exp"] = sess.GetExpiresAt(fosite.RefreshToken).Unix()
	}
	if id, ok := token.UserID(sess.Subject); ok {
		u, err := s.users.Get(ctx, id)
		if errors.Is(err, account.ErrNotFound) {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		if err != nil {
			s.introspectionUnavailable(ctx, w, err)
			return
		}
		resp["username"] = u.Username
		resp["email_verified"] = u.EmailVerified
	}
	writeJSON(w, http.StatusOK, resp)
}

// storageFailure reports whether an introspection error is a failure to read
// the token's record (the database), rather than a token that is unknown,
// expired, revoked or malformed, and returns its cause. fosite wraps what the
// storage returned; idp's storage answers an unknown or used token with
// fosite.ErrNotFound or fosite.ErrInactiveToken, the token strategy a token
// that does not verify with token.ErrMalformed, and anything else is a
// failure: answering it "inactive" would be a guess.
func storageFailure(err error) (error, bool) {
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.CodeField >= http.StatusInternalServerError {
		return err, true
	}
	cause := rfc.Cause()
	if cause == nil {
		return nil, false
	}
	if errors.Is(cause, fosite.ErrNotFound) || errors.Is(cause, fosite.ErrInactiveToken) || errors.Is(cause, token.ErrMalformed) {
		return nil, false
	}
	return cause, true
}

// introspectionUnavailable answers an introspection that could not be
// decided: logged with its cause, 503 temporarily_unavailable (RFC 6749
// §5.2) with Retry-After.
func (s *Server) introspectionUnavailable(ctx context.Context, w http.ResponseWriter, cause error) {
	s.log.ErrorContext(ctx, "introspection endpoint", "err", cause)
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The token cannot be checked now; retry shortly.")
}
