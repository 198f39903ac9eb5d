package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeIDP answers every call idp-load makes the way idp does, with the
// checks that matter to the load: refresh tokens are single use (a reused
// one is counted and refused), bearer tokens must have been issued, and the
// password grant has two "hashing slots" whose queue times out with 503
// temporarily_unavailable, so that a flood sees the server's overload answer.
type fakeIDP struct {
	t *testing.T

	mu        sync.Mutex
	users     map[string]string // username → password
	live      map[string]bool   // refresh tokens not yet used
	issued    map[string]bool   // access tokens
	reused    int               // refresh tokens presented twice
	requests  map[string]int    // by path
	n         int
	serviceID string
	secret    string

	slots chan struct{}

	// The browser sign-in: pending authorization requests by continue
	// value, browser sessions, codes not yet redeemed.
	flows       map[string]url.Values
	sessions    map[string]bool
	codes       map[string]string // code → its PKCE challenge
	codeReuses  int               // codes presented twice, or unknown
	pageLogins  int               // successful POST /login
	csrfRefused int
}

// The fake's sign-in names and shapes, as idp's (pages/csrf.go,
// session/cookie.go).
const (
	fakeCSRFCookie    = "idp_csrf"
	fakeSessionCookie = "idp_session"
	fakeRedirectURI   = "http://127.0.0.1/callback"
)

// fakeLoginPage is the login form as idp draws it, with html/template's
// escaping of the values (the continue value has characters it escapes).
var fakeLoginPage = template.Must(template.New("login").Parse(`<!doctype html><html><body><main>
<form method="post" action="/logout"><input type="hidden" name="csrf_token" value="wrong"></form>
<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<input type="hidden" name="continue" value="{{.Continue}}">
<input id="login" name="login" type="text" required>
<input id="password" name="password" type="password" required>
<label><input type="checkbox" name="remember" value="1"> Keep me signed in</label>
<button type="submit">Sign in</button>
</form></main></body></html>`))

func newFakeIDP(t *testing.T) (*fakeIDP, *httptest.Server) {
	f := &fakeIDP{
		t: t, users: map[string]string{}, live: map[string]bool{}, issued: map[string]bool{},
		requests: map[string]int{}, serviceID: "svc", secret: "s3cr3t/+=", slots: make(chan struct{}, 2),
		flows: map[string]url.Values{}, sessions: map[string]bool{}, codes: map[string]string{},
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeIDP) jwt() string {
	f.n++
	return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"n":%d}`, f.n)) + ".sig"
}

// tokens issues an access token, an ID token and a refresh token.
func (f *fakeIDP) tokens() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, rt := f.jwt(), fmt.Sprintf("rt-%d", f.n)
	f.issued[at], f.live[rt] = true, true
	return map[string]any{"access_token": at, "id_token": f.jwt(), "refresh_token": rt, "token_type": "Bearer", "expires_in": 900}
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeIDP) bearerOK(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	defer f.mu.Unlock()
	return ok && f.issued[tok]
}

func (f *fakeIDP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests[r.URL.Path]++
	f.mu.Unlock()
	switch r.Method + " " + r.URL.Path {
	case "GET /healthz":
		w.Write([]byte("ok\n"))
	case "GET /.well-known/openid-configuration", "GET /.well-known/jwks.json":
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		writeJSONStatus(w, http.StatusOK, map[string]string{"issuer": "http://fake"})
	case "POST /v1/users":
		var req map[string]string
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req["client_id"] != "mobile" || r.Header.Get("Content-Type") != "application/json" {
			writeJSONStatus(w, http.StatusBadRequest, map[string]string{"title": "bad signup"})
			return
		}
		f.mu.Lock()
		_, taken := f.users[req["username"]]
		if !taken {
			f.users[req["username"]] = req["password"]
		}
		f.mu.Unlock()
		if taken {
			writeJSONStatus(w, http.StatusConflict, map[string]string{"title": "taken"})
			return
		}
		writeJSONStatus(w, http.StatusCreated, map[string]any{"user": map[string]any{"username": req["username"]}, "tokens": f.tokens()})
	case "POST /oauth2/token":
		f.token(w, r)
	case "GET /oauth2/authorize":
		f.authorize(w, r)
	case "GET /login":
		f.loginPage(w, r)
	case "POST /login":
		f.login(w, r)
	case "GET /userinfo", "GET /v1/profile":
		if !f.bearerOK(r) {
			writeJSONStatus(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
			return
		}
		writeJSONStatus(w, http.StatusOK, map[string]string{"sub": "1"})
	case "GET /v1/users/stats":
		if !f.bearerOK(r) {
			writeJSONStatus(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
			return
		}
		writeJSONStatus(w, http.StatusOK, map[string]any{"user_ids": []int{1, 2}, "count_female": 1, "count_male": 1, "count_unspecified": 0})
	default:
		http.NotFound(w, r)
	}
}

// hashSlot waits briefly for one of the two hashing slots, as idp's hasher
// does, and holds it for a hash's time; false when the queue timed out.
func (f *fakeIDP) hashSlot() bool {
	select {
	case f.slots <- struct{}{}:
	case <-time.After(5 * time.Millisecond):
		return false
	}
	time.Sleep(2 * time.Millisecond)
	<-f.slots
	return true
}

func (f *fakeIDP) cookie(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// authorize answers an authorization request of mobile with PKCE: a code
// for a signed-in browser, login_required for prompt=none without one,
// else the login page.
func (f *fakeIDP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != "mobile" || q.Get("redirect_uri") != fakeRedirectURI || q.Get("response_type") != "code" ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("nonce") == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	redirect := func(v url.Values) {
		v.Set("state", q.Get("state"))
		v.Set("iss", "http://fake")
		http.Redirect(w, r, fakeRedirectURI+"?"+v.Encode(), http.StatusSeeOther)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sessions[f.cookie(r, fakeSessionCookie)] {
		f.n++
		code := fmt.Sprintf("code-%d", f.n)
		f.codes[code] = q.Get("code_challenge")
		redirect(url.Values{"code": {code}})
		return
	}
	if q.Get("prompt") == "none" {
		redirect(url.Values{"error": {"login_required"}})
		return
	}
	f.n++
	cont := fmt.Sprintf("flow+%d/=", f.n)
	f.flows[cont] = q
	http.Redirect(w, r, "/login?continue="+url.QueryEscape(cont), http.StatusSeeOther)
}

func (f *fakeIDP) csrfToken(cookie string) string { return "csrf-" + cookie }

func (f *fakeIDP) loginPage(w http.ResponseWriter, r *http.Request) {
	cont := r.URL.Query().Get("continue")
	f.mu.Lock()
	_, ok := f.flows[cont]
	f.n++
	n := f.n
	f.mu.Unlock()
	if !ok {
		http.Error(w, "form expired", http.StatusBadRequest)
		return
	}
	ck := f.cookie(r, fakeCSRFCookie)
	if ck == "" {
		ck = fmt.Sprintf("c%d", n)
		http.SetCookie(w, &http.Cookie{Name: fakeCSRFCookie, Value: ck, Path: "/", HttpOnly: true})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fakeLoginPage.Execute(w, map[string]string{"CSRF": f.csrfToken(ck), "Continue": cont})
}

// login is the login form's POST: CSRF token bound to the cookie, a live
// continue value, a hashing slot (503 when the queue is full), the password.
func (f *fakeIDP) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	cont := r.PostForm.Get("continue")
	f.mu.Lock()
	_, ok := f.flows[cont]
	f.mu.Unlock()
	if !ok {
		http.Error(w, "form expired", http.StatusBadRequest)
		return
	}
	if ck := f.cookie(r, fakeCSRFCookie); ck == "" || r.PostForm.Get("csrf_token") != f.csrfToken(ck) {
		f.mu.Lock()
		f.csrfRefused++
		f.mu.Unlock()
		http.Error(w, "form expired", http.StatusForbidden)
		return
	}
	if !f.hashSlot() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	want, ok := f.users[r.PostForm.Get("login")]
	if !ok || want != r.PostForm.Get("password") {
		http.Error(w, "wrong login", http.StatusBadRequest)
		return
	}
	f.n++
	sess := fmt.Sprintf("s%d", f.n)
	f.sessions[sess] = true
	f.pageLogins++
	http.SetCookie(w, &http.Cookie{Name: fakeSessionCookie, Value: sess, Path: "/", HttpOnly: true})
	http.Redirect(w, r, "/oauth2/authorize/resume?continue="+url.QueryEscape(cont), http.StatusSeeOther)
}

// redeem is the authorization_code grant: a code once, with the verifier
// of its challenge.
func (f *fakeIDP) redeem(w http.ResponseWriter, r *http.Request) {
	code := r.PostForm.Get("code")
	f.mu.Lock()
	challenge, ok := f.codes[code]
	delete(f.codes, code)
	if !ok {
		f.codeReuses++
	}
	f.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if !ok || r.PostForm.Get("client_id") != "mobile" || r.PostForm.Get("redirect_uri") != fakeRedirectURI ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
		writeJSONStatus(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	tok := f.tokens()
	delete(tok, "refresh_token")
	writeJSONStatus(w, http.StatusOK, tok)
}

func (f *fakeIDP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSONStatus(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "password":
		if r.PostForm.Get("client_id") != "mobile" || r.PostForm.Get("scope") != loginScope {
			writeJSONStatus(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
			return
		}
		if !f.hashSlot() {
			writeJSONStatus(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
			return
		}
		f.mu.Lock()
		want, ok := f.users[r.PostForm.Get("username")]
		f.mu.Unlock()
		if !ok || want != r.PostForm.Get("password") {
			writeJSONStatus(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
			return
		}
		writeJSONStatus(w, http.StatusOK, f.tokens())
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		f.mu.Lock()
		live := f.live[rt]
		if live {
			delete(f.live, rt)
		} else {
			f.reused++
		}
		f.mu.Unlock()
		if !live {
			writeJSONStatus(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
			return
		}
		writeJSONStatus(w, http.StatusOK, f.tokens())
	case "authorization_code":
		f.redeem(w, r)
	case "client_credentials":
		// RFC 6749 §2.3.1: the id and secret are form-encoded inside Basic.
		id, secret, ok := r.BasicAuth()
		secret, err := url.QueryUnescape(secret)
		if !ok || err != nil || id != f.serviceID || secret != f.secret {
			writeJSONStatus(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
			return
		}
		tok := f.tokens()
		delete(tok, "refresh_token")
		delete(tok, "id_token")
		writeJSONStatus(w, http.StatusOK, tok)
	default:
		writeJSONStatus(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
	}
}
