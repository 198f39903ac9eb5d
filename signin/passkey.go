package signin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"idp/pages"
	"idp/ratelimit"
)

// Passkeys runs passkey sign-ins: package passkey.
type Passkeys interface {
	BeginLogin(ctx context.Context, mediation string) (challengeID string, options json.RawMessage, err error)
	FinishLogin(ctx context.Context, challengeID string, response []byte) (userID int64, err error)
}

// passkeyMethods are the amr values of a passkey sign-in: a hardware-bound
// key (hwk), unlocked by the user (user verification: user).
var passkeyMethods = []string{"hwk", "user"}

// passkeyCookie names the login challenge the browser asked for; it lives
// as long as the challenge, and SameSite=Strict keeps other sites' posts
// from carrying it.
const passkeyCookie = "idp_passkey"

// passkeyCookieAge is the cookie's life, that of a challenge (5 minutes).
const passkeyCookieAge = 300

// maxCredentialField bounds the posted AuthenticationResponseJSON.
const maxCredentialField = 16 << 10

func (h *Handler) passkeyCookieName() string {
	if h.cfg.Cookies.Secure {
		return "__Host-" + passkeyCookie
	}
	return passkeyCookie
}

// handlePasskeyOptions starts a passkey sign-in for the login page's
// script: the request options, and the challenge bound to this browser by
// a short-lived HttpOnly cookie. It is a POST with the login form's CSRF
// token, so another site cannot make a browser collect challenges.
func (h *Handler) handlePasskeyOptions(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if h.parseForm(w, r) {
		return
	}
	if err := h.d.Pages.CSRF().Verify(r, pages.PurposeLogin); err != nil {
		h.render(w, r, http.StatusForbidden, "", pages.Error{Message: pages.MsgFormExpired})
		return
	}
	mediation := r.PostForm.Get("mediation")
	if mediation != "" && mediation != "conditional" {
		h.render(w, r, http.StatusBadRequest, "", pages.Error{Message: pages.MsgBadRequest})
		return
	}
	id, opts, err := h.d.Passkeys.BeginLogin(r.Context(), mediation)
	if err != nil {
		h.unavailable(w, r, "", "begin passkey login", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: h.passkeyCookieName(), Value: id, Path: "/", MaxAge: passkeyCookieAge,
		HttpOnly: true, Secure: h.cfg.Cookies.Secure, SameSite: http.SameSiteStrictMode})
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", strconv.Itoa(len(opts)))
	w.Write(opts)
}

// passkeyLogin finishes a passkey sign-in posted with the login form
// (method=passkey, credential=<AuthenticationResponseJSON>). A refused
// assertion never touches the account's lock-out: nothing was guessed
// about a password, and the per-address limit of the login form bounds
// the tries. It reports the user signed in, or answers itself.
func (h *Handler) passkeyLogin(w http.ResponseWriter, r *http.Request, uiLocales string, page pages.Login) (int64, bool) {
	cred := r.PostForm.Get("credential")
	if h.d.Passkeys == nil || cred == "" {
		// The button without the script (no JavaScript).
		h.observeLogin("passkey", "no_script")
		page.Error = pages.MsgPasskeyNeedsJS
		h.render(w, r, http.StatusBadRequest, uiLocales, page)
		return 0, false
	}
	challenge := ""
	if c, err := r.Cookie(h.passkeyCookieName()); err == nil {
		challenge = c.Value
	}
	http.SetCookie(w, &http.Cookie{Name: h.passkeyCookieName(), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: h.cfg.Cookies.Secure, SameSite: http.SameSiteStrictMode})
	var userID int64
	var err error
	if len(cred) > maxCredentialField {
		err = errors.New("credential too large")
	} else {
		userID, err = h.d.Passkeys.FinishLogin(r.Context(), challenge, []byte(cred))
	}
	if err != nil {
		h.observeLogin("passkey", "invalid")
		h.log.InfoContext(r.Context(), "passkey sign-in refused", "err", err, "ip", ratelimit.ClientAddr(r.Context()))
		page.Error = pages.MsgPasskeyFailed
		h.render(w, r, http.StatusBadRequest, uiLocales, page)
		return 0, false
	}
	return userID, true
}
