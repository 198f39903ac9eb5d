package signin

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"idp/account"
	"idp/pages"
	"idp/password"
	"idp/profile"
	"idp/ratelimit"
)

// Recovery is the password reset by emailed code: *profile.Server, the
// same code as POST /v1/password/forgot and /v1/password/reset, with the
// same quotas, timing and single-use codes.
type Recovery interface {
	Forgot(ctx context.Context, login, from string) error
	ResetPassword(ctx context.Context, login, code, newPassword string) ([]profile.FieldError, error)
	PasswordMinLength() int
}

// The values of the forgot form's "step" field, and of the GET page's
// query: which of the three steps the browser is at, or "done" for the
// login page the reset ends on.
const (
	stepLogin    = "login"
	stepCode     = "code"
	stepPassword = "password"
	stepDone     = "done"
)

// maxCodeField bounds the code field: a code is 8 digits.
const maxCodeField = 64

// handleForgotPage shows a step of the reset that needs no secret in the
// URL: asking for the login, asking for the code (after it was mailed),
// and the login page once the password is changed.
func (h *Handler) handleForgotPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	value := q.Get("continue")
	_, ar, ok := h.flowPage(w, r, value)
	if !ok {
		return
	}
	fl := pages.Flow{Continue: value, RedirectURI: ar.GetRedirectURI().String()}
	switch q.Get("step") {
	case stepCode:
		login := q.Get("login")
		if login == "" || len(login) > maxLoginField {
			h.render(w, r, http.StatusOK, ar.UILocales, h.forgotPage(fl, pages.ForgotLogin))
			return
		}
		page := h.forgotPage(fl, pages.ForgotCode)
		page.Login, page.Notice = login, pages.MsgCodeSent
		h.render(w, r, http.StatusOK, ar.UILocales, page)
	case stepDone:
		// The login page of the same request, saying what happened.
		h.render(w, r, http.StatusOK, ar.UILocales, pages.Login{Flow: fl, Notice: pages.MsgPasswordChanged})
	default:
		page := h.forgotPage(fl, pages.ForgotLogin)
		page.Login = ar.LoginHint
		h.render(w, r, http.StatusOK, ar.UILocales, page)
	}
}

func (h *Handler) forgotPage(fl pages.Flow, step pages.ForgotStep) pages.Forgot {
	return pages.Forgot{Flow: fl, Step: step, PasswordMin: h.d.Recovery.PasswordMinLength()}
}

// handleForgot takes the forms of the reset, one step per POST:
//
//  1. the login: a code is mailed (or not: the answer is the same, after
//     the same time, whether the account exists), then 303 to the page
//     asking for it;
//  2. the code: carried, unchecked, to the page asking for the new
//     password, in the form and never in a URL, as it is a secret;
//  3. code and new password: the reset itself, then 303 to the login page
//     of the same request, which handleForgotPage draws with the notice
//     that the password changed. A wrong, used or expired code, or an
//     unknown login, shows the code page again with one message for all.
func (h *Handler) handleForgot(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if h.parseForm(w, r) {
		return
	}
	value := r.PostForm.Get("continue")
	_, ar, ok := h.flowPage(w, r, value)
	if !ok {
		return
	}
	fl := pages.Flow{Continue: value, RedirectURI: ar.GetRedirectURI().String()}
	login := r.PostForm.Get("login")
	if len(login) > maxLoginField {
		login = ""
	}
	step, purpose := pages.ForgotLogin, pages.PurposeForgotLogin
	switch r.PostForm.Get("step") {
	case stepLogin:
	case stepCode:
		step, purpose = pages.ForgotCode, pages.PurposeForgotCode
	case stepPassword:
		step, purpose = pages.ForgotPassword, pages.PurposeForgotPassword
	default:
		h.render(w, r, http.StatusBadRequest, ar.UILocales, pages.Error{Message: pages.MsgBadRequest})
		return
	}
	page := h.forgotPage(fl, step)
	page.Login = login
	fail := func(status int, msg pages.Message) {
		page.Error = msg
		h.render(w, r, status, ar.UILocales, page)
	}
	if err := h.d.Pages.CSRF().Verify(r, purpose); err != nil {
		// Nothing of the refused form is carried on: the password step
		// falls back to asking for the code.
		if step == pages.ForgotPassword {
			page.Step = pages.ForgotCode
		}
		fail(http.StatusForbidden, pages.MsgFormExpired)
		return
	}
	if login == "" {
		page.Step = pages.ForgotLogin
		fail(http.StatusBadRequest, pages.MsgRequired)
		return
	}
	code := r.PostForm.Get("code")
	if step != pages.ForgotLogin && (code == "" || len(code) > maxCodeField) {
		page.Step = pages.ForgotCode
		fail(http.StatusBadRequest, pages.MsgCodeInvalid)
		return
	}

	switch step {
	case pages.ForgotLogin:
		if err := h.d.Recovery.Forgot(ctx, login, ratelimit.ClientAddr(ctx)); err != nil {
			h.recoveryFailed(w, r, ar.UILocales, "send a reset code", err)
			return
		}
		q := url.Values{"continue": {value}, "step": {stepCode}, "login": {login}}
		pages.SeeOther(w, r, h.d.Pages.URL(h.d.Pages.Paths().Forgot)+"?"+q.Encode())

	case pages.ForgotCode:
		page.Step, page.Code = pages.ForgotPassword, code
		h.render(w, r, http.StatusOK, ar.UILocales, page)

	case pages.ForgotPassword:
		fields, err := h.d.Recovery.ResetPassword(ctx, login, code, r.PostForm.Get("new_password"))
		switch {
		case errors.Is(err, account.ErrBadCode):
			page.Step = pages.ForgotCode
			fail(http.StatusBadRequest, pages.MsgCodeInvalid)
		case err != nil:
			h.recoveryFailed(w, r, ar.UILocales, "reset the password", err)
		case len(fields) > 0:
			// The code stays usable: the user picks another password.
			page.Code = code
			fail(http.StatusUnprocessableEntity, fieldMessage(fields[0]))
		default:
			q := url.Values{"continue": {value}, "step": {stepDone}}
			pages.SeeOther(w, r, h.d.Pages.URL(h.d.Pages.Paths().Forgot)+"?"+q.Encode())
		}
	}
}

// recoveryFailed answers a failure of the reset's dependencies: busy
// hashing is a page asking to retry at once, anything else is logged.
func (h *Handler) recoveryFailed(w http.ResponseWriter, r *http.Request, uiLocales, what string, err error) {
	if errors.Is(err, password.ErrBusy) {
		w.Header().Set("Retry-After", "1")
		h.render(w, r, http.StatusServiceUnavailable, uiLocales, pages.Error{Message: pages.MsgUnavailable})
		return
	}
	h.unavailable(w, r, uiLocales, what, err)
}

// fieldMessage is the page's text for a field error of /v1.
func fieldMessage(fe profile.FieldError) pages.Message { return pages.FieldMessage(fe.Field, fe.Code) }
