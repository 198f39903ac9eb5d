package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"idp/database/databasetest"
	"idp/nativeapp"
	"idp/oauth"
)

const (
	signinPassword = "correct horse battery staple"
	loopbackCB     = "http://127.0.0.1/callback"
	webCB          = "http://127.0.0.1/rp/callback"
)

// signinSite is a server with a user, the first-party public client of the
// embedded default and a confidential third-party client "rp".
type signinSite struct {
	*testServer
	rpSecret string
}

func newSigninSite(t *testing.T, dbURL string, mutate ...func(*config)) *signinSite {
	t.Helper()
	s := startServer(t, dbURL, mutate...)
	s.mobile()
	s.createUser("ada", "ada@example.com", signinPassword)
	secret := s.createClient(oauth.NewClient{
		ID:                     "rp",
		GrantTypes:             []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken},
		Scopes:                 []string{"openid", "profile", "email", "offline_access"},
		RedirectURIs:           []string{webCB},
		PostLogoutRedirectURIs: []string{"http://127.0.0.1/rp/bye"},
	})
	return &signinSite{testServer: s, rpSecret: secret}
}

// pkce is a code verifier and its S256 challenge.
type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	v := oauth2.GenerateVerifier()
	sum := sha256.Sum256([]byte(v))
	return pkce{v, base64.RawURLEncoding.EncodeToString(sum[:])}
}

// authorizePath is an authorization request of client at redirect with
// PKCE, plus extra parameters (an empty value removes one).
func authorizePath(client, redirect string, p pkce, extra url.Values) string {
	q := url.Values{
		"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect},
		"scope": {"openid profile email"}, "state": {"state-1234"}, "nonce": {"nonce-5678"},
		"code_challenge": {p.challenge}, "code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		if len(v) == 1 && v[0] == "" {
			q.Del(k)
		} else {
			q[k] = v
		}
	}
	return "/oauth2/authorize?" + q.Encode()
}

// callback checks that p redirects to the client at redirect with the
// RFC 9207 iss and the state, and returns the redirect's parameters.
func (s *signinSite) callback(t *testing.T, p webPage, redirect string) url.Values {
	t.Helper()
	u := p.location(t)
	if got := u.Scheme + "://" + u.Host + u.Path; got != redirect {
		t.Fatalf("redirect to %s, want %s", u, redirect)
	}
	q := u.Query()
	if q.Get("iss") != s.URL {
		t.Errorf("redirect %s: iss %q, want %q", u, q.Get("iss"), s.URL)
	}
	if q.Get("state") != "state-1234" {
		t.Errorf("redirect %s: state %q", u, q.Get("state"))
	}
	return q
}

// redeem exchanges a code at the token endpoint.
func (s *signinSite) redeem(client, secret, code, redirect, verifier string) response {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	if secret == "" {
		form.Set("client_id", client)
		return s.postForm("/oauth2/token", form, "", "")
	}
	return s.postForm("/oauth2/token", form, client, secret)
}

// signIn runs the whole flow for the mobile client in b and returns the
// token response.
func (s *signinSite) signIn(t *testing.T, b *webBrowser, extra url.Values) map[string]any {
	t.Helper()
	p := newPKCE()
	page := b.get(authorizePath("mobile", loopbackCB, p, extra))
	if page.url.Path == "/login" {
		page = b.login(page, "ada", signinPassword, false)
	}
	q := s.callback(t, page, loopbackCB)
	res := s.redeem("mobile", "", q.Get("code"), loopbackCB, p.verifier)
	if res.status != http.StatusOK {
		t.Fatalf("redeem: %d %s", res.status, res.body)
	}
	return res.json(t)
}

// idClaims verifies an ID token with go-oidc and returns its claims.
func (s *signinSite) idClaims(t *testing.T, client, rawIDToken string) map[string]any {
	t.Helper()
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := provider.Verifier(&oidc.Config{ClientID: client}).Verify(ctx, rawIDToken)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := tok.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSignInRealClients(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL)
		ctx := context.Background()
		provider, err := oidc.NewProvider(ctx, s.URL)
		if err != nil {
			t.Fatal(err)
		}
		conf := &oauth2.Config{
			ClientID: "mobile", Endpoint: provider.Endpoint(), RedirectURL: "http://127.0.0.1:5555/callback",
			Scopes: []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess},
		}
		conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		verifier := oauth2.GenerateVerifier()
		authURL := conf.AuthCodeURL("state-1234", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-0S6_WzA2Mj"))
		b := newWebBrowser(t, s.testServer)
		page := b.get(authURL)
		if page.status != http.StatusOK || page.url.Path != "/login" {
			t.Fatalf("authorize: %d at %s", page.status, page.url)
		}
		before := time.Now().Add(-time.Second).Unix()
		q := s.callback(t, b.login(page, "ADA@example.com", signinPassword, true), "http://127.0.0.1:5555/callback")
		tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := tok.Extra("id_token").(string)
		idTok, err := provider.Verifier(&oidc.Config{ClientID: "mobile"}).Verify(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Nonce    string   `json:"nonce"`
			AuthTime int64    `json:"auth_time"`
			AMR      []string `json:"amr"`
			AZP      string   `json:"azp"`
			Username string   `json:"preferred_username"`
			SID      string   `json:"sid"`
		}
		if err := idTok.Claims(&c); err != nil {
			t.Fatal(err)
		}
		if c.Nonce != "n-0S6_WzA2Mj" || c.AuthTime < before || c.AZP != "mobile" || c.Username != "ada" ||
			len(c.AMR) != 1 || c.AMR[0] != "pwd" || c.SID == "" {
			t.Errorf("ID token claims %+v", c)
		}
		if tok.RefreshToken == "" {
			t.Fatal("no refresh token for offline_access")
		}
		info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil || info.Subject != idTok.Subject {
			t.Fatalf("userinfo: %v %+v", err, info)
		}
		// A refresh keeps sub, auth_time and azp, and carries no nonce.
		refreshed, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if err != nil {
			t.Fatal(err)
		}
		rc := s.idClaims(t, "mobile", refreshed.Extra("id_token").(string))
		if rc["sub"] != idTok.Subject || int64(rc["auth_time"].(float64)) != c.AuthTime || rc["azp"] != "mobile" || rc["nonce"] != nil {
			t.Errorf("refreshed ID token claims %v", rc)
		}
		// The session cookie of "keep me signed in" outlives the browser.
		var found bool
		for _, ck := range b.c.Jar.Cookies(page.url) {
			found = found || ck.Name == "idp_session"
		}
		if !found {
			t.Error("no session cookie")
		}
	})
}

func TestSignInConfidentialClientConsent(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL)
		b := newWebBrowser(t, s.testServer)
		s.signIn(t, b, nil) // signed in through the first-party app

		// A third-party client asks for consent; deny says access_denied.
		page := b.get(authorizePath("rp", webCB, pkce{}, url.Values{"code_challenge": {""}, "code_challenge_method": {""}}))
		if page.url.Path != "/consent" || !strings.Contains(page.body, "rp") {
			t.Fatalf("want the consent page, got %d %s", page.status, page.url)
		}
		q := s.callback(t, b.submit(page.form(t, "/consent"), nil, url.Values{"decision": {"deny"}}), webCB)
		if q.Get("error") != "access_denied" || q.Get("code") != "" {
			t.Fatalf("deny: %v", q)
		}
		// Allow, then redeem with client_secret_basic and client_secret_post.
		for _, basic := range []bool{true, false} {
			page = b.get(authorizePath("rp", webCB, pkce{}, url.Values{"code_challenge": {""}, "code_challenge_method": {""}}))
			if page.url.Path == "/consent" {
				if !basic {
					t.Fatal("consent asked again although it was given")
				}
				page = b.submit(page.form(t, "/consent"), nil, url.Values{"decision": {"allow"}})
			}
			q = s.callback(t, page, webCB)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {webCB}}
			var res response
			if basic {
				res = s.postForm("/oauth2/token", form, "rp", s.rpSecret)
			} else {
				form.Set("client_id", "rp")
				form.Set("client_secret", s.rpSecret)
				res = s.postForm("/oauth2/token", form, "", "")
			}
			if res.status != http.StatusOK {
				t.Fatalf("redeem (basic %v): %d %s", basic, res.status, res.body)
			}
			if m := res.json(t); m["id_token"] == nil || m["refresh_token"] != nil {
				t.Errorf("token response %v: want an ID token and no refresh token without offline_access", m)
			}
		}
		// prompt=consent asks again; offline_access needs consent too.
		page = b.get(authorizePath("rp", webCB, pkce{}, url.Values{"code_challenge": {""}, "code_challenge_method": {""},
			"prompt": {"consent"}, "scope": {"openid offline_access"}}))
		if page.url.Path != "/consent" || !strings.Contains(page.body, "stay signed in while you are away") {
			t.Fatalf("prompt=consent: %d %s", page.status, page.url)
		}
		q = s.callback(t, b.submit(page.form(t, "/consent"), nil, url.Values{"decision": {"allow"}}), webCB)
		res := s.postForm("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {webCB}}, "rp", s.rpSecret)
		m := res.json(t)
		rt, _ := m["refresh_token"].(string)
		if rt == "" {
			t.Fatalf("offline_access: %v", m)
		}
		// The refresh token of one client is refused for another.
		other := s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"mobile"}}, "", "")
		if other.status != http.StatusBadRequest || other.json(t)["error"] != "invalid_grant" {
			t.Errorf("refresh by another client: %d %s", other.status, other.body)
		}
		mine := s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "rp", s.rpSecret)
		if mine.status != http.StatusOK {
			t.Errorf("refresh by its client: %d %s", mine.status, mine.body)
		}
	})
}

// TestSignInConsentForNoScope: a request for no scope still tells the
// client who the user is, so a third-party client the user never allowed
// gets the consent page, and consent_required with prompt=none, never a
// code unasked. Once allowed, it is remembered; a first-party client never
// asks.
func TestSignInConsentForNoScope(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL)
		b := newWebBrowser(t, s.testServer)
		s.signIn(t, b, nil) // signed in through the first-party app only
		noScope := url.Values{"code_challenge": {""}, "code_challenge_method": {""}, "scope": {""}}
		silent := url.Values{"code_challenge": {""}, "code_challenge_method": {""}, "scope": {""}, "prompt": {"none"}}

		if q := s.callback(t, b.get(authorizePath("mobile", loopbackCB, newPKCE(), url.Values{"scope": {""}, "prompt": {"none"}})), loopbackCB); q.Get("code") == "" {
			t.Errorf("first-party client, no scope, prompt=none: %v", q)
		}
		q := s.callback(t, b.get(authorizePath("rp", webCB, pkce{}, silent)), webCB)
		if q.Get("error") != "consent_required" || q.Get("code") != "" {
			t.Fatalf("never allowed, no scope, prompt=none: %v", q)
		}
		page := b.get(authorizePath("rp", webCB, pkce{}, noScope))
		if page.url.Path != "/consent" || !strings.Contains(page.body, "know who you are") {
			t.Fatalf("never allowed, no scope: want the consent page saying what the client learns, got %d %s", page.status, page.url)
		}
		if q := s.callback(t, b.submit(page.form(t, "/consent"), nil, url.Values{"decision": {"allow"}}), webCB); q.Get("code") == "" {
			t.Fatalf("allowed: %v", q)
		}
		if q := s.callback(t, b.get(authorizePath("rp", webCB, pkce{}, silent)), webCB); q.Get("code") == "" {
			t.Errorf("allowed before, no scope, prompt=none: %v", q)
		}
		// What one user allowed covers no other.
		s.createUser("bob", "bob@example.com", signinPassword)
		bob := newWebBrowser(t, s.testServer)
		page = bob.get(authorizePath("mobile", loopbackCB, newPKCE(), nil))
		s.callback(t, bob.login(page, "bob", signinPassword, false), loopbackCB)
		if q := s.callback(t, bob.get(authorizePath("rp", webCB, pkce{}, silent)), webCB); q.Get("error") != "consent_required" {
			t.Errorf("another user, no scope, prompt=none: %v", q)
		}
	})
}

func TestSignInPromptMaxAgeHints(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL)
		s.createUser("bob", "bob@example.com", signinPassword)
		b := newWebBrowser(t, s.testServer)
		p := newPKCE()

		// prompt=none while signed out: login_required, no page.
		q := s.callback(t, b.get(authorizePath("mobile", loopbackCB, p, url.Values{"prompt": {"none"}})), loopbackCB)
		if q.Get("error") != "login_required" {
			t.Fatalf("prompt=none signed out: %v", q)
		}
		first := s.signIn(t, b, nil)
		idt := first["id_token"].(string)
		authTime := s.idClaims(t, "mobile", idt)["auth_time"].(float64)

		// prompt=none signed in: a code at once.
		q = s.callback(t, b.get(authorizePath("mobile", loopbackCB, p, url.Values{"prompt": {"none"}})), loopbackCB)
		if q.Get("code") == "" {
			t.Fatalf("prompt=none signed in: %v", q)
		}
		// max_age long: no login; id_token_hint of the same user: no login.
		for _, extra := range []url.Values{{"max_age": {"10000"}}, {"id_token_hint": {idt}, "prompt": {"none"}}} {
			q = s.callback(t, b.get(authorizePath("mobile", loopbackCB, p, extra)), loopbackCB)
			if q.Get("code") == "" {
				t.Errorf("%v: %v", extra, q)
			}
		}
		// prompt=login and max_age=1 (once a second has passed) ask for
		// the password again and give a later auth_time.
		for _, extra := range []url.Values{{"prompt": {"login"}}, {"max_age": {"1"}}} {
			time.Sleep(1100 * time.Millisecond)
			page := b.get(authorizePath("mobile", loopbackCB, p, extra))
			if page.url.Path != "/login" {
				t.Fatalf("%v: no login page: %d %s", extra, page.status, page.url)
			}
			time.Sleep(1100 * time.Millisecond)
			q = s.callback(t, b.login(page, "ada", signinPassword, false), loopbackCB)
			res := s.redeem("mobile", "", q.Get("code"), loopbackCB, p.verifier)
			later := s.idClaims(t, "mobile", res.json(t)["id_token"].(string))["auth_time"].(float64)
			if later <= authTime {
				t.Errorf("%v: auth_time %v not after %v", extra, later, authTime)
			}
			authTime = later
		}
		// An id_token_hint of someone else: login_required with
		// prompt=none, the login page without.
		bob := newWebBrowser(t, s.testServer)
		bp := newPKCE()
		page := bob.get(authorizePath("mobile", loopbackCB, bp, nil))
		q = s.callback(t, bob.login(page, "bob", signinPassword, false), loopbackCB)
		bobToken := s.redeem("mobile", "", q.Get("code"), loopbackCB, bp.verifier).json(t)["id_token"].(string)
		q = s.callback(t, b.get(authorizePath("mobile", loopbackCB, p, url.Values{"prompt": {"none"}, "id_token_hint": {bobToken}})), loopbackCB)
		if q.Get("error") != "login_required" {
			t.Errorf("hint of another user, prompt=none: %v", q)
		}
		if page := b.get(authorizePath("mobile", loopbackCB, p, url.Values{"id_token_hint": {bobToken}})); page.url.Path != "/login" {
			t.Errorf("hint of another user: %d %s", page.status, page.url)
		}
		// login_hint pre-fills the login field.
		page = newWebBrowser(t, s.testServer).get(authorizePath("mobile", loopbackCB, p, url.Values{"login_hint": {"someone@example.com"}}))
		if f := page.form(t, "/login"); f.fields.Get("login") != "someone@example.com" {
			t.Errorf("login_hint: login field %q", f.fields.Get("login"))
		}
	})
}

func TestSignInCodeReuse(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL)
		b := newWebBrowser(t, s.testServer)
		s.signIn(t, b, nil)
		p := newPKCE()
		scope := url.Values{"scope": {"openid profile offline_access"}}

		// Reused at once, and after a delay: invalid_grant, and what the
		// first redemption issued is revoked.
		for _, delay := range []time.Duration{0, 1500 * time.Millisecond} {
			q := s.callback(t, b.get(authorizePath("mobile", loopbackCB, p, scope)), loopbackCB)
			first := s.redeem("mobile", "", q.Get("code"), loopbackCB, p.verifier)
			if first.status != http.StatusOK {
				t.Fatalf("first redemption: %d %s", first.status, first.body)
			}
			at := first.json(t)["access_token"].(string)
			time.Sleep(delay)
			second := s.redeem("mobile", "", q.Get("code"), loopbackCB, p.verifier)
			if second.status != http.StatusBadRequest || second.json(t)["error"] != "invalid_grant" {
				t.Fatalf("second redemption after %v: %d %s", delay, second.status, second.body)
			}
			if res := s.get("/userinfo", at); res.status != http.StatusUnauthorized {
				t.Errorf("after %v: the first access token still works at userinfo: %d", delay, res.status)
			}
			rt := first.json(t)["refresh_token"].(string)
			if res := s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"mobile"}}, "", ""); res.status != http.StatusBadRequest {
				t.Errorf("after %v: the first refresh token still works: %d", delay, res.status)
			}
		}
		// Two redemptions at once: exactly one succeeds.
		for round := 0; round < 5; round++ {
			q := s.callback(t, b.get(authorizePath("mobile", loopbackCB, p, nil)), loopbackCB)
			var wg sync.WaitGroup
			statuses := make([]int, 4)
			for i := range statuses {
				wg.Go(func() { statuses[i] = s.redeem("mobile", "", q.Get("code"), loopbackCB, p.verifier).status })
			}
			wg.Wait()
			ok := 0
			for _, st := range statuses {
				if st == http.StatusOK {
					ok++
				} else if st != http.StatusBadRequest && st != http.StatusServiceUnavailable {
					t.Errorf("concurrent redemption: status %d", st)
				}
			}
			if ok != 1 {
				t.Fatalf("round %d: %d of %d concurrent redemptions succeeded: %v", round, ok, len(statuses), statuses)
			}
		}
	})
}

func TestSignInLogout(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL)
		b := newWebBrowser(t, s.testServer)
		mobile := s.signIn(t, b, url.Values{"scope": {"openid profile offline_access"}})
		// rp, with consent, through the same session (single sign-on).
		page := b.get(authorizePath("rp", webCB, pkce{}, url.Values{"code_challenge": {""}, "code_challenge_method": {""}, "scope": {"openid offline_access"}}))
		page = b.submit(page.form(t, "/consent"), nil, url.Values{"decision": {"allow"}})
		q := s.callback(t, page, webCB)
		rp := s.postForm("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {webCB}}, "rp", s.rpSecret).json(t)

		// An unregistered post_logout_redirect_uri: a confirmation, never
		// a redirect.
		page = b.get("/oauth2/logout?" + url.Values{"id_token_hint": {rp["id_token"].(string)}, "post_logout_redirect_uri": {"http://127.0.0.1/evil"}}.Encode())
		if page.status != http.StatusOK || len(page.forms(t)) != 1 {
			t.Fatalf("unregistered logout URI: %d %s", page.status, page.body)
		}
		// Registered: the session ends, the browser goes back with state.
		page = b.get("/oauth2/logout?" + url.Values{"id_token_hint": {rp["id_token"].(string)}, "post_logout_redirect_uri": {"http://127.0.0.1/rp/bye"}, "state": {"st"}}.Encode())
		if u := page.location(t); u.String() != "http://127.0.0.1/rp/bye?state=st" {
			t.Fatalf("logout redirect: %s", u)
		}
		q = s.callback(t, b.get(authorizePath("mobile", loopbackCB, newPKCE(), url.Values{"prompt": {"none"}})), loopbackCB)
		if q.Get("error") != "login_required" {
			t.Errorf("after logout, prompt=none: %v", q)
		}
		// rp's refresh token is revoked; the mobile app keeps its own.
		if res := s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rp["refresh_token"].(string)}}, "rp", s.rpSecret); res.status != http.StatusBadRequest {
			t.Errorf("rp refresh after logout: %d %s", res.status, res.body)
		}
		if res := s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {mobile["refresh_token"].(string)}, "client_id": {"mobile"}}, "", ""); res.status != http.StatusOK {
			t.Errorf("mobile refresh after rp's logout: %d %s", res.status, res.body)
		}
		// Without a hint: confirm, then "signed out".
		s.signIn(t, b, nil)
		page = b.get("/oauth2/logout")
		f := page.form(t, "/oauth2/logout")
		if _, ok := f.fields["csrf_token"]; !ok {
			t.Fatal("logout form without CSRF token")
		}
		page = b.submit(f, nil, url.Values{"decision": {"logout"}})
		if page.status != http.StatusOK || len(page.forms(t)) != 0 {
			t.Fatalf("confirmed logout: %d %s", page.status, page.body)
		}
		q = s.callback(t, b.get(authorizePath("mobile", loopbackCB, newPKCE(), url.Values{"prompt": {"none"}})), loopbackCB)
		if q.Get("error") != "login_required" {
			t.Errorf("after confirmed logout, prompt=none: %v", q)
		}
	})
}

// noFollow is a browser sharing b's cookies (or none, when b is nil) that
// stops at the server's first answer instead of following its redirects.
func noFollow(t *testing.T, s *testServer, b *webBrowser) *webBrowser {
	t.Helper()
	nb := newWebBrowser(t, s)
	if b != nil {
		nb.c.Jar = b.c.Jar
	}
	nb.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return nb
}

// crossSitePost posts form to path the way a browser sends another
// site's form (an app's auto-submitted one): without the SameSite=Lax
// session cookie. It returns the first answer, unfollowed.
func crossSitePost(t *testing.T, s *testServer, path string, form url.Values) webPage {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	return noFollow(t, s, nil).do(req)
}

// againByGet checks that p sends the browser to the GET form of path with
// want as its query, and returns that URL.
func againByGet(t *testing.T, s *testServer, p webPage, path string, want url.Values) string {
	t.Helper()
	u := p.location(t)
	if got := u.Scheme + "://" + u.Host + u.Path; got != s.URL+path {
		t.Fatalf("POST without the cookie: redirect to %s, want %s%s", u, s.URL, path)
	}
	if got := u.Query(); got.Encode() != want.Encode() {
		t.Errorf("POST without the cookie: redirect query %v, want %v", got, want)
	}
	return u.String()
}

// TestSignInCrossSitePostLogout: another site's app logs out by POST; the
// browser leaves the Lax session cookie off that POST, so it goes again by
// GET with its parameters, and that top-level GET (which carries the
// cookie) ends the session and revokes what the app got, before the
// browser goes back with state. Our own confirmation form and a POST that
// carries the cookie are answered at once; the GET never redirects to
// itself.
func TestSignInCrossSitePostLogout(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL)
		b := newWebBrowser(t, s.testServer)
		rpTokens := func() map[string]any {
			t.Helper()
			page := b.get(authorizePath("rp", webCB, pkce{}, url.Values{"code_challenge": {""}, "code_challenge_method": {""}, "scope": {"openid offline_access"}}))
			if page.url.Path == "/consent" {
				page = b.submit(page.form(t, "/consent"), nil, url.Values{"decision": {"allow"}})
			}
			q := s.callback(t, page, webCB)
			return s.postForm("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {webCB}}, "rp", s.rpSecret).json(t)
		}
		loggedOut := func(name string, rp, mobile map[string]any) {
			t.Helper()
			if q := s.callback(t, b.get(authorizePath("mobile", loopbackCB, newPKCE(), url.Values{"prompt": {"none"}})), loopbackCB); q.Get("error") != "login_required" {
				t.Errorf("%s: after logout, prompt=none: %v", name, q)
			}
			if res := s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rp["refresh_token"].(string)}}, "rp", s.rpSecret); res.status != http.StatusBadRequest {
				t.Errorf("%s: rp refresh after logout: %d %s", name, res.status, res.body)
			}
			if res := s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {mobile["refresh_token"].(string)}, "client_id": {"mobile"}}, "", ""); res.status != http.StatusOK {
				t.Errorf("%s: mobile refresh after rp's logout: %d %s", name, res.status, res.body)
			}
		}
		const bye = "http://127.0.0.1/rp/bye?state=st"

		for _, tc := range []struct {
			name  string
			extra url.Values // sent besides the hint, the URI and state
		}{
			{"hint", nil},
			{"hint, client_id, ui_locales and an unknown parameter", url.Values{"client_id": {"rp"}, "ui_locales": {"de"}, "unknown": {"x"}}},
		} {
			mobile := s.signIn(t, b, url.Values{"scope": {"openid profile offline_access"}})
			rp := rpTokens()
			form := url.Values{"id_token_hint": {rp["id_token"].(string)}, "post_logout_redirect_uri": {"http://127.0.0.1/rp/bye"}, "state": {"st"}}
			want := url.Values{}
			for k, v := range form {
				want[k] = v
			}
			for k, v := range tc.extra {
				form[k] = v
				if k != "unknown" {
					want[k] = v
				}
			}
			next := againByGet(t, s.testServer, crossSitePost(t, s.testServer, "/oauth2/logout", form), "/oauth2/logout", want)
			// The GET the 303 makes carries the cookie, and never
			// redirects to itself, with the cookie or without.
			if u := noFollow(t, s.testServer, nil).get(next).location(t); u.String() != bye {
				t.Errorf("%s: GET without a cookie: redirect to %s, want %s", tc.name, u, bye)
			}
			if u := noFollow(t, s.testServer, b).get(next).location(t); u.String() != bye {
				t.Fatalf("%s: GET with the cookie: redirect to %s, want %s", tc.name, u, bye)
			}
			loggedOut(tc.name, rp, mobile)
		}

		// A POST that carries the cookie (from this site) is answered at once.
		mobile := s.signIn(t, b, url.Values{"scope": {"openid profile offline_access"}})
		rp := rpTokens()
		logout, _ := url.Parse(s.URL + "/oauth2/logout")
		page := noFollow(t, s.testServer, b).submit(webForm{action: logout, fields: url.Values{
			"id_token_hint": {rp["id_token"].(string)}, "post_logout_redirect_uri": {"http://127.0.0.1/rp/bye"}, "state": {"st"},
		}}, nil, nil)
		if u := page.location(t); u.String() != bye {
			t.Fatalf("POST with the cookie: redirect to %s, want %s", u, bye)
		}
		loggedOut("POST with the cookie", rp, mobile)

		// The confirmation form is answered by itself, cookie or not.
		s.signIn(t, b, nil)
		f := b.get("/oauth2/logout").form(t, "/oauth2/logout")
		if page := b.submit(f, nil, url.Values{"decision": {"logout"}}); page.status != http.StatusOK || page.url.Path != "/oauth2/logout" {
			t.Errorf("confirmed logout: %d at %s", page.status, page.url)
		}
		if page := noFollow(t, s.testServer, b).submit(f, nil, url.Values{"decision": {"logout"}}); page.status != http.StatusOK {
			t.Errorf("confirmed logout again, signed out: %d %s", page.status, page.header.Get("Location"))
		}
	})
}

// TestSignInCrossSitePostAuthorize: another site's app sends the
// authorization request by POST; the browser leaves the Lax session cookie
// off, so the request goes again by GET with its parameters, and that GET
// sees the session: prompt=none succeeds, and no second login is asked.
// A POST that carries the cookie is answered at once; the GET never
// redirects to itself; a request too big for a URL is refused.
func TestSignInCrossSitePostAuthorize(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL)
		b := newWebBrowser(t, s.testServer)
		form := func(p pkce, extra url.Values) url.Values {
			u, _ := url.Parse(authorizePath("mobile", loopbackCB, p, extra))
			return u.Query()
		}

		// Signed out: the GET finds no session either, and goes on to
		// login_required (prompt=none) or the login page, not back.
		p := newPKCE()
		next := againByGet(t, s.testServer, crossSitePost(t, s.testServer, "/oauth2/authorize", form(p, url.Values{"prompt": {"none"}})), "/oauth2/authorize", form(p, url.Values{"prompt": {"none"}}))
		if q := s.callback(t, noFollow(t, s.testServer, b).get(next), loopbackCB); q.Get("error") != "login_required" {
			t.Errorf("signed out, prompt=none: %v", q)
		}
		next = againByGet(t, s.testServer, crossSitePost(t, s.testServer, "/oauth2/authorize", form(p, nil)), "/oauth2/authorize", form(p, nil))
		if u := noFollow(t, s.testServer, b).get(next).location(t); u.Path != "/login" {
			t.Errorf("signed out: redirect to %s, want the login page", u)
		}

		s.signIn(t, b, nil)
		for _, tc := range []struct {
			name  string
			extra url.Values
		}{
			{"prompt=none", url.Values{"prompt": {"none"}}},
			{"no prompt", nil},
			{"form_post", url.Values{"response_mode": {"form_post"}, "prompt": {"none"}}},
		} {
			p := newPKCE()
			next := againByGet(t, s.testServer, crossSitePost(t, s.testServer, "/oauth2/authorize", form(p, tc.extra)), "/oauth2/authorize", form(p, tc.extra))
			page := noFollow(t, s.testServer, b).get(next)
			var code string
			if tc.extra.Get("response_mode") == "form_post" {
				f := page.form(t, "/callback")
				code = f.fields.Get("code")
			} else {
				code = s.callback(t, page, loopbackCB).Get("code")
			}
			if code == "" {
				t.Fatalf("%s: no code through the session: %d %s", tc.name, page.status, page.header.Get("Location"))
			}
			// The request's parameters came through: PKCE and nonce.
			res := s.redeem("mobile", "", code, loopbackCB, p.verifier)
			if res.status != http.StatusOK {
				t.Fatalf("%s: redeem: %d %s", tc.name, res.status, res.body)
			}
			if c := s.idClaims(t, "mobile", res.json(t)["id_token"].(string)); c["nonce"] != "nonce-5678" {
				t.Errorf("%s: ID token nonce %v", tc.name, c["nonce"])
			}
		}

		// A POST that carries the cookie (from this site) is answered at once.
		authorize, _ := url.Parse(s.URL + "/oauth2/authorize")
		page := noFollow(t, s.testServer, b).submit(webForm{action: authorize, fields: form(newPKCE(), url.Values{"prompt": {"none"}})}, nil, nil)
		if q := s.callback(t, page, loopbackCB); q.Get("code") == "" {
			t.Errorf("POST with the cookie: %v", q)
		}
		// Parameters too many for the GET's URL: refused, not sent on.
		big := form(newPKCE(), url.Values{"unknown": {strings.Repeat("x", 20<<10)}})
		if page := crossSitePost(t, s.testServer, "/oauth2/authorize", big); page.status != http.StatusRequestEntityTooLarge || page.header.Get("Location") != "" {
			t.Errorf("oversized POST without the cookie: %d %q", page.status, page.header.Get("Location"))
		}
	})
}

func TestSignInErrors(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL)
		b := newWebBrowser(t, s.testServer)
		p := newPKCE()
		pages := []struct {
			name  string
			extra url.Values
		}{
			{"unknown client", url.Values{"client_id": {"nobody"}}},
			{"redirect URI plus a suffix", url.Values{"redirect_uri": {loopbackCB + "/x"}}},
			{"redirect URI of another host", url.Values{"redirect_uri": {"http://127.0.0.2/callback"}}},
			{"no redirect URI", url.Values{"redirect_uri": {""}}},
			{"repeated client_id", url.Values{"client_id": {"mobile", "rp"}}},
			{"repeated scope", url.Values{"scope": {"openid", "profile"}}},
			{"state too long", url.Values{"state": {strings.Repeat("s", 9000)}}},
			{"malformed redirect URI", url.Values{"redirect_uri": {"http://[::1"}}},
		}
		for _, tc := range pages {
			t.Run(tc.name, func(t *testing.T) {
				page := b.get(authorizePath("mobile", loopbackCB, p, tc.extra))
				if page.status != http.StatusBadRequest || page.header.Get("Location") != "" || !strings.Contains(page.header.Get("Content-Type"), "text/html") {
					t.Fatalf("want an error page, got %d %v", page.status, page.header)
				}
				if page.header.Get("Cache-Control") != "no-store" || !strings.Contains(page.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
					t.Errorf("headers %v", page.header)
				}
			})
		}
		redirected := []struct {
			name, code string
			extra      url.Values
		}{
			{"missing response_type", "unsupported_response_type", url.Values{"response_type": {""}}},
			{"token response_type", "unsupported_response_type", url.Values{"response_type": {"token"}}},
			{"PKCE plain", "invalid_request", url.Values{"code_challenge_method": {"plain"}, "code_challenge": {p.verifier}}},
			{"public client without PKCE", "invalid_request", url.Values{"code_challenge": {""}, "code_challenge_method": {""}}},
			{"request object", "request_not_supported", url.Values{"request": {"eyJhbGciOiJub25lIn0.e30."}}},
			{"request_uri", "request_uri_not_supported", url.Values{"request_uri": {"https://127.0.0.1/r"}}},
			{"unknown scope", "invalid_scope", url.Values{"scope": {"openid admin"}}},
			{"bad prompt", "invalid_request", url.Values{"prompt": {"none login"}}},
			{"bad max_age", "invalid_request", url.Values{"max_age": {"-1"}}},
			{"bad id_token_hint", "invalid_request", url.Values{"id_token_hint": {"x.y.z"}}},
			{"unknown response_mode", "unsupported_response_mode", url.Values{"response_mode": {"jwt"}}},
		}
		for _, tc := range redirected {
			t.Run(tc.name, func(t *testing.T) {
				q := s.callback(t, b.get(authorizePath("mobile", loopbackCB, p, tc.extra)), loopbackCB)
				if q.Get("error") != tc.code {
					t.Errorf("error %q (%s), want %q", q.Get("error"), q.Get("error_description"), tc.code)
				}
			})
		}
		t.Run("token request", func(t *testing.T) {
			s.signIn(t, b, nil)
			code := func() string {
				return s.callback(t, b.get(authorizePath("mobile", loopbackCB, p, nil)), loopbackCB).Get("code")
			}
			for _, tc := range []struct{ name, verifier, redirect string }{
				{"wrong verifier", newPKCE().verifier, loopbackCB},
				{"no verifier", "", loopbackCB},
				{"other redirect URI", p.verifier, "http://127.0.0.1:9/callback"},
			} {
				if res := s.redeem("mobile", "", code(), tc.redirect, tc.verifier); res.status != http.StatusBadRequest || res.json(t)["error"] != "invalid_grant" {
					t.Errorf("%s: %d %s", tc.name, res.status, res.body)
				}
			}
			// A confidential client's code with a challenge stays bound to
			// it: sent again after a failed verifier, it is checked again
			// (fosite drops a challenge it has read, and lets a
			// confidential client without one through).
			page := b.get(authorizePath("rp", webCB, p, nil))
			if page.url.Path == "/consent" {
				page = b.submit(page.form(t, "/consent"), nil, url.Values{"decision": {"allow"}})
			}
			rpCode := s.callback(t, page, webCB).Get("code")
			for i, verifier := range []string{"", "", newPKCE().verifier, ""} {
				if res := s.redeem("rp", s.rpSecret, rpCode, webCB, verifier); res.status != http.StatusBadRequest || res.json(t)["error"] != "invalid_grant" {
					t.Errorf("confidential client, try %d with verifier %q: %d %s", i+1, verifier, res.status, res.body)
				}
			}
			if res := s.redeem("rp", s.rpSecret, rpCode, webCB, p.verifier); res.status != http.StatusOK {
				t.Errorf("confidential client, the right verifier after wrong ones: %d %s", res.status, res.body)
			}
			// A confidential client that sent no challenge cannot send a
			// verifier.
			page = b.get(authorizePath("rp", webCB, pkce{}, url.Values{"code_challenge": {""}, "code_challenge_method": {""}}))
			if page.url.Path == "/consent" {
				page = b.submit(page.form(t, "/consent"), nil, url.Values{"decision": {"allow"}})
			}
			q := s.callback(t, page, webCB)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {webCB}, "code_verifier": {p.verifier}}
			if res := s.postForm("/oauth2/token", form, "rp", s.rpSecret); res.status != http.StatusBadRequest || res.json(t)["error"] != "invalid_grant" {
				t.Errorf("verifier without challenge: %d %s", res.status, res.body)
			}
		})
		t.Run("form_post", func(t *testing.T) {
			page := b.get(authorizePath("mobile", loopbackCB, p, url.Values{"response_mode": {"form_post"}}))
			f := page.form(t, "/callback")
			if page.status != http.StatusOK || f.action.String() != loopbackCB || f.fields.Get("code") == "" ||
				f.fields.Get("state") != "state-1234" || f.fields.Get("iss") != s.URL {
				t.Fatalf("form_post: %d %v %v", page.status, f.action, f.fields)
			}
			csp := page.header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'nonce-") || !strings.Contains(csp, "form-action http://127.0.0.1") {
				t.Errorf("form_post CSP %q", csp)
			}
		})
	})
}

func TestSignInLoginForm(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL)
		p := newPKCE()
		b := newWebBrowser(t, s.testServer)
		login := b.get(authorizePath("mobile", loopbackCB, p, nil))
		f := login.form(t, "/login")

		// Unknown login and wrong password: one message, inside role=alert.
		var messages []string
		for _, who := range []string{"nobody", "ada"} {
			page := b.submit(f, url.Values{"login": {who}, "password": {"wrong password 123"}}, nil)
			if page.status != http.StatusBadRequest || !strings.Contains(page.body, `role="alert"`) {
				t.Fatalf("%s: %d %s", who, page.status, page.body)
			}
			i := strings.Index(page.body, `role="alert">`)
			messages = append(messages, page.body[i:i+strings.Index(page.body[i:], "<")])
		}
		if messages[0] != messages[1] {
			t.Errorf("unknown login says %q, wrong password %q", messages[0], messages[1])
		}
		// Without the CSRF field, or with another browser's: refused, and no
		// session.
		for name, set := range map[string]url.Values{
			"no token":              {"csrf_token": {""}},
			"another browser token": {"csrf_token": {newWebBrowser(t, s.testServer).get(authorizePath("mobile", loopbackCB, p, nil)).form(t, "/login").fields.Get("csrf_token")}},
		} {
			set.Set("login", "ada")
			set.Set("password", signinPassword)
			if page := b.submit(f, set, nil); page.status != http.StatusForbidden {
				t.Errorf("%s: %d", name, page.status)
			}
		}
		// The password grant's lock-out applies to the page.
		for range 5 {
			b.submit(f, url.Values{"login": {"ada"}, "password": {"wrong password 456"}}, nil)
		}
		if page := b.submit(f, url.Values{"login": {"ada"}, "password": {signinPassword}}, nil); page.status != http.StatusTooManyRequests || page.header.Get("Retry-After") == "" {
			t.Errorf("locked account: %d %v", page.status, page.header)
		}
		res := s.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"ada"}, "password": {signinPassword}, "client_id": {"mobile"}}, "", "")
		if res.status != http.StatusTooManyRequests {
			t.Errorf("the password grant after the page's failures: %d", res.status)
		}
		// A tampered continue value is refused.
		f.fields.Set("continue", f.fields.Get("continue")+"x")
		if page := b.submit(f, url.Values{"login": {"ada"}, "password": {signinPassword}}, nil); page.status != http.StatusBadRequest {
			t.Errorf("tampered continue: %d", page.status)
		}
	})
}

// TestSignInSessionSharedByReplicas: a second server on the same database
// sees the browser session the first made.
func TestSignInSessionSharedByReplicas(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL)
		b := newWebBrowser(t, s.testServer)
		s.signIn(t, b, nil)
		second := startServer(t, dbURL, func(c *config) { c.Issuer = s.URL })
		b2 := newWebBrowser(t, second)
		b2.c.Jar = b.c.Jar
		// The jar holds the first server's cookies by host; the second
		// listens on another port of the same host, which cookies ignore.
		page := b2.get(second.URL + authorizePath("mobile", loopbackCB, newPKCE(), url.Values{"prompt": {"none"}}))
		q := page.location(t).Query()
		if q.Get("code") == "" {
			t.Fatalf("second replica: %v", q)
		}
	})
}

// TestNativeAppLogin runs what `idp login` runs against the real server,
// with webBrowser as the system browser: the loopback receiver gets the
// code, the ID token verifies with its nonce, the tokens work.
func TestNativeAppLogin(t *testing.T) {
	s := newSigninSite(t, databasetest.SQLiteURL(t))
	b := newWebBrowser(t, s.testServer)
	browserErr := make(chan error, 1)
	res, err := nativeapp.Login(context.Background(), nativeapp.Config{
		Issuer: s.URL, ClientID: "mobile", Scopes: []string{"openid", "profile", "offline_access"}, Timeout: time.Minute,
		Open: func(authURL string) error {
			go func() {
				page := b.get(authURL)
				if page.url.Path != "/login" {
					browserErr <- fmt.Errorf("authorize: %d at %s", page.status, page.url)
					return
				}
				loc := b.login(page, "ada", signinPassword, false).header.Get("Location")
				cb, err := http.Get(loc) // the redirect, to the app's loopback receiver
				if err == nil {
					cb.Body.Close()
				}
				browserErr <- err
			}()
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-browserErr; err != nil {
		t.Fatal(err)
	}
	if res.IDToken == nil || res.IDToken.Subject == "" || res.Token.RefreshToken == "" {
		t.Fatalf("result %+v", res)
	}
	if r := s.get("/userinfo", res.Token.AccessToken); r.status != http.StatusOK || r.json(t)["preferred_username"] != "ada" {
		t.Errorf("userinfo with the access token: %d %s", r.status, r.body)
	}
}

// TestUserinfoThreeWays: GET with the header, POST with the header, POST
// with the token in the form body (OIDC Core §5.3.1, RFC 6750 §2.2).
func TestUserinfoThreeWays(t *testing.T) {
	s := newSigninSite(t, databasetest.SQLiteURL(t))
	at := s.signIn(t, newWebBrowser(t, s.testServer), nil)["access_token"].(string)
	post := func(body string, header bool) response {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/userinfo", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if header {
			req.Header.Set("Authorization", "Bearer "+at)
		}
		return s.do(req)
	}
	for name, res := range map[string]response{
		"GET":              s.get("/userinfo", at),
		"POST with header": post("", true),
		"POST with body":   post(url.Values{"access_token": {at}}.Encode(), false),
	} {
		if res.status != http.StatusOK || res.json(t)["sub"] == nil {
			t.Errorf("%s: %d %s", name, res.status, res.body)
		}
	}
	if res := post("access_token=forged", false); res.status != http.StatusUnauthorized {
		t.Errorf("a forged token in the body: %d", res.status)
	}
}

// TestSignInEndsWithReset: a password reset by emailed code ends the
// user's browser sessions (every replica sees it: they are rows), and the
// metrics count the sign-in's outcomes.
func TestSignInEndsWithReset(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL)
		b := newWebBrowser(t, s.testServer)
		s.signIn(t, b, nil)
		p := newPKCE()
		if q := s.callback(t, b.get(authorizePath("mobile", loopbackCB, p, url.Values{"prompt": {"none"}})), loopbackCB); q.Get("code") == "" {
			t.Fatalf("signed in: %v", q)
		}
		u, err := s.app.accounts.FindByLogin(context.Background(), "ada")
		if err != nil {
			t.Fatal(err)
		}
		code, err := s.app.accounts.IssueResetCode(context.Background(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/password/reset",
			strings.NewReader(`{"login":"ada","code":"`+code+`","new_password":"a new and long passphrase"}`))
		req.Header.Set("Content-Type", "application/json")
		if res := s.do(req); res.status != http.StatusNoContent {
			t.Fatalf("reset: %d %s", res.status, res.body)
		}
		if q := s.callback(t, b.get(authorizePath("mobile", loopbackCB, p, url.Values{"prompt": {"none"}})), loopbackCB); q.Get("error") != "login_required" {
			t.Errorf("after the reset: %v", q)
		}
		fams := scrape(t, s.testServer)
		for _, c := range []struct {
			name   string
			labels []string
		}{
			{"idp_authorize_requests_total", []string{"outcome", "code"}},
			{"idp_authorize_requests_total", []string{"outcome", "login"}},
			{"idp_authorize_requests_total", []string{"outcome", "login_required"}},
			{"idp_browser_logins_total", []string{"method", "pwd", "outcome", "success"}},
		} {
			if value(fams, c.name, c.labels...) < 1 {
				t.Errorf("%s%v not counted", c.name, c.labels)
			}
		}
	})
}

// TestSignInState: state is optional (RFC 9700 §2.1.1: PKCE-only native
// apps omit it) and any length is echoed as sent; fosite alone would refuse
// one under 8 characters.
func TestSignInState(t *testing.T) {
	s := newSigninSite(t, databasetest.SQLiteURL(t))
	b := newWebBrowser(t, s.testServer)
	s.signIn(t, b, nil)
	p := newPKCE()
	for _, state := range []string{"", "ab", "a-long-enough-state"} {
		u := b.get(authorizePath("mobile", loopbackCB, p, url.Values{"state": {state}})).location(t)
		q := u.Query()
		if q.Get("code") == "" || q.Get("iss") != s.URL || q.Get("state") != state || (state == "" && q.Has("state")) {
			t.Errorf("state %q: redirect %s", state, u)
		}
		if res := s.redeem("mobile", "", q.Get("code"), loopbackCB, p.verifier); res.status != http.StatusOK {
			t.Errorf("state %q: redeem %d %s", state, res.status, res.body)
		}
	}
	// An error redirect echoes a short state too.
	u := b.get(authorizePath("mobile", loopbackCB, p, url.Values{"state": {"ab"}, "scope": {"openid admin"}})).location(t)
	if u.Query().Get("error") != "invalid_scope" || u.Query().Get("state") != "ab" {
		t.Errorf("error redirect %s", u)
	}
}
