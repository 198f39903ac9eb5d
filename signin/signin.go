// Package signin is the browser sign-in of CONTRACT §6: the authorization
// endpoint's side that involves the user (who is signed in, whether they
// must log in again, whether they consented), the login, consent and logout
// pages, and RP-initiated logout. Package oauth checks the protocol and
// issues codes; package session keeps the browser sessions, package
// consent the answers; package pages draws what the browser gets.
package signin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/ory/fosite"

	"idp/account"
	"idp/oauth"
	"idp/pages"
	"idp/password"
	"idp/ratelimit"
	"idp/session"
	"idp/storage"
)

// Paths of the routes this package serves besides the pages' own.
const (
	AuthorizePath = "/oauth2/authorize"
	ResumePath    = "/oauth2/authorize/resume"
	LogoutPath    = "/oauth2/logout"
)

// maxFormBytes bounds every form this package reads but the sign-up's.
const maxFormBytes = 64 << 10

// Authorizer is the protocol side: package oauth.
type Authorizer interface {
	ParseAuthorize(ctx context.Context, r *http.Request) (*oauth.AuthorizeRequest, *oauth.AuthorizeError)
	Authorize(ctx context.Context, ar *oauth.AuthorizeRequest, g oauth.Grant) (*oauth.Redirect, *oauth.AuthorizeError)
	ErrorRedirect(ar *oauth.AuthorizeRequest, code, description string) *oauth.Redirect
	IDTokenHint(hint string) (subject, clientID string, err error)
	Client(ctx context.Context, id string) (fosite.Client, error)
	RevokeSessionGrants(ctx context.Context, subject, clientID, sid string) error
}

// Accounts checks passwords, with the same lock-out and timing as the
// password grant.
type Accounts interface {
	Authenticate(ctx context.Context, login, password, from string) (*storage.User, error)
}

// Sessions keeps the browser sessions: package session.
type Sessions interface {
	Create(ctx context.Context, userID int64, methods []string, userAgent string, remember bool) (string, *session.Session, error)
	Lookup(ctx context.Context, token string) (*session.Session, error)
	Delete(ctx context.Context, id string) error
}

// Consents remembers what users allowed: package consent.
type Consents interface {
	Covers(ctx context.Context, userID int64, clientID string, scopes []string) (bool, error)
	Grant(ctx context.Context, userID int64, clientID string, scopes []string) error
}

// Config holds what New needs besides its dependencies.
type Config struct {
	// FlowKey signs the authorization requests carried through the pages:
	// at least 32 random bytes, the same on every replica.
	FlowKey []byte
	// Cookies names and shapes the session cookie.
	Cookies session.Cookies
	// Guard limits login attempts per client address; nil limits nothing.
	Guard *ratelimit.Guard
	// ObserveAuthorize is told the outcome of each authorization request
	// ("code", "login", "consent" for a page shown, or the error code);
	// ObserveLogin the method and outcome of each login. Either may be nil.
	ObserveAuthorize func(outcome string)
	ObserveLogin     func(method, outcome string)
	Logger           *slog.Logger
	Now              func() time.Time
}

// Deps are the parts the sign-in works with.
type Deps struct {
	OAuth    Authorizer
	Accounts Accounts
	Sessions Sessions
	Consents Consents
	Pages    *pages.Pages
	// Recovery and Registration are the password reset and the signup of
	// /v1 (*profile.Server), behind the "Forgot password?" and "Create
	// account" pages.
	Recovery     Recovery
	Registration Registration
	// Passkeys, when set, offers passkey sign-in on the login page.
	Passkeys Passkeys
}

// Handler serves the browser sign-in.
type Handler struct {
	cfg   Config
	d     Deps
	flows flowCodec
	log   *slog.Logger
	now   func() time.Time
}

// New returns the sign-in handler.
func New(cfg Config, d Deps) (*Handler, error) {
	if len(cfg.FlowKey) < 32 {
		return nil, fmt.Errorf("signin: flow key has %d bytes, need at least 32", len(cfg.FlowKey))
	}
	if d.OAuth == nil || d.Accounts == nil || d.Sessions == nil || d.Consents == nil || d.Pages == nil ||
		d.Recovery == nil || d.Registration == nil {
		return nil, errors.New("signin: a dependency is missing")
	}
	h := &Handler{cfg: cfg, d: d, log: cfg.Logger, now: cfg.Now}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.flows = flowCodec{key: cfg.FlowKey, now: h.now}
	return h, nil
}

// Mount adds the sign-in routes to r.
func (h *Handler) Mount(r chi.Router) {
	p := h.d.Pages.Paths()
	r.Get(AuthorizePath, h.handleAuthorize)
	r.Post(AuthorizePath, h.handleAuthorize)
	r.Get(ResumePath, h.handleResume)
	r.Get(p.Login, h.handleLoginPage)
	r.With(h.limit("login")).Post(p.Login, h.handleLogin)
	if h.d.Passkeys != nil {
		r.With(h.limit("passkey-options")).Post(p.Login+"/passkey/options", h.handlePasskeyOptions)
	}
	r.Get(p.Consent, h.handleConsentPage)
	r.Post(p.Consent, h.handleConsent)
	r.Get(p.Forgot, h.handleForgotPage)
	r.With(h.limit("page-forgot")).Post(p.Forgot, h.handleForgot)
	r.Get(p.Signup, h.handleSignupPage)
	r.With(h.limit("page-signup")).Post(p.Signup, h.handleSignup)
	r.Get(LogoutPath, h.handleLogout)
	r.Post(LogoutPath, h.handleLogout)
	r.Get("/pages/*", h.d.Pages.Handler().ServeHTTP)
}

// limit rate-limits a form per client address, answering with a page.
func (h *Handler) limit(name string) func(http.Handler) http.Handler {
	return h.cfg.Guard.Limit(name, func(w http.ResponseWriter, r *http.Request, wait time.Duration) {
		w.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
		h.render(w, r, http.StatusTooManyRequests, "", pages.Error{Message: pages.MsgTooManyTries})
	})
}

func (h *Handler) observeAuthorize(outcome string) {
	if h.cfg.ObserveAuthorize != nil {
		h.cfg.ObserveAuthorize(outcome)
	}
}

func (h *Handler) observeLogin(method, outcome string) {
	if h.cfg.ObserveLogin != nil {
		h.cfg.ObserveLogin(method, outcome)
	}
}

// render draws a page; a failure to draw it is the service's own and is
// logged (Render has answered 500 by then).
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, uiLocales string, page pages.Page) {
	if err := h.d.Pages.Render(w, r, status, uiLocales, page); err != nil {
		h.log.ErrorContext(r.Context(), "render page", "err", err)
	}
}

// parseForm bounds and parses a form body. It reports whether it answered
// the request itself (with an error page).
func (h *Handler) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		status := http.StatusBadRequest
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			status = http.StatusRequestEntityTooLarge
		}
		h.render(w, r, status, "", pages.Error{Message: pages.MsgBadRequest})
		return true
	}
	return false
}

// currentSession is the browser's live session, or nil.
func (h *Handler) currentSession(r *http.Request) (*session.Session, error) {
	tok, ok := h.cfg.Cookies.Read(r)
	if !ok {
		return nil, nil
	}
	s, err := h.d.Sessions.Lookup(r.Context(), tok)
	if errors.Is(err, session.ErrNotFound) {
		return nil, nil
	}
	return s, err
}

// maxRedirectQuery bounds the query of a POST answered by a GET
// (againByGet): half of what a request's header may hold (32 KiB), the
// rest left to the cookies and other headers that GET carries.
const maxRedirectQuery = 16 << 10

// againByGet answers a POST that came without the session cookie with a
// 303 to the GET form of path, params in its query, and reports whether it
// did. A browser leaves the SameSite=Lax cookie off a POST from another
// site (an app's auto-submitted form) but sends it on the top-level GET
// the 303 makes, so that GET sees the session the POST could not. The
// query is built from the parsed, bounded form, never from the raw body.
// A GET is never answered here, so the GET cannot loop back to itself.
func (h *Handler) againByGet(w http.ResponseWriter, r *http.Request, path string, params url.Values) bool {
	if r.Method != http.MethodPost {
		return false
	}
	if _, ok := h.cfg.Cookies.Read(r); ok {
		return false
	}
	q := params.Encode()
	if len(q) > maxRedirectQuery {
		h.render(w, r, http.StatusRequestEntityTooLarge, "", pages.Error{Message: pages.MsgBadRequest})
		return true
	}
	u := h.d.Pages.URL(path)
	if q != "" {
		u += "?" + q
	}
	pages.SeeOther(w, r, u)
	return true
}

// handleAuthorize is the authorization endpoint (OIDC Core §3.1.2.1), by
// GET or POST. A POST without the session cookie goes again by GET first
// (againByGet), before any session is looked up: without that a
// signed-in user would get login_required from another site's POST, or
// have to log in again.
func (h *Handler) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if h.parseForm(w, r) {
		return
	}
	params := url.Values{}
	for k, v := range r.Form {
		params[k] = v
	}
	if h.againByGet(w, r, AuthorizePath, params) {
		return
	}
	h.run(w, r, flow{Params: params, Started: h.now().Unix()})
}

// handleResume continues an authorization request after a page.
func (h *Handler) handleResume(w http.ResponseWriter, r *http.Request) {
	f, err := h.flows.open(r.URL.Query().Get("continue"))
	if err != nil {
		h.render(w, r, http.StatusBadRequest, "", pages.Error{Message: pages.MsgFormExpired})
		return
	}
	h.run(w, r, f)
}

// parse checks f's authorization request, as fosite reads it from a GET.
func (h *Handler) parse(r *http.Request, f flow) (*oauth.AuthorizeRequest, *oauth.AuthorizeError) {
	req := r.Clone(r.Context())
	req.Method = http.MethodGet
	req.URL = &url.URL{Path: AuthorizePath, RawQuery: f.Params.Encode()}
	req.Body = http.NoBody
	req.ContentLength = 0
	req.Header = r.Header.Clone()
	req.Header.Del("Content-Type")
	req.Form, req.PostForm, req.MultipartForm = nil, nil, nil
	if err := req.ParseForm(); err != nil {
		return nil, &oauth.AuthorizeError{Code: "invalid_request"}
	}
	return h.d.OAuth.ParseAuthorize(r.Context(), req)
}

// run decides an authorization request: a page (login or consent) when the
// user must act, else the code, else an error for the client.
func (h *Handler) run(w http.ResponseWriter, r *http.Request, f flow) {
	ctx := r.Context()
	ar, aerr := h.parse(r, f)
	if aerr != nil {
		h.authorizeFailed(w, r, f.Params.Get("ui_locales"), aerr)
		return
	}
	sess, err := h.currentSession(r)
	if err != nil {
		h.unavailable(w, r, ar.UILocales, "look up the browser session", err)
		return
	}
	if sess != nil && sess.Remember {
		// A remembered session's end moves with its use: so does the
		// cookie's.
		if tok, ok := h.cfg.Cookies.Read(r); ok {
			h.cfg.Cookies.Set(w, tok, sess)
		}
	}
	if h.needsLogin(ar, f, sess) {
		if ar.Prompted(oauth.PromptNone) {
			h.observeAuthorize("login_required")
			h.redirect(w, r, h.d.OAuth.ErrorRedirect(ar, "login_required", "The user is not signed in."))
			return
		}
		h.observeAuthorize("login")
		pages.SeeOther(w, r, h.d.Pages.URL(h.d.Pages.Paths().Login)+"?continue="+url.QueryEscape(h.flows.seal(flow{Params: f.Params, Started: f.Started})))
		return
	}
	if !ar.FirstParty() && f.ConsentedSID != sess.ID {
		needed := ar.Prompted(oauth.PromptConsent)
		if !needed {
			covered, err := h.d.Consents.Covers(ctx, sess.UserID, ar.ClientID(), ar.Scopes())
			if err != nil {
				h.unavailable(w, r, ar.UILocales, "read consent", err)
				return
			}
			needed = !covered
		}
		if needed {
			if ar.Prompted(oauth.PromptNone) {
				h.observeAuthorize("consent_required")
				h.redirect(w, r, h.d.OAuth.ErrorRedirect(ar, "consent_required", "The user has not allowed this application."))
				return
			}
			h.observeAuthorize("consent")
			pages.SeeOther(w, r, h.d.Pages.URL(h.d.Pages.Paths().Consent)+"?continue="+url.QueryEscape(h.flows.seal(flow{Params: f.Params, Started: f.Started})))
			return
		}
	}
	red, aerr := h.d.OAuth.Authorize(ctx, ar, oauth.Grant{
		UserID: sess.UserID, AuthTime: sess.AuthTime, Methods: sess.Methods, SessionID: sess.ID,
	})
	if aerr != nil {
		h.authorizeFailed(w, r, ar.UILocales, aerr)
		return
	}
	h.observeAuthorize("code")
	h.redirect(w, r, red)
}

// needsLogin reports whether the user must (again) log in for ar: no
// session; prompt=login or select_account, or a max_age the session's
// login is older than, unless that login happened during this request; an
// id_token_hint naming someone else.
func (h *Handler) needsLogin(ar *oauth.AuthorizeRequest, f flow, sess *session.Session) bool {
	if sess == nil {
		return true
	}
	if ar.HintSubject != "" && ar.HintSubject != strconv.FormatInt(sess.UserID, 10) {
		return true
	}
	fresh := !sess.AuthTime.Before(time.Unix(f.Started, 0))
	if fresh {
		return false
	}
	if ar.Prompted(oauth.PromptLogin) || ar.Prompted(oauth.PromptSelectAccount) {
		return true
	}
	return ar.HasMaxAge && h.now().Sub(sess.AuthTime) > ar.MaxAge
}

// authorizeFailed answers a failed authorization request: at the client's
// redirect URI when it is trusted, else with an error page.
func (h *Handler) authorizeFailed(w http.ResponseWriter, r *http.Request, uiLocales string, e *oauth.AuthorizeError) {
	h.observeAuthorize(e.Code)
	if e.Redirect != nil {
		h.redirect(w, r, e.Redirect)
		return
	}
	msg, status := pages.MsgBadRequest, http.StatusBadRequest
	switch {
	case e.UnknownClient:
		msg = pages.MsgUnknownClient
	case e.BadRedirectURI:
		msg = pages.MsgBadRedirectURI
	case e.Cause != nil:
		msg, status = pages.MsgUnavailable, http.StatusServiceUnavailable
	}
	h.render(w, r, status, uiLocales, pages.Error{Message: msg})
}

// redirect delivers an answer to the client: 303 to the redirect URI in
// query mode, the self-submitting form in form_post mode.
func (h *Handler) redirect(w http.ResponseWriter, r *http.Request, red *oauth.Redirect) {
	if !red.FormPost() {
		pages.SeeOther(w, r, red.URL())
		return
	}
	page := pages.FormPost{Action: red.URI}
	for k, vs := range red.Params {
		for _, v := range vs {
			page.Fields = append(page.Fields, pages.Field{Name: k, Value: v})
		}
	}
	slices.SortFunc(page.Fields, func(a, b pages.Field) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	h.render(w, r, http.StatusOK, "", page)
}

// unavailable answers a failure of a dependency (the database, most
// likely) with a page saying to retry, and logs it.
func (h *Handler) unavailable(w http.ResponseWriter, r *http.Request, uiLocales, what string, err error) {
	h.log.ErrorContext(r.Context(), "sign-in: "+what, "err", err)
	w.Header().Set("Retry-After", "5")
	h.render(w, r, http.StatusServiceUnavailable, uiLocales, pages.Error{Message: pages.MsgUnavailable})
}

// flowPage opens the flow of a page's continue value and checks its
// authorization request, for the login and consent pages. It reports false
// when it answered the request itself.
func (h *Handler) flowPage(w http.ResponseWriter, r *http.Request, value string) (flow, *oauth.AuthorizeRequest, bool) {
	f, err := h.flows.open(value)
	if err != nil {
		h.render(w, r, http.StatusBadRequest, "", pages.Error{Message: pages.MsgFormExpired})
		return flow{}, nil, false
	}
	ar, aerr := h.parse(r, f)
	if aerr != nil {
		h.authorizeFailed(w, r, f.Params.Get("ui_locales"), aerr)
		return flow{}, nil, false
	}
	return f, ar, true
}

// postedFlow reads a page's POST: the bounded form and the flow of its
// continue field, which it returns too. It reports false when it answered
// the request itself.
func (h *Handler) postedFlow(w http.ResponseWriter, r *http.Request) (flow, *oauth.AuthorizeRequest, string, bool) {
	if h.parseForm(w, r) {
		return flow{}, nil, "", false
	}
	value := r.PostForm.Get("continue")
	f, ar, ok := h.flowPage(w, r, value)
	return f, ar, value, ok
}

// resumeURL is where a page sends the browser to continue f.
func (h *Handler) resumeURL(f flow) string {
	return h.d.Pages.URL(ResumePath) + "?continue=" + url.QueryEscape(h.flows.seal(f))
}

func (h *Handler) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	value := r.URL.Query().Get("continue")
	if value == "" && r.URL.RawQuery == "" {
		// Typed in or bookmarked, not sent by an app: signing in here
		// leads to the account page, which starts its own request.
		pages.SeeOther(w, r, h.d.Pages.URL(h.d.Pages.Paths().Account))
		return
	}
	_, ar, ok := h.flowPage(w, r, value)
	if !ok {
		return
	}
	h.render(w, r, http.StatusOK, ar.UILocales, pages.Login{
		Flow:    pages.Flow{Continue: value, RedirectURI: ar.GetRedirectURI().String()},
		Login:   ar.LoginHint,
		Passkey: h.d.Passkeys != nil,
	})
}

// maxLoginField bounds what the login form's fields may hold: a login is
// an email address at most, a password at most 128 code points.
const maxLoginField = 1024

func (h *Handler) handleLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, ar, value, ok := h.postedFlow(w, r)
	if !ok {
		return
	}
	login, pw := r.PostForm.Get("login"), r.PostForm.Get("password")
	page := pages.Login{
		Flow:     pages.Flow{Continue: value, RedirectURI: ar.GetRedirectURI().String()},
		Login:    login,
		Remember: r.PostForm.Get("remember") != "",
		Passkey:  h.d.Passkeys != nil,
	}
	if len(login) > maxLoginField {
		page.Login = ""
	}
	method := "pwd"
	if r.PostForm.Get("method") == "passkey" {
		method = "passkey"
	}
	if err := h.d.Pages.CSRF().Verify(r, pages.PurposeLogin); err != nil {
		h.observeLogin(method, "csrf")
		page.Error = pages.MsgFormExpired
		h.render(w, r, http.StatusForbidden, ar.UILocales, page)
		return
	}
	if method == "passkey" {
		userID, ok := h.passkeyLogin(w, r, ar.UILocales, page)
		if !ok {
			return
		}
		if err := h.startSession(w, r, userID, passkeyMethods, page.Remember); err != nil {
			h.observeLogin("passkey", "error")
			h.unavailable(w, r, ar.UILocales, "create the browser session", err)
			return
		}
		h.observeLogin("passkey", "success")
		pages.SeeOther(w, r, h.resumeURL(flow{Params: f.Params, Started: f.Started}))
		return
	}
	if login == "" || pw == "" || len(login) > maxLoginField || len(pw) > maxLoginField {
		h.observeLogin("pwd", "invalid")
		page.Error = pages.MsgLoginFailed
		h.render(w, r, http.StatusBadRequest, ar.UILocales, page)
		return
	}
	u, err := h.d.Accounts.Authenticate(ctx, login, pw, ratelimit.ClientAddr(ctx))
	var locked *account.LockedError
	switch {
	case err == nil:
	case errors.Is(err, account.ErrInvalidCredentials):
		h.observeLogin("pwd", "invalid")
		page.Error = pages.MsgLoginFailed
		h.render(w, r, http.StatusBadRequest, ar.UILocales, page)
		return
	case errors.As(err, &locked):
		h.observeLogin("pwd", "locked")
		w.Header().Set("Retry-After", ratelimit.RetryAfter(locked.RetryAfter))
		page.Error = pages.MsgTooManyTries
		h.render(w, r, http.StatusTooManyRequests, ar.UILocales, page)
		return
	case errors.Is(err, password.ErrBusy):
		h.observeLogin("pwd", "busy")
		w.Header().Set("Retry-After", "1")
		page.Error = pages.MsgUnavailable
		h.render(w, r, http.StatusServiceUnavailable, ar.UILocales, page)
		return
	default:
		h.observeLogin("pwd", "error")
		h.unavailable(w, r, ar.UILocales, "authenticate", err)
		return
	}
	if err := h.startSession(w, r, u.ID, []string{"pwd"}, page.Remember); err != nil {
		h.observeLogin("pwd", "error")
		h.unavailable(w, r, ar.UILocales, "create the browser session", err)
		return
	}
	h.observeLogin("pwd", "success")
	pages.SeeOther(w, r, h.resumeURL(flow{Params: f.Params, Started: f.Started}))
}

// startSession signs the browser in: a new session (never the one it had,
// so that a session id planted before the login is worthless after it),
// and the old one ended.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, userID int64, methods []string, remember bool) error {
	ctx := r.Context()
	if old, err := h.currentSession(r); err == nil && old != nil {
		if err := h.d.Sessions.Delete(ctx, old.ID); err != nil {
			return err
		}
	}
	tok, s, err := h.d.Sessions.Create(ctx, userID, methods, r.UserAgent(), remember)
	if err != nil {
		return err
	}
	h.cfg.Cookies.Set(w, tok, s)
	return nil
}

func (h *Handler) handleConsentPage(w http.ResponseWriter, r *http.Request) {
	value := r.URL.Query().Get("continue")
	f, ar, ok := h.flowPage(w, r, value)
	if !ok {
		return
	}
	sess, err := h.currentSession(r)
	if err != nil {
		h.unavailable(w, r, ar.UILocales, "look up the browser session", err)
		return
	}
	if sess == nil {
		// Signed out meanwhile: the request starts over at the login.
		pages.SeeOther(w, r, h.resumeURL(flow{Params: f.Params, Started: f.Started}))
		return
	}
	h.render(w, r, http.StatusOK, ar.UILocales, pages.Consent{
		Flow:       pages.Flow{Continue: value, RedirectURI: ar.GetRedirectURI().String()},
		ClientName: ar.ClientID(),
		Scopes:     ar.Scopes(),
	})
}

func (h *Handler) handleConsent(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, ar, _, ok := h.postedFlow(w, r)
	if !ok {
		return
	}
	if err := h.d.Pages.CSRF().Verify(r, pages.PurposeConsent); err != nil {
		h.render(w, r, http.StatusForbidden, ar.UILocales, pages.Error{Message: pages.MsgFormExpired})
		return
	}
	sess, err := h.currentSession(r)
	if err != nil {
		h.unavailable(w, r, ar.UILocales, "look up the browser session", err)
		return
	}
	next := flow{Params: f.Params, Started: f.Started}
	if sess == nil {
		pages.SeeOther(w, r, h.resumeURL(next))
		return
	}
	switch r.PostForm.Get("decision") {
	case "allow":
		if err := h.d.Consents.Grant(ctx, sess.UserID, ar.ClientID(), ar.Scopes()); err != nil {
			h.unavailable(w, r, ar.UILocales, "remember consent", err)
			return
		}
		next.ConsentedSID = sess.ID
		pages.SeeOther(w, r, h.resumeURL(next))
	case "deny":
		h.observeAuthorize("access_denied")
		h.redirect(w, r, h.d.OAuth.ErrorRedirect(ar, "access_denied", "The user did not allow the request."))
	default:
		h.render(w, r, http.StatusBadRequest, ar.UILocales, pages.Error{Message: pages.MsgBadRequest})
	}
}
