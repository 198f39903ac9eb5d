package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
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
}

func newFakeIDP(t *testing.T) (*fakeIDP, *httptest.Server) {
	f := &fakeIDP{
		t: t, users: map[string]string{}, live: map[string]bool{}, issued: map[string]bool{},
		requests: map[string]int{}, serviceID: "svc", secret: "s3cr3t/+=", slots: make(chan struct{}, 2),
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
		// A hashing slot, waited for briefly as idp's hasher does.
		select {
		case f.slots <- struct{}{}:
		case <-time.After(5 * time.Millisecond):
			writeJSONStatus(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
			return
		}
		time.Sleep(2 * time.Millisecond)
		<-f.slots
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
