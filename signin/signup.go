package signin

import (
	"context"
	"errors"
	"net/http"

	"idp/pages"
	"idp/password"
	"idp/picture"
	"idp/profile"
	"idp/storage"
)

// Registration creates accounts: *profile.Server, the same code as POST
// /v1/users, with the same rules, picture checks and clean-up.
type Registration interface {
	CreateAccount(ctx context.Context, in profile.SignupInput, inTx func(ctx context.Context, u *storage.User) error) (*storage.User, error)
	// MaxSignupBytes bounds a signup's body, picture included.
	MaxSignupBytes() int64
	// HoldBody takes what the body will put in the spool from the upload
	// budget; not ok while it stays taken.
	HoldBody(r *http.Request, limit int64) (release func(), ok bool)
	// ReadForm reads the form, its picture spooled to a file.
	ReadForm(r *http.Request, limit int64) ([]*picture.File, error)
	PasswordMinLength() int
}

func (h *Handler) handleSignupPage(w http.ResponseWriter, r *http.Request) {
	value := r.URL.Query().Get("continue")
	_, ar, ok := h.flowPage(w, r, value)
	if !ok {
		return
	}
	h.render(w, r, http.StatusOK, ar.UILocales, pages.Signup{
		Flow:        pages.Flow{Continue: value, RedirectURI: ar.GetRedirectURI().String()},
		Gender:      "unspecified",
		PasswordMin: h.d.Registration.PasswordMinLength(),
	})
}

// handleSignup takes the create-account form (multipart, with the optional
// picture): the account is created as POST /v1/users creates it, the
// browser is signed in as by a login, and the authorization request that
// sent the user here continues. What is wrong is shown beside its field,
// with what was typed kept (the password and the picture excepted).
func (h *Handler) handleSignup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	maxBody := h.d.Registration.MaxSignupBytes()
	if r.ContentLength > maxBody {
		h.render(w, r, http.StatusRequestEntityTooLarge, "", pages.Error{Message: pages.MsgPictureTooLarge})
		return
	}
	release, ok := h.d.Registration.HoldBody(r, maxBody)
	if !ok {
		w.Header().Set("Retry-After", "1")
		h.render(w, r, http.StatusServiceUnavailable, "", pages.Error{Message: pages.MsgUnavailable})
		return
	}
	defer release()
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	// The picture to a file as it arrives, the fields in memory.
	pictures, err := h.d.Registration.ReadForm(r, maxBody)
	defer profile.ClosePictures(pictures)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.render(w, r, http.StatusRequestEntityTooLarge, "", pages.Error{Message: pages.MsgPictureTooLarge})
			return
		}
		h.render(w, r, http.StatusBadRequest, "", pages.Error{Message: pages.MsgBadRequest})
		return
	}
	value := r.PostForm.Get("continue")
	f, ar, ok := h.flowPage(w, r, value)
	if !ok {
		return
	}
	in := profile.SignupInput{
		Username: r.PostForm.Get("username"), Password: r.PostForm.Get("password"), Email: r.PostForm.Get("email"),
		FirstName: r.PostForm.Get("first_name"), LastName: r.PostForm.Get("last_name"), Gender: r.PostForm.Get("gender"),
	}
	page := pages.Signup{
		Flow:     pages.Flow{Continue: value, RedirectURI: ar.GetRedirectURI().String()},
		Username: in.Username, Email: in.Email, FirstName: in.FirstName, LastName: in.LastName, Gender: in.Gender,
		Errors:      map[string]pages.Message{},
		PasswordMin: h.d.Registration.PasswordMinLength(),
	}
	fail := func(status int) { h.render(w, r, status, ar.UILocales, page) }
	if err := h.d.Pages.CSRF().Verify(r, pages.PurposeSignup); err != nil {
		page.Error = pages.MsgFormExpired
		fail(http.StatusForbidden)
		return
	}
	if in.Picture, in.HasPicture, err = profile.FormPicture(pictures); err != nil {
		page.Error = pages.MsgBadRequest
		fail(http.StatusBadRequest)
		return
	}

	u, err := h.d.Registration.CreateAccount(ctx, in, nil)
	var invalid *profile.ValidationError
	var taken *profile.TakenError
	switch {
	case err == nil:
	case errors.As(err, &invalid):
		for _, fe := range invalid.Errors {
			if _, seen := page.Errors[fe.Field]; !seen {
				page.Errors[fe.Field] = fieldMessage(fe)
			}
		}
		fail(http.StatusUnprocessableEntity)
		return
	case errors.As(err, &taken):
		for _, field := range taken.Fields {
			page.Errors[field] = fieldMessage(profile.FieldError{Field: field, Code: "taken"})
		}
		fail(http.StatusConflict)
		return
	case errors.Is(err, profile.ErrPictureTooLarge):
		page.Errors["picture"] = pages.MsgPictureTooLarge
		fail(http.StatusRequestEntityTooLarge)
		return
	case errors.Is(err, profile.ErrNotImage):
		page.Errors["picture"] = pages.MsgPictureNotImage
		fail(http.StatusUnsupportedMediaType)
		return
	case errors.Is(err, password.ErrBusy):
		w.Header().Set("Retry-After", "1")
		page.Error = pages.MsgUnavailable
		fail(http.StatusServiceUnavailable)
		return
	default:
		h.unavailable(w, r, ar.UILocales, "create an account", err)
		return
	}
	if err := h.startSession(w, r, u.ID, []string{"pwd"}, false); err != nil {
		// The account exists; the user can log in with it.
		h.unavailable(w, r, ar.UILocales, "create the browser session", err)
		return
	}
	pages.SeeOther(w, r, h.resumeURL(flow{Params: f.Params, Started: f.Started}))
}
