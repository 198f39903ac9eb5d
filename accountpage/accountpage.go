// Package accountpage is the account page of CONTRACT §7, ISSUER/account:
// a signed-in person's names, gender, picture, email address, password,
// live sessions, data export and account deletion, server-rendered, every
// action a plain form. It is a first-party client of the browser sign-in:
// a browser without a session is sent through the authorization endpoint
// (login, lock-out and every later sign-in method apply unchanged), and
// comes back signed in. The operations are the /v1 API's own Go methods
// (package profile), so the page and the API cannot drift apart.
package accountpage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"

	"idp/account"
	"idp/pages"
	"idp/picture"
	"idp/profile"
	"idp/ratelimit"
	"idp/session"
	"idp/storage"
)

// ClientID is the account page's own client: public, first-party (no
// consent), with one redirect URI, the page itself.
const ClientID = "idp-account"

// ReauthAfter is how old a session's login may be before the email change
// and the deletion ask for the password again: the window DELETE
// /v1/profile gives a token's login.
const ReauthAfter = profile.ReauthWindow

// maxFormBytes bounds a form without a picture.
const maxFormBytes = 64 << 10

// Sessions looks up browser sessions: *session.Store.
type Sessions interface {
	Lookup(ctx context.Context, token string) (*session.Session, error)
}

// Accounts reads users and checks passwords with the login's lock-out:
// *account.Service.
type Accounts interface {
	Get(ctx context.Context, id int64) (*storage.User, error)
	CheckPassword(ctx context.Context, userID int64, password, from string) (*storage.User, error)
}

// Profile is the user API's Go side: *profile.Server.
type Profile interface {
	UpdateProfile(ctx context.Context, u *storage.User, fields map[string]string) (*storage.User, error)
	ReplacePicture(ctx context.Context, u *storage.User, src picture.Source) (*storage.User, error)
	RemovePicture(ctx context.Context, u *storage.User) error
	PictureURL(ctx context.Context, u *storage.User) string
	ResendVerification(ctx context.Context, u *storage.User) error
	PasswordMinLength() int
	MaxSignupBytes() int64
	HoldBody(r *http.Request, limit int64) (release func(), ok bool)
	ReadForm(r *http.Request, limit int64) ([]*picture.File, error)
	ConfirmEmail(ctx context.Context, u *storage.User, code string) (changed bool, err error)
	RequestEmailChange(ctx context.Context, u *storage.User, newEmail, password, from string) error
	StartEmailChange(ctx context.Context, u *storage.User, newEmail string) error
	ChangePassword(ctx context.Context, u *storage.User, in profile.PasswordChange) (map[string]any, error)
	Sessions(ctx context.Context, userID int64, current profile.Current) ([]profile.Session, error)
	EndSession(ctx context.Context, userID int64, id string) error
	Export(ctx context.Context, userID int64) (profile.Export, error)
	Erase(ctx context.Context, userID int64) error
}

// Config holds what New needs besides its dependencies.
type Config struct {
	// Issuer is the public base URL; the redirect URI is Issuer + "/account".
	Issuer  string
	Cookies session.Cookies
	// Guard limits the page's posts per client address; nil limits nothing.
	Guard  *ratelimit.Guard
	Logger *slog.Logger
	Now    func() time.Time
	// ObserveEvent, when set, is told of the account events the page
	// causes itself (passkey_added, passkey_deleted); the others are
	// counted by the /v1 methods the page calls.
	ObserveEvent func(event string)
}

// Deps are the parts the page works with.
type Deps struct {
	// Passkeys, when set, shows the passkeys section (*passkey.Service).
	Passkeys profile.Passkeys
	Sessions Sessions
	Accounts Accounts
	Profile  Profile
	Pages    *pages.Pages
}

// Handler serves the account page.
type Handler struct {
	cfg Config
	d   Deps
	log *slog.Logger
	now func() time.Time
}

// New returns the account page.
func New(cfg Config, d Deps) (*Handler, error) {
	if d.Sessions == nil || d.Accounts == nil || d.Profile == nil || d.Pages == nil {
		return nil, errors.New("accountpage: a dependency is missing")
	}
	if _, err := url.Parse(cfg.Issuer); err != nil || cfg.Issuer == "" {
		return nil, fmt.Errorf("accountpage: issuer %q is not a URL", cfg.Issuer)
	}
	h := &Handler{cfg: cfg, d: d, log: cfg.Logger, now: cfg.Now}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// RedirectURI is the account client's one redirect URI.
func RedirectURI(issuer string) string { return issuer + "/account" }

// Mount adds the page's routes to r.
func (h *Handler) Mount(r chi.Router) {
	path := h.d.Pages.Paths().Account
	r.Get(path, h.handlePage)
	r.With(h.limit("account")).Post(path, h.handlePost)
	h.mountPasskeys(r)
}

// limit rate-limits the page's posts per client address, answering with a
// page.
func (h *Handler) limit(name string) func(http.Handler) http.Handler {
	return h.cfg.Guard.Limit(name, func(w http.ResponseWriter, r *http.Request, wait time.Duration) {
		w.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
		h.render(w, r, http.StatusTooManyRequests, pages.Error{Message: pages.MsgTooManyTries})
	})
}

func (h *Handler) observe(event string) {
	if h.cfg.ObserveEvent != nil {
		h.cfg.ObserveEvent(event)
	}
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, page pages.Page) {
	if err := h.d.Pages.Render(w, r, status, "", page); err != nil {
		h.log.ErrorContext(r.Context(), "render page", "err", err)
	}
}

// unavailable answers a failure of a dependency with a page saying to
// retry, and logs it.
func (h *Handler) unavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.log.ErrorContext(r.Context(), "account page: "+what, "err", err)
	w.Header().Set("Retry-After", "5")
	h.render(w, r, http.StatusServiceUnavailable, pages.Error{Message: pages.MsgUnavailable})
}

// signedIn is who the page serves: the browser session and its user.
type signedIn struct {
	sess *session.Session
	user *storage.User
}

// reauth reports whether the session's login is too old for a sensitive
// change without the password.
func (h *Handler) reauth(s signedIn) bool { return h.now().Sub(s.sess.AuthTime) > ReauthAfter }

// current is the browser's session and user; ok is false when there is
// none (or the user is gone), and err a failure to find out.
func (h *Handler) current(r *http.Request) (signedIn, bool, error) {
	tok, ok := h.cfg.Cookies.Read(r)
	if !ok {
		return signedIn{}, false, nil
	}
	sess, err := h.d.Sessions.Lookup(r.Context(), tok)
	if errors.Is(err, session.ErrNotFound) {
		return signedIn{}, false, nil
	}
	if err != nil {
		return signedIn{}, false, err
	}
	u, err := h.d.Accounts.Get(r.Context(), sess.UserID)
	if errors.Is(err, account.ErrNotFound) {
		return signedIn{}, false, nil
	}
	if err != nil {
		return signedIn{}, false, err
	}
	return signedIn{sess: sess, user: u}, true, nil
}

// signIn sends the browser through the authorization endpoint as the
// account client. The page needs the session the sign-in leaves, not
// tokens, so it does not redeem the code (which dies unused within
// minutes) and needs no state: nothing in the answer is read, only the
// session cookie the login set. PKCE is sent because the endpoint requires
// it of every public client.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	verifier := make([]byte, 32)
	rand.Read(verifier)
	sum := sha256.Sum256([]byte(base64.RawURLEncoding.EncodeToString(verifier)))
	q := url.Values{
		"client_id":             {ClientID},
		"response_type":         {"code"},
		"scope":                 {"openid"},
		"redirect_uri":          {RedirectURI(h.cfg.Issuer)},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	if l := r.URL.Query().Get("ui_locales"); l != "" && len(l) < 64 {
		q.Set("ui_locales", l)
	}
	pages.SeeOther(w, r, h.cfg.Issuer+"/oauth2/authorize?"+q.Encode())
}

func (h *Handler) handlePage(w http.ResponseWriter, r *http.Request) {
	s, ok, err := h.current(r)
	switch {
	case err != nil:
		h.unavailable(w, r, "look up the browser session", err)
		return
	case !ok:
		if r.URL.Query().Has("error") {
			// The sign-in said no (the user cancelled, say): no loop.
			h.render(w, r, http.StatusBadRequest, pages.Error{Message: pages.MsgBadRequest})
			return
		}
		h.signIn(w, r)
		return
	case r.URL.Query().Has("code"):
		// Back from the sign-in (code, state, iss): a clean address, so
		// that a reload or a bookmark does not carry them.
		pages.SeeOther(w, r, h.d.Pages.URL(h.d.Pages.Paths().Account))
		return
	}
	page, err := h.page(r.Context(), s)
	if err != nil {
		h.unavailable(w, r, "read the account", err)
		return
	}
	page.Notice = notices[r.URL.Query().Get("done")]
	h.render(w, r, http.StatusOK, page)
}

// page is the account page of s, without messages.
func (h *Handler) page(ctx context.Context, s signedIn) (pages.Account, error) {
	u := s.user
	var passkeys []pages.AccountPasskey
	if h.d.Passkeys != nil {
		list, err := h.d.Passkeys.List(ctx, u.ID)
		if err != nil {
			return pages.Account{}, err
		}
		for _, p := range list {
			ap := pages.AccountPasskey{ID: p.ID, Name: p.Name, Created: p.CreatedAt.UTC().Format(timeFormat)}
			if p.LastUsedAt != nil {
				ap.LastUsed = p.LastUsedAt.UTC().Format(timeFormat)
			}
			passkeys = append(passkeys, ap)
		}
	}
	list, err := h.d.Profile.Sessions(ctx, u.ID, profile.Current{BrowserSession: s.sess.ID})
	if err != nil {
		return pages.Account{}, err
	}
	sessions := make([]pages.AccountSession, 0, len(list))
	for _, l := range list {
		ps := pages.AccountSession{ID: l.ID, UserAgent: l.UserAgent, Current: l.Current,
			Created: l.CreatedAt.UTC().Format(timeFormat), LastUsed: l.LastUsedAt.UTC().Format(timeFormat)}
		if l.ClientID != nil {
			ps.Client = *l.ClientID
		}
		sessions = append(sessions, ps)
	}
	return pages.Account{
		Sessions: sessions,
		Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified,
		FirstName: u.FirstName, LastName: u.LastName, Gender: string(u.Gender),
		PictureURL:  h.d.Profile.PictureURL(ctx, u),
		Reauth:      h.reauth(s),
		PasswordMin: h.d.Profile.PasswordMinLength(),
		Errors:      map[string]pages.Message{},
		PasskeysOn:  h.d.Passkeys != nil,
		Passkeys:    passkeys,
	}, nil
}

// timeFormat is how the page shows a time: UTC to the minute, the same in
// every language.
const timeFormat = "2006-01-02 15:04 UTC"

// notices are the messages a finished action's redirect names (?done=).
var notices = map[string]pages.Message{
	"saved":             pages.MsgSaved,
	"verified":          pages.MsgEmailVerified,
	"verification-sent": pages.MsgVerificationSent,
	"email-change-sent": pages.MsgEmailChangeSent,
	"password-changed":  pages.MsgPasswordChanged,
	"session-ended":     pages.MsgSessionEnded,
	"passkey-added":     pages.MsgPasskeyAdded,
	"passkey-deleted":   pages.MsgPasskeyDeleted,
}

// done ends a successful action: 303 back to the page with its notice
// (Post/Redirect/Get, so that a reload does not post again).
func (h *Handler) done(w http.ResponseWriter, r *http.Request, notice string) {
	pages.SeeOther(w, r, h.d.Pages.URL(h.d.Pages.Paths().Account)+"?done="+url.QueryEscape(notice))
}

// ensure profile.Server keeps being a Profile.
var _ Profile = (*profile.Server)(nil)
