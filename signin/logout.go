package signin

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"idp/pages"
)

// postLogoutClient is a client that registered where logout may send the
// browser back to.
type postLogoutClient interface {
	GetPostLogoutRedirectURIs() []string
}

// handleLogout is RP-Initiated Logout 1.0 (end_session_endpoint), by GET or
// POST, and the confirmation form it shows.
//
// With a valid id_token_hint or a client_id, and a post_logout_redirect_uri
// registered for that client, the session ends at once and the browser goes
// back there with state. Anything less asks the user to confirm and ends
// on the "signed out" page: a logout link anyone can forge must neither
// redirect anywhere unregistered nor end a session unasked without naming
// a registered place to return to.
//
// A POST without the session cookie (other than the confirmation form,
// which is this site's own and carries it) goes again by GET with the
// parameters above (againByGet): a browser leaves the SameSite=Lax cookie
// off another site's POST, and without it nothing would end while the app
// was still told that logout succeeded.
func (h *Handler) handleLogout(w http.ResponseWriter, r *http.Request) {
	if h.parseForm(w, r) {
		return
	}
	if r.Method == http.MethodPost && r.PostForm.Has("decision") {
		h.confirmLogout(w, r)
		return
	}
	for _, values := range r.Form {
		if len(values) > 1 {
			h.render(w, r, http.StatusBadRequest, "", pages.Error{Message: pages.MsgBadRequest})
			return
		}
	}
	if h.againByGet(w, r, LogoutPath, logoutParams(r.Form)) {
		return
	}
	uiLocales := r.Form.Get("ui_locales")
	clientID := r.Form.Get("client_id")
	hintSubject := ""
	if hint := r.Form.Get("id_token_hint"); hint != "" {
		sub, aud, err := h.d.OAuth.IDTokenHint(hint)
		if err != nil || clientID != "" && clientID != aud {
			// A hint that is not ours, or names another client than the
			// request does, earns no redirect.
			clientID, sub = "", ""
		} else {
			clientID = aud
		}
		hintSubject = sub
	}
	target := r.Form.Get("post_logout_redirect_uri")
	if clientID != "" && target != "" && h.registeredLogoutURI(r, clientID, target) {
		sess, err := h.currentSession(r)
		if err != nil {
			h.unavailable(w, r, uiLocales, "look up the browser session", err)
			return
		}
		if sess != nil && (hintSubject == "" || hintSubject == strconv.FormatInt(sess.UserID, 10)) {
			if err := h.endSession(r, sess.ID, sess.UserID, clientID); err != nil {
				h.unavailable(w, r, uiLocales, "end the browser session", err)
				return
			}
			h.cfg.Cookies.Clear(w)
		}
		u, _ := url.Parse(target) // registeredLogoutURI parsed it
		if st := r.Form.Get("state"); st != "" {
			q := u.Query()
			q.Set("state", st)
			u.RawQuery = q.Encode()
		}
		pages.SeeOther(w, r, u.String())
		return
	}
	params := url.Values{}
	if clientID != "" {
		params.Set("client_id", clientID)
	}
	if uiLocales != "" {
		params.Set("ui_locales", uiLocales)
	}
	h.render(w, r, http.StatusOK, uiLocales, pages.LogoutConfirm{
		Flow:       pages.Flow{Continue: h.flows.seal(flow{Params: params, Started: h.now().Unix()})},
		ClientName: clientID,
	})
}

// logoutParams are the parameters of form that handleLogout reads.
func logoutParams(form url.Values) url.Values {
	out := url.Values{}
	for _, k := range []string{"id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales"} {
		if v := form.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	return out
}

// registeredLogoutURI reports whether target is one of the client's
// registered post-logout redirect URIs, compared as exact strings.
func (h *Handler) registeredLogoutURI(r *http.Request, clientID, target string) bool {
	c, err := h.d.OAuth.Client(r.Context(), clientID)
	if err != nil {
		return false
	}
	pl, ok := c.(postLogoutClient)
	if !ok || !slices.Contains(pl.GetPostLogoutRedirectURIs(), target) {
		return false
	}
	_, err = url.Parse(target)
	return err == nil
}

// confirmLogout is the confirmation form's POST.
func (h *Handler) confirmLogout(w http.ResponseWriter, r *http.Request) {
	f, err := h.flows.open(r.PostForm.Get("continue"))
	if err != nil {
		h.render(w, r, http.StatusBadRequest, "", pages.Error{Message: pages.MsgFormExpired})
		return
	}
	uiLocales := f.Params.Get("ui_locales")
	if err := h.d.Pages.CSRF().Verify(r, pages.PurposeLogout); err != nil {
		h.render(w, r, http.StatusForbidden, uiLocales, pages.Error{Message: pages.MsgFormExpired})
		return
	}
	if r.PostForm.Get("decision") != "logout" {
		h.render(w, r, http.StatusBadRequest, uiLocales, pages.Error{Message: pages.MsgBadRequest})
		return
	}
	sess, err := h.currentSession(r)
	if err != nil {
		h.unavailable(w, r, uiLocales, "look up the browser session", err)
		return
	}
	if sess != nil {
		if err := h.endSession(r, sess.ID, sess.UserID, f.Params.Get("client_id")); err != nil {
			h.unavailable(w, r, uiLocales, "end the browser session", err)
			return
		}
	}
	h.cfg.Cookies.Clear(w)
	h.render(w, r, http.StatusOK, uiLocales, pages.SignedOut{})
}

// endSession ends a browser session and what clientID (when known) got
// through it; other clients keep their grants.
func (h *Handler) endSession(r *http.Request, sid string, userID int64, clientID string) error {
	ctx := r.Context()
	if clientID != "" {
		if err := h.d.OAuth.RevokeSessionGrants(ctx, strconv.FormatInt(userID, 10), clientID, sid); err != nil {
			return err
		}
	}
	return h.d.Sessions.Delete(ctx, sid)
}
