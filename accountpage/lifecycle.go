package accountpage

import (
	"errors"
	"net/http"

	"idp/account"
	"idp/pages"
	"idp/profile"
	"idp/ratelimit"
)

// lifecycle runs the actions that change how the account is reached or
// whether it exists. It reports false for an action it does not know.
func (h *Handler) lifecycle(f form, action string) bool {
	switch action {
	case "verify-email":
		h.confirmEmail(f)
	case "change-email":
		h.changeEmail(f)
	case "change-password":
		h.changePassword(f)
	case "end-session":
		h.endSession(f)
	case "export":
		h.export(f)
	case "delete-account":
		h.deleteAccount(f)
	default:
		return false
	}
	return true
}

func (h *Handler) confirmEmail(f form) {
	code := f.r.PostForm.Get("code")
	if code == "" {
		h.fail(f, http.StatusBadRequest, "", map[string]pages.Message{"code": pages.MsgRequired})
		return
	}
	_, err := h.d.Profile.ConfirmEmail(f.r.Context(), f.s.user, code)
	switch {
	case err == nil:
		h.done(f.w, f.r, "verified")
	case errors.Is(err, account.ErrBadCode):
		h.fail(f, http.StatusBadRequest, "", map[string]pages.Message{"code": pages.MsgCodeInvalid})
	case errors.Is(err, account.ErrTaken):
		h.fail(f, http.StatusConflict, "", map[string]pages.Message{"code": pages.MsgEmailTaken})
	default:
		h.unavailable(f.w, f.r, "confirm the email address", err)
	}
}

// changeEmail asks for the password only when the session's login is
// older than ReauthAfter: a moment after signing in, the person at the
// browser has just proven who they are.
func (h *Handler) changeEmail(f form) {
	ctx := f.r.Context()
	newEmail := f.r.PostForm.Get("new_email")
	var err error
	if h.reauth(f.s) {
		err = h.d.Profile.RequestEmailChange(ctx, f.s.user, newEmail, f.r.PostForm.Get("password"), ratelimit.ClientAddr(ctx))
	} else {
		err = h.d.Profile.StartEmailChange(ctx, f.s.user, newEmail)
	}
	var invalid *profile.ValidationError
	switch {
	case err == nil:
		h.done(f.w, f.r, "email-change-sent")
	case errors.As(err, &invalid):
		h.fail(f, http.StatusUnprocessableEntity, "", fieldMessages(invalid.Errors, map[string]string{"password": "email_password"}))
	default:
		h.passwordChecked(f, "email_password", err)
	}
}

// changePassword always takes the current password, as the API does; the
// page's own session stays, every other login ends.
func (h *Handler) changePassword(f form) {
	ctx := f.r.Context()
	_, err := h.d.Profile.ChangePassword(ctx, f.s.user, profile.PasswordChange{
		Current: f.r.PostForm.Get("current_password"), New: f.r.PostForm.Get("new_password"),
		From: ratelimit.ClientAddr(ctx), KeepSession: f.s.sess.ID,
	})
	var invalid *profile.ValidationError
	switch {
	case err == nil:
		h.done(f.w, f.r, "password-changed")
	case errors.As(err, &invalid):
		h.fail(f, http.StatusUnprocessableEntity, "", fieldMessages(invalid.Errors, nil))
	default:
		h.passwordChecked(f, "current_password", err)
	}
}

// endSession signs the user out of one of their logins; ending the page's
// own session is signing out here too.
func (h *Handler) endSession(f form) {
	err := h.d.Profile.EndSession(f.r.Context(), f.s.user.ID, f.r.PostForm.Get("id"))
	switch {
	case err == nil:
		h.done(f.w, f.r, "session-ended")
	case errors.Is(err, profile.ErrSessionNotFound):
		// Ended meanwhile, or never this user's: the list as it is now.
		h.fail(f, http.StatusNotFound, pages.MsgNotFound, nil)
	default:
		h.unavailable(f.w, f.r, "end a session", err)
	}
}

// export answers with the export of GET /v1/profile/export, as a
// download.
func (h *Handler) export(f form) {
	doc, err := h.d.Profile.Export(f.r.Context(), f.s.user.ID)
	if err != nil {
		h.unavailable(f.w, f.r, "export", err)
		return
	}
	if err := profile.WriteExport(f.w, f.s.user.ID, doc); err != nil {
		h.unavailable(f.w, f.r, "export", err)
	}
}

// deleteAccount erases the account after the box is ticked and, when the
// login is older than ReauthAfter, the password is given again.
func (h *Handler) deleteAccount(f form) {
	if f.r.PostForm.Get("confirm") != "yes" {
		h.fail(f, http.StatusBadRequest, "", map[string]pages.Message{"confirm": pages.MsgConfirmDeletion})
		return
	}
	if h.reauth(f.s) && !h.checkPassword(f, "delete_password") {
		return
	}
	if err := h.d.Profile.Erase(f.r.Context(), f.s.user.ID); err != nil {
		h.unavailable(f.w, f.r, "erase the account", err)
		return
	}
	h.cfg.Cookies.Clear(f.w)
	h.render(f.w, f.r, http.StatusOK, pages.AccountDeleted{})
}
