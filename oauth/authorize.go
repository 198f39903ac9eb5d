package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"idp/oauth/token"
)

// Prompt values of OIDC Core §3.1.2.1.
const (
	PromptNone          = "none"
	PromptLogin         = "login"
	PromptConsent       = "consent"
	PromptSelectAccount = "select_account"
)

// maxAuthorizeParam bounds each authorization request parameter (an
// id_token_hint with its claims is the longest legitimate one), so that the
// service never stores or echoes more.
const maxAuthorizeParam = 8 << 10

// minFositeState is the shortest state fosite accepts (its
// MinParameterEntropy), and stateStandIn what stands in for a shorter one.
const (
	minFositeState = fosite.MinParameterEntropy
	stateStandIn   = "idp-state-stand-in"
)

// AuthorizeRequest is an authorization request (OIDC Core §3.1.2.1) that
// fosite has checked: a known client, a registered redirect URI, a
// supported response type and mode, allowed scopes.
type AuthorizeRequest struct {
	fosite.AuthorizeRequester
	// Prompt holds the prompt values.
	Prompt []string
	// MaxAge is max_age, when HasMaxAge.
	MaxAge    time.Duration
	HasMaxAge bool
	// LoginHint, UILocales and Nonce are the parameters of those names.
	LoginHint, UILocales, Nonce string
	// HintSubject is the subject of a valid id_token_hint, "" without one.
	HintSubject string
}

// Prompted reports whether prompt holds value.
func (ar *AuthorizeRequest) Prompted(value string) bool { return slices.Contains(ar.Prompt, value) }

// ClientID is the requesting client's id.
func (ar *AuthorizeRequest) ClientID() string { return ar.GetClient().GetID() }

// FirstParty reports whether the client is one of this service's own,
// which never asks for consent.
func (ar *AuthorizeRequest) FirstParty() bool {
	c, ok := ar.GetClient().(interface{ IsFirstParty() bool })
	return ok && c.IsFirstParty()
}

// Scopes are the scopes the request would grant: those requested, without
// offline_access for a client that may not refresh.
func (ar *AuthorizeRequest) Scopes() []string {
	canRefresh := ar.GetClient().GetGrantTypes().Has(GrantRefreshToken)
	var out []string
	for _, s := range ar.GetRequestedScopes() {
		if s == ScopeOfflineAccess && !canRefresh {
			continue
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Redirect is an answer to the client at its redirect URI: Params either in
// the URI's query (mode "query") or posted by a self-submitting form
// ("form_post", OAuth 2.0 Form Post Response Mode).
type Redirect struct {
	URI    string
	Mode   fosite.ResponseModeType
	Params url.Values
}

// URL is the redirect of query mode: URI with Params added to its query.
func (r Redirect) URL() string {
	u, err := url.Parse(r.URI)
	if err != nil {
		return r.URI
	}
	q := u.Query()
	for k, vs := range r.Params {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// FormPost reports whether the answer is posted rather than redirected.
func (r Redirect) FormPost() bool { return r.Mode == fosite.ResponseModeFormPost }

// AuthorizeError is why an authorization request failed. With a Redirect
// the client is told there (RFC 6749 §4.1.2.1); without one the request
// could not be tied to a client's registered redirect URI and the user
// gets an error page (RFC 6749 §4.1.2.1 forbids redirecting then).
type AuthorizeError struct {
	Redirect *Redirect
	// Code is the RFC 6749 error code.
	Code string
	// UnknownClient or BadRedirectURI say which page to show without a
	// Redirect.
	UnknownClient, BadRedirectURI bool
	// Cause is for the log when the failure was the service's own.
	Cause error
}

func (e *AuthorizeError) Error() string {
	if e.Cause != nil {
		return "oauth: authorization request: " + e.Code + ": " + e.Cause.Error()
	}
	return "oauth: authorization request: " + e.Code
}

// ParseAuthorize reads and checks an authorization request. r's form must
// already be parsed and bounded (the caller's form limits apply); it is
// changed.
func (s *Server) ParseAuthorize(ctx context.Context, r *http.Request) (*AuthorizeRequest, *AuthorizeError) {
	if r.Form == nil {
		return nil, &AuthorizeError{Code: "invalid_request", Cause: errors.New("oauth: the form is not parsed")}
	}
	// Repeated or oversized parameters: which copy counts would be up to
	// each reader, so none does. The redirect is not yet trusted.
	for name, values := range r.Form {
		if len(values) > 1 || len(values[0]) > maxAuthorizeParam {
			return nil, &AuthorizeError{Code: "invalid_request", BadRedirectURI: name == "redirect_uri", UnknownClient: name == "client_id"}
		}
	}
	// fosite refuses request, request_uri and an unknown response_mode
	// before it has checked the redirect URI, which would leave the error
	// without a way to the client: they are taken out here and answered
	// once the redirect URI is known to be the client's.
	form := r.Form
	var refuse *fosite.RFC6749Error
	switch {
	case form.Get("request") != "":
		refuse = fosite.ErrRequestNotSupported.WithHint("Request objects are not supported.")
	case form.Get("request_uri") != "":
		refuse = fosite.ErrRequestURINotSupported.WithHint("Request URIs are not supported.")
	}
	switch form.Get("response_mode") {
	case "", string(fosite.ResponseModeQuery), string(fosite.ResponseModeFormPost):
	default:
		if refuse == nil {
			refuse = fosite.ErrUnsupportedResponseMode.WithHint("The response_mode must be query or form_post.")
		}
		form.Del("response_mode")
	}
	form.Del("request")
	form.Del("request_uri")
	// state is the client's own CSRF defence, OPTIONAL and often omitted
	// with PKCE (RFC 9700 §2.1.1); fosite refuses one under 8 characters,
	// absent included, and no setting turns that off. A short or absent
	// state is stood in for while fosite reads the request, then put back.
	state := form.Get("state")
	if len(state) < minFositeState {
		form.Set("state", stateStandIn)
	}
	far, err := s.provider.NewAuthorizeRequest(ctx, r)
	if fr, ok := far.(*fosite.AuthorizeRequest); ok && fr != nil {
		fr.State = state
		if state == "" {
			fr.Form.Del("state")
		} else {
			fr.Form.Set("state", state)
		}
	}
	if err != nil {
		return nil, s.authorizeError(ctx, far, err)
	}
	if refuse != nil {
		return nil, s.authorizeError(ctx, far, refuse)
	}
	ar := &AuthorizeRequest{
		AuthorizeRequester: far,
		LoginHint:          far.GetRequestForm().Get("login_hint"),
		UILocales:          far.GetRequestForm().Get("ui_locales"),
		Nonce:              far.GetRequestForm().Get("nonce"),
	}
	fail := func(e *fosite.RFC6749Error) (*AuthorizeRequest, *AuthorizeError) {
		return nil, s.authorizeError(ctx, far, e)
	}
	form = far.GetRequestForm()
	// PKCE (RFC 7636, RFC 9700 §2.1.1): S256 only; required of public
	// clients, checked here so that the user is not sent through a login
	// that can only end in an error.
	switch method := form.Get("code_challenge_method"); {
	case form.Get("code_challenge") == "" && far.GetClient().IsPublic():
		return fail(fosite.ErrInvalidRequest.WithHint("A public client must send a PKCE code_challenge (S256)."))
	case form.Get("code_challenge") == "" && method != "":
		return fail(fosite.ErrInvalidRequest.WithHint("code_challenge_method without code_challenge."))
	case form.Get("code_challenge") != "" && method != "S256":
		return fail(fosite.ErrInvalidRequest.WithHint("The code_challenge_method must be S256."))
	}
	for _, p := range strings.Fields(form.Get("prompt")) {
		switch p {
		case PromptNone, PromptLogin, PromptConsent, PromptSelectAccount:
			if !slices.Contains(ar.Prompt, p) {
				ar.Prompt = append(ar.Prompt, p)
			}
		default:
			return fail(fosite.ErrInvalidRequest.WithHintf("The prompt value %q is not supported.", p))
		}
	}
	if ar.Prompted(PromptNone) && len(ar.Prompt) > 1 {
		return fail(fosite.ErrInvalidRequest.WithHint("prompt=none cannot be combined with other values."))
	}
	if v := form.Get("max_age"); v != "" {
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			return fail(fosite.ErrInvalidRequest.WithHint("max_age must be a non-negative number of seconds."))
		}
		ar.MaxAge, ar.HasMaxAge = time.Duration(n)*time.Second, true
	}
	if hint := form.Get("id_token_hint"); hint != "" {
		sub, _, err := s.verifyIDTokenHint(hint)
		if err != nil {
			return fail(fosite.ErrInvalidRequest.WithHint("The id_token_hint is not an ID token of this service."))
		}
		ar.HintSubject = sub
	}
	return ar, nil
}

// authorizeError turns a failure into an AuthorizeError: redirected to the
// client when fosite trusted the redirect URI, otherwise for a page.
func (s *Server) authorizeError(ctx context.Context, far fosite.AuthorizeRequester, err error) *AuthorizeError {
	rfc := fosite.ErrorToRFC6749Error(err)
	e := &AuthorizeError{Code: rfc.ErrorField}
	if rfc.CodeField >= 500 {
		e.Cause = err
		s.log.ErrorContext(ctx, "authorization endpoint", "err", rfc.Cause(), "debug", rfc.DebugField)
		if rfc.ErrorField == fosite.ErrServerError.ErrorField {
			rfc = fosite.ErrTemporarilyUnavailable.WithHint("The service cannot complete the request now; retry shortly.")
			e.Code = rfc.ErrorField
		}
	}
	ar, ok := far.(*fosite.AuthorizeRequest)
	if !ok || ar == nil || ar.GetClient() == nil {
		e.UnknownClient = true
		return e
	}
	if !ar.IsRedirectURIValid() {
		e.BadRedirectURI = true
		return e
	}
	params := url.Values{"error": {rfc.ErrorField}}
	if d := rfc.GetDescription(); d != "" {
		params.Set("error_description", d)
	}
	e.Redirect = s.redirect(ar, params)
	return e
}

// redirect addresses params to the request's redirect URI in its response
// mode, with state and RFC 9207's iss.
func (s *Server) redirect(ar fosite.AuthorizeRequester, params url.Values) *Redirect {
	if st := ar.GetState(); st != "" {
		params.Set("state", st)
	}
	params.Set("iss", s.cfg.Issuer)
	mode := ar.GetResponseMode()
	if mode != fosite.ResponseModeFormPost {
		mode = fosite.ResponseModeQuery
	}
	return &Redirect{URI: ar.GetRedirectURI().String(), Mode: mode, Params: params}
}

// ErrorRedirect is the redirect that tells the client the request failed
// with code (access_denied, login_required, ...).
func (s *Server) ErrorRedirect(ar *AuthorizeRequest, code, description string) *Redirect {
	params := url.Values{"error": {code}}
	if description != "" {
		params.Set("error_description", description)
	}
	return s.redirect(ar, params)
}

// Grant is what the browser sign-in decided for an authorization request:
// who signed in, when and how, through which browser session.
type Grant struct {
	UserID    int64
	AuthTime  time.Time
	Methods   []string
	SessionID string
}

// Authorize issues the authorization code for ar and returns the redirect
// that delivers it. Every scope the request would grant (Scopes) is
// granted: the caller has had consent for them.
func (s *Server) Authorize(ctx context.Context, ar *AuthorizeRequest, g Grant) (*Redirect, *AuthorizeError) {
	for _, scope := range ar.Scopes() {
		ar.GrantScope(scope)
	}
	for _, aud := range ar.GetRequestedAudience() {
		ar.GrantAudience(aud)
	}
	sess := &token.Session{
		Subject:   strconv.FormatInt(g.UserID, 10),
		AuthTime:  g.AuthTime.UTC().Truncate(time.Second),
		Nonce:     ar.Nonce,
		SessionID: g.SessionID,
		Methods:   slices.Clone(g.Methods),
	}
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar.AuthorizeRequester, sess)
	if err != nil {
		return nil, s.authorizeError(ctx, ar.AuthorizeRequester, err)
	}
	params := url.Values{"code": {resp.GetCode()}}
	return s.redirect(ar, params), nil
}

// verifyIDTokenHint checks that hint is an ID token this service signed,
// whether or not it has expired (OIDC Core §3.1.2.1: the hint's expiry does
// not matter), and returns its subject and audience.
func (s *Server) verifyIDTokenHint(hint string) (subject, audience string, err error) {
	v, err := s.signer.Verify(hint)
	if err != nil {
		return "", "", err
	}
	if v.Type != "" && v.Type != token.TypeIDToken {
		return "", "", errors.New("oauth: the hint is not an ID token")
	}
	var c struct {
		Issuer   string          `json:"iss"`
		Subject  string          `json:"sub"`
		Audience json.RawMessage `json:"aud"`
		Nonce    *string         `json:"nonce"`
		AtHash   *string         `json:"at_hash"`
	}
	if err := json.Unmarshal(v.Payload, &c); err != nil {
		return "", "", fmt.Errorf("oauth: the hint's claims: %w", err)
	}
	var aud string
	if err := json.Unmarshal(c.Audience, &aud); err != nil {
		return "", "", fmt.Errorf("oauth: the hint's audience: %w", err)
	}
	if c.Issuer != s.cfg.Issuer || c.Subject == "" || aud == "" || aud == s.cfg.Issuer {
		// An access token has the issuer in its audience: it is no hint.
		return "", "", errors.New("oauth: the hint is not an ID token of this issuer")
	}
	return c.Subject, aud, nil
}

// IDTokenHint verifies an id_token_hint for logout and returns its subject
// and the client it was issued to.
func (s *Server) IDTokenHint(hint string) (subject, clientID string, err error) {
	return s.verifyIDTokenHint(hint)
}

// Client returns a registered client, or an error wrapping
// fosite.ErrNotFound.
func (s *Server) Client(ctx context.Context, id string) (fosite.Client, error) {
	return s.store.GetClient(ctx, id)
}

// RevokeSessionGrants ends the grants that client got through the browser
// session sid of subject: what RP-initiated logout revokes (other clients
// keep theirs).
func (s *Server) RevokeSessionGrants(ctx context.Context, subject, clientID, sid string) error {
	return s.store.RevokeSessionGrants(ctx, subject, clientID, func(data []byte) bool {
		var sr struct {
			Session token.Session `json:"session"`
		}
		return json.Unmarshal(data, &sr) == nil && sr.Session.SessionID == sid
	})
}
