package accountpage

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"idp/pages"
	"idp/passkey"
	"idp/profile"
)

// maxCredentialField bounds the posted RegistrationResponseJSON.
const maxCredentialField = 16 << 10

// mountPasskeys adds the registration endpoints the page's script uses:
// options (JSON), then the response posted as a form, answered like every
// other action of the page.
func (h *Handler) mountPasskeys(r chi.Router) {
	if h.d.Passkeys == nil {
		return
	}
	path := h.d.Pages.Paths().Account + "/passkeys"
	r.With(h.limit("account-passkey-options")).Post(path+"/registration", h.handlePasskeyOptions)
	r.With(h.limit("account-passkey")).Post(path, h.handlePasskeyCreate)
}

// signedInPost parses and checks a post of the page: its CSRF token and
// the browser's session. It reports false when it answered.
func (h *Handler) signedInPost(w http.ResponseWriter, r *http.Request) (signedIn, bool) {
	// Passkey posts carry no picture: a multipart body is not read.
	if _, _, ok := h.parse(w, r, false); !ok {
		return signedIn{}, false
	}
	if err := h.d.Pages.CSRF().Verify(r, pages.PurposeAccount); err != nil {
		h.render(w, r, http.StatusForbidden, pages.Error{Message: pages.MsgFormExpired})
		return signedIn{}, false
	}
	s, ok, err := h.current(r)
	if err != nil {
		h.unavailable(w, r, "look up the browser session", err)
		return signedIn{}, false
	}
	if !ok {
		pages.SeeOther(w, r, h.d.Pages.URL(h.d.Pages.Paths().Account))
		return signedIn{}, false
	}
	return s, true
}

func (h *Handler) handlePasskeyOptions(w http.ResponseWriter, r *http.Request) {
	s, ok := h.signedInPost(w, r)
	if !ok {
		return
	}
	opts, err := h.d.Passkeys.BeginRegistration(r.Context(), s.user.ID)
	if err != nil {
		h.unavailable(w, r, "begin passkey registration", err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", strconv.Itoa(len(opts)))
	w.Write(opts)
}

func (h *Handler) handlePasskeyCreate(w http.ResponseWriter, r *http.Request) {
	s, ok := h.signedInPost(w, r)
	if !ok {
		return
	}
	f := form{w: w, r: r, s: s}
	cred := r.PostForm.Get("credential")
	if cred == "" || len(cred) > maxCredentialField {
		h.fail(f, http.StatusBadRequest, pages.MsgPasskeyAddFailed, nil)
		return
	}
	_, err := h.d.Passkeys.FinishRegistration(r.Context(), s.user.ID, []byte(cred), r.PostForm.Get("name"))
	switch {
	case err == nil:
		h.observe("passkey_added")
		h.done(w, r, "passkey-added")
	case errors.Is(err, passkey.ErrRejected), errors.Is(err, passkey.ErrChallenge), errors.Is(err, passkey.ErrName):
		h.log.InfoContext(r.Context(), "passkey registration refused", "err", err)
		h.fail(f, http.StatusBadRequest, pages.MsgPasskeyAddFailed, nil)
	default:
		h.unavailable(w, r, "finish passkey registration", err)
	}
}

// passkeyAction runs the passkey buttons of the page's forms; it reports
// false for an action that is not one of them.
func (h *Handler) passkeyAction(f form, action string) bool {
	switch action {
	case "add-passkey", "rename-passkey", "delete-passkey":
	default:
		return false
	}
	if h.d.Passkeys == nil {
		h.fail(f, http.StatusNotFound, pages.MsgNotFound, nil)
		return true
	}
	ctx, id := f.r.Context(), f.r.PostForm.Get("id")
	var err error
	switch action {
	case "add-passkey":
		// The script takes this button over; without it, say why nothing
		// happens.
		h.fail(f, http.StatusBadRequest, pages.MsgPasskeyNeedsJS, nil)
		return true
	case "rename-passkey":
		_, err = h.d.Passkeys.Rename(ctx, f.s.user.ID, id, f.r.PostForm.Get("name"))
	case "delete-passkey":
		err = h.d.Passkeys.Delete(ctx, f.s.user.ID, id)
	}
	switch {
	case err == nil && action == "delete-passkey":
		h.observe("passkey_deleted")
		h.done(f.w, f.r, "passkey-deleted")
	case err == nil:
		h.done(f.w, f.r, "saved")
	case errors.Is(err, passkey.ErrName):
		h.fail(f, http.StatusBadRequest, pages.MsgPasskeyName, nil)
	case errors.Is(err, passkey.ErrNotFound):
		h.fail(f, http.StatusNotFound, pages.MsgNotFound, nil)
	default:
		h.unavailable(f.w, f.r, action, err)
	}
	return true
}

var _ profile.Passkeys = (*passkey.Service)(nil)
