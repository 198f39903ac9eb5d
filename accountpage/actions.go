package accountpage

import (
	"errors"
	"mime"
	"net/http"

	"idp/account"
	"idp/pages"
	"idp/password"
	"idp/picture"
	"idp/profile"
	"idp/ratelimit"
)

// form is one posted action: who posts it and what it holds.
type form struct {
	w http.ResponseWriter
	r *http.Request
	s signedIn
	// pictures are the form's spooled pictures, removed when the post
	// is answered.
	pictures []*picture.File
}

// handlePost takes one of the page's forms: bounded, CSRF-checked, from a
// signed-in browser, dispatched by its "action".
func (h *Handler) handlePost(w http.ResponseWriter, r *http.Request) {
	pictures, release, ok := h.parse(w, r, true)
	if !ok {
		return
	}
	defer release()
	if err := h.d.Pages.CSRF().Verify(r, pages.PurposeAccount); err != nil {
		h.render(w, r, http.StatusForbidden, pages.Error{Message: pages.MsgFormExpired})
		return
	}
	s, ok, err := h.current(r)
	if err != nil {
		h.unavailable(w, r, "look up the browser session", err)
		return
	}
	if !ok {
		// Signed out meanwhile: sign in again, then the page.
		pages.SeeOther(w, r, h.d.Pages.URL(h.d.Pages.Paths().Account))
		return
	}
	f := form{w: w, r: r, s: s, pictures: pictures}
	switch r.PostForm.Get("action") {
	case "profile":
		h.updateProfile(f)
	case "picture":
		h.replacePicture(f)
	case "remove-picture":
		if err := h.d.Profile.RemovePicture(r.Context(), s.user); err != nil {
			h.unavailable(w, r, "remove the picture", err)
			return
		}
		h.done(w, r, "saved")
	case "resend-verification":
		if err := h.d.Profile.ResendVerification(r.Context(), s.user); err != nil {
			h.unavailable(w, r, "resend the verification", err)
			return
		}
		h.done(w, r, "verification-sent")
	default:
		if !h.lifecycle(f, r.PostForm.Get("action")) && !h.passkeyAction(f, r.PostForm.Get("action")) {
			h.render(w, r, http.StatusBadRequest, pages.Error{Message: pages.MsgBadRequest})
		}
	}
}

// parse bounds and parses the body: with pictures, multipart up to a
// signup's size, its pictures spooled and its bytes held from the upload
// budget until release, which removes them; any other form up to
// maxFormBytes. It reports whether the request may go on; if not, it has
// answered.
func (h *Handler) parse(w http.ResponseWriter, r *http.Request, pictures bool) (files []*picture.File, release func(), ok bool) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	release = func() {}
	if pictures && mt == "multipart/form-data" {
		limit := h.d.Profile.MaxSignupBytes()
		if r.ContentLength > limit {
			h.render(w, r, http.StatusRequestEntityTooLarge, pages.Error{Message: pages.MsgPictureTooLarge})
			return nil, nil, false
		}
		if release, ok = h.d.Profile.HoldBody(r, limit); !ok {
			w.Header().Set("Retry-After", "1")
			h.render(w, r, http.StatusServiceUnavailable, pages.Error{Message: pages.MsgUnavailable})
			return nil, nil, false
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		// The picture to a file as it arrives, the fields in memory.
		files, err = h.d.Profile.ReadForm(r, limit)
		unhold := release
		release = func() {
			profile.ClosePictures(files)
			unhold()
		}
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		err = r.ParseForm()
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			release()
			h.render(w, r, http.StatusRequestEntityTooLarge, pages.Error{Message: pages.MsgPictureTooLarge})
			return nil, nil, false
		}
		release()
		h.render(w, r, http.StatusBadRequest, pages.Error{Message: pages.MsgBadRequest})
		return nil, nil, false
	}
	return files, release, true
}

// fail shows the page again with what went wrong: field errors beside
// their fields, or msg for the whole page.
func (h *Handler) fail(f form, status int, msg pages.Message, fields map[string]pages.Message) {
	page, err := h.page(f.r.Context(), f.s)
	if err != nil {
		h.unavailable(f.w, f.r, "read the account", err)
		return
	}
	page.Error = msg
	for k, v := range fields {
		page.Errors[k] = v
	}
	h.render(f.w, f.r, status, page)
}

func (h *Handler) updateProfile(f form) {
	fields := map[string]string{}
	for _, k := range []string{"first_name", "last_name", "gender"} {
		if f.r.PostForm.Has(k) {
			fields[k] = f.r.PostForm.Get(k)
		}
	}
	_, err := h.d.Profile.UpdateProfile(f.r.Context(), f.s.user, fields)
	var invalid *profile.ValidationError
	switch {
	case err == nil:
		h.done(f.w, f.r, "saved")
	case errors.As(err, &invalid):
		h.fail(f, http.StatusUnprocessableEntity, "", fieldMessages(invalid.Errors, nil))
	default:
		h.unavailable(f.w, f.r, "update the profile", err)
	}
}

func (h *Handler) replacePicture(f form) {
	src, present, err := profile.FormPicture(f.pictures)
	switch {
	case err != nil:
		h.fail(f, http.StatusBadRequest, "", map[string]pages.Message{"picture": pages.MsgPictureNotImage})
		return
	case !present:
		h.fail(f, http.StatusUnprocessableEntity, "", map[string]pages.Message{"picture": pages.MsgRequired})
		return
	}
	_, err = h.d.Profile.ReplacePicture(f.r.Context(), f.s.user, src)
	var invalid *profile.ValidationError
	switch {
	case err == nil:
		h.done(f.w, f.r, "saved")
	case errors.Is(err, profile.ErrPictureTooLarge):
		h.fail(f, http.StatusRequestEntityTooLarge, "", map[string]pages.Message{"picture": pages.MsgPictureTooLarge})
	case errors.Is(err, profile.ErrNotImage):
		h.fail(f, http.StatusUnsupportedMediaType, "", map[string]pages.Message{"picture": pages.MsgPictureNotImage})
	case errors.As(err, &invalid):
		h.fail(f, http.StatusUnprocessableEntity, "", fieldMessages(invalid.Errors, nil))
	case errors.Is(err, profile.ErrPicturesBusy):
		f.w.Header().Set("Retry-After", "1")
		h.fail(f, http.StatusServiceUnavailable, pages.MsgUnavailable, nil)
	default:
		h.unavailable(f.w, f.r, "replace the picture", err)
	}
}

// checkPassword is the re-authentication: the password typed into field,
// checked with the login's lock-out. It reports whether it is right; if
// not, it has answered.
func (h *Handler) checkPassword(f form, field string) bool {
	pw := f.r.PostForm.Get("password")
	if pw == "" {
		h.fail(f, http.StatusUnprocessableEntity, "", map[string]pages.Message{field: pages.MsgPasswordNeeded})
		return false
	}
	_, err := h.d.Accounts.CheckPassword(f.r.Context(), f.s.user.ID, pw, ratelimit.ClientAddr(f.r.Context()))
	return h.passwordChecked(f, field, err)
}

// passwordChecked answers a failed password check and reports whether err
// is none.
func (h *Handler) passwordChecked(f form, field string, err error) bool {
	var locked *account.LockedError
	switch {
	case err == nil:
		return true
	case errors.Is(err, account.ErrInvalidCredentials):
		h.fail(f, http.StatusBadRequest, "", map[string]pages.Message{field: pages.MsgPasswordWrong})
	case errors.As(err, &locked):
		f.w.Header().Set("Retry-After", ratelimit.RetryAfter(locked.RetryAfter))
		h.fail(f, http.StatusTooManyRequests, pages.MsgTooManyTries, nil)
	case errors.Is(err, password.ErrBusy):
		f.w.Header().Set("Retry-After", "1")
		h.fail(f, http.StatusServiceUnavailable, pages.MsgUnavailable, nil)
	default:
		h.unavailable(f.w, f.r, "check the password", err)
	}
	return false
}

// fieldMessages are the page's texts for /v1 field errors, under the
// page's field names (rename maps a /v1 field to the page's, where they
// differ).
func fieldMessages(errs []profile.FieldError, rename map[string]string) map[string]pages.Message {
	out := map[string]pages.Message{}
	for _, fe := range errs {
		field := fe.Field
		if to, ok := rename[field]; ok {
			field = to
		}
		if _, seen := out[field]; !seen {
			out[field] = pages.FieldMessage(fe.Field, fe.Code)
		}
	}
	return out
}
