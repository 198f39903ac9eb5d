package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ory/fosite"

	"idp/account"
	"idp/oauth/fositestore"
	"idp/oauth/token"
	"idp/password"
	"idp/ratelimit"
)

// maxFormBytes bounds every OAuth request body. The largest legitimate form
// (a refresh token, a client secret and a scope) is far smaller.
const maxFormBytes = 64 << 10

// parseForm reads a bounded form body. It reports whether it answered the
// request itself (with an error).
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength > maxFormBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", "The request body is too large.")
		return true
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", "The request body is too large.")
		} else {
			writeError(w, http.StatusBadRequest, "invalid_request", "The request body is not a valid form.")
		}
		return true
	}
	// RFC 6749 §3.1 and §3.2: parameters must not be included more than
	// once. Which copy counts would otherwise be up to each reader (fosite
	// reads the first of the body's), and r.Form holds the query's too.
	for name, values := range r.Form {
		if len(values) > 1 {
			writeError(w, http.StatusBadRequest, "invalid_request", "The parameter "+strconv.Quote(name)+" is given more than once.")
			return true
		}
	}
	return false
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if s.parseForm(w, r) {
		return
	}
	grant := r.PostForm.Get("grant_type")
	if grant == "" {
		s.observe("none", "invalid_request")
		writeError(w, http.StatusBadRequest, "invalid_request", "The grant_type parameter is missing.")
		return
	}
	g, ok := lookupGrant(grant)
	if !ok {
		s.observe("other", "unsupported_grant_type")
		writeError(w, http.StatusBadRequest, "unsupported_grant_type", "The grant type is not supported.")
		return
	}

	// The user agent of a grant that starts a login (the password grant,
	// the code exchange) is recorded with its session, for the user's list
	// of logins. The refresh grant continues its stored session instead;
	// the code exchange decodes the code's session into this one, which
	// holds no user agent, so the exchange's stays.
	sess := &token.Session{UserAgent: userAgent(r.UserAgent())}
	ar, err := s.provider.NewAccessRequest(ctx, r, sess)
	if err != nil {
		if g.confidential && ar != nil && ar.GetClient() != nil && ar.GetClient().IsPublic() {
			// fosite answers an authenticated public client with
			// invalid_grant; RFC 6749 §5.2 has the precise error.
			s.observe(grant, "unauthorized_client")
			writeError(w, http.StatusBadRequest, "unauthorized_client", "A public client cannot use "+grant+".")
			return
		}
		s.writeTokenError(ctx, w, grant, ar, err)
		return
	}
	if g.prepare != nil {
		g.prepare(s, ar, sess)
	}
	// A grant without prepare is checked and issued here, by its handler.
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.writeTokenError(ctx, w, grant, ar, err)
		return
	}
	resp.SetTokenType("Bearer")
	s.observe(grant, "success")
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

func (s *Server) observe(grant, outcome string) {
	if s.cfg.ObserveGrant != nil {
		s.cfg.ObserveGrant(grant, outcome)
	}
}

// grantRequested grants what was requested: fosite has already checked each
// scope and audience against the client's registration. offline_access is
// left out for a client that may not refresh, so that it is not handed a
// refresh token it could never use.
func (s *Server) grantRequested(ar fosite.AccessRequester) {
	canRefresh := ar.GetClient().GetGrantTypes().Has(GrantRefreshToken)
	for _, scope := range ar.GetRequestedScopes() {
		if scope == ScopeOfflineAccess && !canRefresh {
			continue
		}
		ar.GrantScope(scope)
	}
	for _, aud := range ar.GetRequestedAudience() {
		ar.GrantAudience(aud)
	}
}

// writeTokenError answers with the RFC 6749 §5.2 error for err. Overload
// (every password hashing slot busy) becomes 503 temporarily_unavailable
// with Retry-After; anything unexpected is logged (fosite's error carries
// the cause) and answered as server_error without detail.
func (s *Server) writeTokenError(ctx context.Context, w http.ResponseWriter, grant string, ar fosite.AccessRequester, err error) {
	var locked *account.LockedError
	switch {
	case errors.Is(err, password.ErrBusy):
		w.Header().Set("Retry-After", "1")
		err = fosite.ErrTemporarilyUnavailable.WithHint("Too many logins at once; retry shortly.")
	case errors.As(err, &locked):
		s.observe(grant, "slow_down")
		w.Header().Set("Retry-After", ratelimit.RetryAfter(locked.RetryAfter))
		writeError(w, http.StatusTooManyRequests, "slow_down",
			"The account is temporarily locked after too many failed logins; retry after "+ratelimit.RetryAfter(locked.RetryAfter)+" seconds.")
		return
	case errors.Is(err, account.ErrInvalidCredentials):
		err = fosite.ErrInvalidGrant.WithHint("The username or password is wrong.")
	case errors.Is(err, fositestore.ErrUserGone):
		// The account was erased while its login was under way.
		err = fosite.ErrInvalidGrant.WithHint("The username or password is wrong.")
	case ar != nil && (errors.Is(err, fositestore.ErrCodeUsed) || errors.Is(err, fosite.ErrInvalidatedAuthorizeCode)):
		// A concurrent redemption of the same code won the race after
		// this one had read it (fosite would call that a server error):
		// a reuse like any other, so what the winner got is revoked too.
		if rerr := s.store.RevokeGrant(ctx, ar.GetID()); rerr != nil {
			s.log.ErrorContext(ctx, "token endpoint: revoke a reused code's grant", "err", rerr)
		}
		err = fosite.ErrInvalidGrant.WithHint("The authorization code has already been used.")
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.CodeField >= 500 && rfc.ErrorField != fosite.ErrTemporarilyUnavailable.ErrorField {
		// What fails here is a dependency (the database, most likely):
		// logged with its cause, answered as a retryable 503.
		s.log.ErrorContext(ctx, "token endpoint", "err", rfc.Cause(), "debug", rfc.DebugField)
		w.Header().Set("Retry-After", "5")
		err = fosite.ErrTemporarilyUnavailable.WithHint("The service cannot complete the request now; retry shortly.")
		rfc = fosite.ErrorToRFC6749Error(err)
	}
	s.observe(grant, rfc.ErrorField)
	if rfc.CodeField == http.StatusUnauthorized {
		// RFC 6749 §5.2: a 401 names the authentication scheme.
		w.Header().Set("WWW-Authenticate", `Basic realm="idp"`)
	}
	if ar == nil {
		// fosite returns no request when no handler took the grant.
		ar = fosite.NewAccessRequest(new(token.Session))
	}
	s.provider.WriteAccessError(ctx, w, ar, err)
}

// writeError writes an RFC 6749 §5.2 error for failures caught before fosite
// sees the request.
func writeError(w http.ResponseWriter, status int, code, description string) {
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	w.Write([]byte(`{"error":` + strconv.Quote(code) + `,"error_description":` + strconv.Quote(description) + `}`))
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if s.parseForm(w, r) {
		return
	}
	// fosite answers a request without a token 200, as if one had been
	// revoked; RFC 7009 §2.1 makes it required.
	if r.PostForm.Get("token") == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "The token parameter is required.")
		return
	}
	err := s.provider.NewRevocationRequest(r.Context(), r)
	if err == nil {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	}
	// fosite answers every error but invalid_request and invalid_client
	// with 200, a storage failure included, which would tell a client its
	// token is revoked when nothing happened. RFC 7009 §2.2.1 has errors.
	rfc := fosite.ErrorToRFC6749Error(err)
	switch {
	case rfc.CodeField >= 500:
		s.log.ErrorContext(r.Context(), "revocation endpoint", "err", rfc.Cause(), "debug", rfc.DebugField)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The token could not be revoked now; retry shortly.")
	case rfc.ErrorField == fosite.ErrInvalidClient.ErrorField:
		w.Header().Set("WWW-Authenticate", `Basic realm="idp"`)
		writeError(w, http.StatusUnauthorized, rfc.ErrorField, "Client authentication failed.")
	case rfc.ErrorField == fosite.ErrUnauthorizedClient.ErrorField:
		writeError(w, http.StatusBadRequest, rfc.ErrorField, "The token was issued to another client.")
	default:
		writeError(w, http.StatusBadRequest, "invalid_request", "The revocation request is malformed.")
	}
}

// IssueTokens answers a successful signup with the tokens of a password
// grant for the new user, through the same fosite issuance as the token
// endpoint (the password was checked when it was set; hashing it again would
// double the cost of a signup). scopes are narrowed to what the client may
// have. The result is the token endpoint's JSON object. The grant records
// the user agent ctx carries (WithUserAgent).
func (s *Server) IssueTokens(ctx context.Context, client fosite.Client, userID int64, scopes []string) (map[string]any, error) {
	if !client.GetGrantTypes().Has(GrantPassword) {
		return nil, fosite.ErrUnauthorizedClient.WithHint("The client may not use the password grant.")
	}
	now := s.now().UTC()
	sess := &token.Session{Subject: strconv.FormatInt(userID, 10), AuthTime: now, UserAgent: userAgentFrom(ctx)}
	sess.SetExpiresAt(fosite.AccessToken, now.Add(s.cfg.AccessTokenTTL).Round(1e9))
	sess.SetExpiresAt(fosite.RefreshToken, now.Add(s.cfg.RefreshTokenTTL).Round(1e9))
	ar := fosite.NewAccessRequest(sess)
	ar.GrantTypes = fosite.Arguments{GrantPassword}
	ar.Client = client
	ar.Form = url.Values{"grant_type": {GrantPassword}}
	for _, scope := range scopes {
		if fosite.ExactScopeStrategy(client.GetScopes(), scope) {
			ar.AppendRequestedScope(scope)
		}
	}
	s.grantRequested(ar)
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		return nil, err
	}
	resp.SetTokenType("Bearer")
	return resp.ToMap(), nil
}
