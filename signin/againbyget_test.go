package signin

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"idp/oauth"
	"idp/pages"
	"idp/session"
)

// refusingOAuth refuses every request and hint: what a handler asks of it
// shows that the handler went on instead of sending the request again by
// GET. Anything else it is asked panics.
type refusingOAuth struct{ Authorizer }

func (refusingOAuth) ParseAuthorize(context.Context, *http.Request) (*oauth.AuthorizeRequest, *oauth.AuthorizeError) {
	return nil, &oauth.AuthorizeError{Code: "invalid_request"}
}

func (refusingOAuth) IDTokenHint(string) (string, string, error) {
	return "", "", errors.New("refused")
}

func testHandler(t *testing.T) *Handler {
	t.Helper()
	p, err := pages.New(pages.Config{Issuer: "https://idp.example", CSRFKey: []byte(strings.Repeat("c", 32))})
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{
		cfg: Config{Cookies: session.Cookies{Secure: true}},
		d:   Deps{OAuth: refusingOAuth{}, Pages: p},
		log: slog.New(slog.DiscardHandler),
		now: time.Now,
	}
	h.flows = flowCodec{key: []byte(strings.Repeat("f", 32)), now: h.now}
	return h
}

// TestAgainByGet: a POST to the authorization or logout endpoint without
// the session cookie, as a browser sends another site's form (SameSite=Lax
// leaves the cookie off), is answered 303 to the GET form of the same
// endpoint with the parameters it reads in the query, before anything else
// is looked at; a GET, a POST with the cookie and the logout confirmation
// go on as before, so the GET cannot loop.
func TestAgainByGet(t *testing.T) {
	const issuer = "https://idp.example"
	cookie := &http.Cookie{Name: session.SecureCookieName, Value: base64.RawURLEncoding.EncodeToString(make([]byte, 32))}
	authorize := url.Values{
		"response_type": {"code"}, "client_id": {"rp"}, "redirect_uri": {"https://rp.example/cb"},
		"scope": {"openid profile"}, "state": {"s t&=x"}, "prompt": {"none"}, "unknown": {"kept"},
	}
	logout := url.Values{
		"id_token_hint": {"a.b.c"}, "post_logout_redirect_uri": {"https://rp.example/bye"}, "state": {"s&t"},
		"client_id": {"rp"}, "ui_locales": {"de"},
	}
	withUnknown := url.Values{"unknown": {"dropped"}, "logout_hint": {"dropped"}}
	for k, v := range logout {
		withUnknown[k] = v
	}
	for _, tc := range []struct {
		name     string
		method   string
		path     string
		query    string // the request URL's own query
		body     url.Values
		cookie   bool
		status   int
		location string // "" for no redirect
	}{
		{"authorize POST without the cookie", http.MethodPost, AuthorizePath, "", authorize, false,
			http.StatusSeeOther, issuer + AuthorizePath + "?" + authorize.Encode()},
		{"authorize POST with a query and a body", http.MethodPost, AuthorizePath, "nonce=n1", url.Values{"client_id": {"rp"}}, false,
			http.StatusSeeOther, issuer + AuthorizePath + "?client_id=rp&nonce=n1"},
		{"authorize POST with nothing", http.MethodPost, AuthorizePath, "", nil, false,
			http.StatusSeeOther, issuer + AuthorizePath},
		{"authorize POST too big for a URL", http.MethodPost, AuthorizePath, "", url.Values{"unknown": {strings.Repeat("x", maxRedirectQuery)}}, false,
			http.StatusRequestEntityTooLarge, ""},
		{"authorize POST with the cookie", http.MethodPost, AuthorizePath, "", authorize, true, http.StatusBadRequest, ""},
		{"authorize GET without the cookie", http.MethodGet, AuthorizePath, authorize.Encode(), nil, false, http.StatusBadRequest, ""},
		{"logout POST without the cookie", http.MethodPost, LogoutPath, "", logout, false,
			http.StatusSeeOther, issuer + LogoutPath + "?" + logout.Encode()},
		{"logout POST with unknown parameters", http.MethodPost, LogoutPath, "", withUnknown, false,
			http.StatusSeeOther, issuer + LogoutPath + "?" + logout.Encode()},
		{"logout POST with nothing", http.MethodPost, LogoutPath, "", nil, false,
			http.StatusSeeOther, issuer + LogoutPath},
		{"logout POST too big for a URL", http.MethodPost, LogoutPath, "", url.Values{"id_token_hint": {strings.Repeat("x", maxRedirectQuery)}}, false,
			http.StatusRequestEntityTooLarge, ""},
		{"logout POST with the cookie", http.MethodPost, LogoutPath, "", logout, true, http.StatusOK, ""},
		{"logout GET without the cookie", http.MethodGet, LogoutPath, logout.Encode(), nil, false, http.StatusOK, ""},
		{"logout POST repeating a parameter", http.MethodPost, LogoutPath, "", url.Values{"state": {"a", "b"}}, false, http.StatusBadRequest, ""},
		{"logout confirmation without the cookie", http.MethodPost, LogoutPath, "", url.Values{"decision": {"logout"}, "continue": {"x"}}, false,
			http.StatusBadRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := testHandler(t)
			target := issuer + tc.path
			if tc.query != "" {
				target += "?" + tc.query
			}
			var r *http.Request
			if tc.method == http.MethodPost {
				r = httptest.NewRequest(tc.method, target, strings.NewReader(tc.body.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			} else {
				r = httptest.NewRequest(tc.method, target, nil)
			}
			if tc.cookie {
				r.AddCookie(cookie)
			}
			w := httptest.NewRecorder()
			if tc.path == AuthorizePath {
				h.handleAuthorize(w, r)
			} else {
				h.handleLogout(w, r)
			}
			if w.Code != tc.status || w.Header().Get("Location") != tc.location {
				t.Errorf("%d %q, want %d %q", w.Code, w.Header().Get("Location"), tc.status, tc.location)
			}
		})
	}
}
