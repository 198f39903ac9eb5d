package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"idp/passkey"
	"idp/passkey/passkeytest"
)

// newPasskeySite is the sign-in site with an issuer whose host is a name
// (localhost), which WebAuthn needs, and the test's URL that issuer.
func newPasskeySite(t *testing.T, dbURL string) *signinSite {
	t.Helper()
	s := newSigninSite(t, dbURL, localhostIssuer)
	s.URL = s.app.cfg.Issuer
	return s
}

// registerPasskey adds a passkey of auth to the user of the access token
// over /v1 and returns its id.
func registerPasskey(t *testing.T, s *signinSite, at string, auth *passkeytest.Authenticator) string {
	t.Helper()
	opts := s.send("POST", "/v1/passkeys/registration", at, "", nil)
	if opts.status != http.StatusOK {
		t.Fatalf("registration options: %d %s", opts.status, opts.body)
	}
	resp, err := auth.Create(opts.body)
	if err != nil {
		t.Fatal(err)
	}
	r := s.send("POST", "/v1/passkeys", at, "application/json", strings.NewReader(string(resp)))
	if r.status != http.StatusCreated {
		t.Fatalf("create passkey: %d %s", r.status, r.body)
	}
	return r.json(t)["id"].(string)
}

// passkeyOptions asks the login page's options endpoint, as its script
// does, for b's login form.
func passkeyOptions(t *testing.T, s *signinSite, b *webBrowser, form webForm, mediation string) []byte {
	t.Helper()
	v := url.Values{"csrf_token": form.fields["csrf_token"], "mediation": {mediation}}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/login/passkey/options", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	p := b.do(req)
	if p.status != http.StatusOK || p.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("passkey options: %d %s", p.status, p.body)
	}
	return []byte(p.body)
}

// noSession checks that b is not signed in: prompt=none answers
// login_required.
func noSession(t *testing.T, s *signinSite, b *webBrowser) {
	t.Helper()
	q := b.get(authorizePath("mobile", loopbackCB, newPKCE(), url.Values{"prompt": {"none"}})).location(t).Query()
	if q.Get("error") != "login_required" {
		t.Errorf("a session after a refused passkey: %v", q)
	}
}

func TestPasskeySignIn(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newPasskeySite(t, dbURL)
		s.createUser("bob", "bob@example.com", signinPassword)
		at, _ := tokensOf(t, s.passwordGrant("ada", signinPassword))
		bobAT, _ := tokensOf(t, s.passwordGrant("bob", signinPassword))
		auth := &passkeytest.Authenticator{Origin: s.URL}
		id := registerPasskey(t, s, at, auth)

		// Registration refusals over /v1: a challenge of another user, a
		// replayed response, no user verification. Each a 400 problem.
		opts := s.send("POST", "/v1/passkeys/registration", at, "", nil)
		other := &passkeytest.Authenticator{Origin: s.URL}
		resp, _ := other.Create(opts.body)
		for _, c := range []struct {
			what, token, body, problem string
		}{
			{"another user's challenge", bobAT, string(resp), "passkey-challenge"},
			{"the response, once more after its use", at, string(resp), ""},
			{"a malformed response", at, `{"id":1}`, "passkey-rejected"},
		} {
			r := s.send("POST", "/v1/passkeys", c.token, "application/json", strings.NewReader(c.body))
			if c.problem == "" { // the first use, by its user, succeeds
				if r.status != http.StatusCreated {
					t.Fatalf("%s: %d %s", c.what, r.status, r.body)
				}
				r = s.send("POST", "/v1/passkeys", c.token, "application/json", strings.NewReader(c.body))
				c.problem = "passkey-challenge"
			}
			if r.status != http.StatusBadRequest || r.header.Get("Content-Type") != "application/problem+json" ||
				!strings.HasSuffix(r.json(t)["type"].(string), "/"+c.problem) {
				t.Errorf("%s: %d %s, want a 400 %s problem", c.what, r.status, r.body, c.problem)
			}
		}
		// Each passkey added is told to the account's address.
		waitForMail(t, func() []sentMail { return mailLog(t, s.testServer) }, "ada@example.com", passkey.PasskeyAddedSubject, 2)
		noUV := &passkeytest.Authenticator{Origin: s.URL, NoUserVerification: true}
		opts = s.send("POST", "/v1/passkeys/registration", at, "", nil)
		resp, _ = noUV.Create(opts.body)
		if r := s.send("POST", "/v1/passkeys", at, "application/json", strings.NewReader(string(resp))); r.status != http.StatusBadRequest ||
			!strings.Contains(r.json(t)["detail"].(string), "User verification") {
			t.Errorf("no user verification: %d %s", r.status, r.body)
		}
		if r := s.send("DELETE", "/v1/passkeys/"+id, bobAT, "", nil); r.status != http.StatusNotFound {
			t.Errorf("bob deletes ada's passkey: %d", r.status)
		}
		if r := s.send("PATCH", "/v1/passkeys/"+id, bobAT, "application/json", strings.NewReader(`{"name":"bob's"}`)); r.status != http.StatusNotFound {
			t.Errorf("bob renames ada's passkey: %d", r.status)
		}

		// The sign-in: options, the assertion posted with the login form,
		// the authorization request continued; amr hwk and user.
		cred := auth.Creds[0]
		signIn := func(b *webBrowser, a *passkeytest.Authenticator, tweak func(form webForm, opts []byte) []byte) (webPage, pkce) {
			t.Helper()
			p := newPKCE()
			page := b.get(authorizePath("mobile", loopbackCB, p, nil))
			form := page.form(t, "/login")
			if len(page.forms(t)[0].fields["csrf_token"]) == 0 || !strings.Contains(page.body, `value="passkey"`) {
				t.Fatalf("login page without the passkey button: %.300s", page.body)
			}
			opts := passkeyOptions(t, s, b, form, "")
			if tweak != nil {
				opts = tweak(form, opts)
			}
			resp, err := a.Get(opts, cred)
			if err != nil {
				t.Fatal(err)
			}
			return b.submit(form, url.Values{"credential": {string(resp)}}, url.Values{"method": {"passkey"}}), p
		}
		b := newWebBrowser(t, s.testServer)
		page, p := signIn(b, auth, nil)
		q := s.callback(t, page, loopbackCB)
		tok := s.redeem("mobile", "", q.Get("code"), loopbackCB, p.verifier)
		if tok.status != http.StatusOK {
			t.Fatalf("redeem: %d %s", tok.status, tok.body)
		}
		claims := s.idClaims(t, "mobile", tok.json(t)["id_token"].(string))
		amr, _ := json.Marshal(claims["amr"])
		if string(amr) != `["hwk","user"]` {
			t.Errorf("passkey sign-in amr %s, want [hwk user]", amr)
		}
		// A password login's amr is pwd.
		pw := s.signIn(t, newWebBrowser(t, s.testServer), nil)
		if amr, _ := json.Marshal(s.idClaims(t, "mobile", pw["id_token"].(string))["amr"]); string(amr) != `["pwd"]` {
			t.Errorf("password sign-in amr %s", amr)
		}
		if list := s.send("GET", "/v1/passkeys", at, "", nil).json(t)["passkeys"].([]any); len(list) != 2 || list[0].(map[string]any)["last_used_at"] == nil {
			t.Errorf("passkeys after a sign-in: %v", list)
		}

		// Refusals: each a 400 login page with the passkey message, no
		// session, never a 500, and never the lock-out (a password login
		// still works after all of them).
		refused := func(what string, page webPage, b *webBrowser) {
			t.Helper()
			if page.status != http.StatusBadRequest || !strings.Contains(page.body, `role="alert"`) ||
				!strings.Contains(page.body, "passkey could not sign you in") {
				t.Errorf("%s: %d %.400s", what, page.status, page.body)
			}
			noSession(t, s, b)
		}
		var replay []byte
		{ // a replayed assertion: its challenge is used up
			b := newWebBrowser(t, s.testServer)
			page := b.get(authorizePath("mobile", loopbackCB, newPKCE(), nil))
			form := page.form(t, "/login")
			resp, _ := auth.Get(passkeyOptions(t, s, b, form, ""), cred)
			replay = resp
			s.callback(t, b.submit(form, url.Values{"credential": {string(resp)}}, url.Values{"method": {"passkey"}}), loopbackCB)
			c := newWebBrowser(t, s.testServer)
			page = c.get(authorizePath("mobile", loopbackCB, newPKCE(), nil))
			form = page.form(t, "/login")
			passkeyOptions(t, s, c, form, "")
			refused("a replayed assertion", c.submit(form, url.Values{"credential": {string(replay)}}, url.Values{"method": {"passkey"}}), c)
		}
		{ // an assertion over the challenge another browser asked for
			c, d := newWebBrowser(t, s.testServer), newWebBrowser(t, s.testServer)
			dForm := d.get(authorizePath("mobile", loopbackCB, newPKCE(), nil)).form(t, "/login")
			dOpts := passkeyOptions(t, s, d, dForm, "")
			page, _ := signIn(c, auth, func(webForm, []byte) []byte { return dOpts })
			refused("another browser's challenge", page, c)
		}
		for what, a := range map[string]*passkeytest.Authenticator{
			"another origin":       {Origin: "http://evil.localhost:1"},
			"a wrong RP ID hash":   {Origin: s.URL, RPID: "evil.example"},
			"a tampered signature": {Origin: s.URL, TamperSignature: true},
			"no user verification": {Origin: s.URL, NoUserVerification: true},
		} {
			c := newWebBrowser(t, s.testServer)
			page, _ := signIn(c, a, nil)
			refused(what, page, c)
		}
		{ // a lowered sign count
			c := newWebBrowser(t, s.testServer)
			saved := cred.Counter
			cred.Counter = 0
			page, _ := signIn(c, auth, nil)
			refused("a lowered sign count", page, c)
			cred.Counter = saved
		}
		{ // the button without JavaScript: no credential
			c := newWebBrowser(t, s.testServer)
			page := c.get(authorizePath("mobile", loopbackCB, newPKCE(), nil))
			r := c.submit(page.form(t, "/login"), nil, url.Values{"method": {"passkey"}})
			if r.status != http.StatusBadRequest || !strings.Contains(r.body, "needs JavaScript") {
				t.Errorf("passkey button without JavaScript: %d %.300s", r.status, r.body)
			}
		}
		// The options need the login form's CSRF token.
		c := newWebBrowser(t, s.testServer)
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/login/passkey/options", strings.NewReader("csrf_token=forged"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if r := c.do(req); r.status != http.StatusForbidden {
			t.Errorf("options without a CSRF token: %d", r.status)
		}
		s.signIn(t, newWebBrowser(t, s.testServer), nil) // no lock-out

		// The export lists the passkeys whole (nothing in them is secret).
		var export struct {
			Passkeys []struct {
				ID           string `json:"id"`
				PublicKey    string `json:"public_key"`
				CredentialID string `json:"credential_id"`
			} `json:"passkeys"`
		}
		json.Unmarshal([]byte(s.send("GET", "/v1/profile/export", at, "", nil).body), &export)
		if len(export.Passkeys) != 2 || export.Passkeys[0].ID != id || export.Passkeys[0].PublicKey == "" || export.Passkeys[0].CredentialID == "" {
			t.Errorf("export passkeys: %+v", export.Passkeys)
		}

		// A deleted passkey signs no one in.
		if r := s.send("DELETE", "/v1/passkeys/"+id, at, "", nil); r.status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		c = newWebBrowser(t, s.testServer)
		page, _ = signIn(c, auth, nil)
		refused("a deleted passkey", page, c)

		// A user with a passkey still resets the password by email.
		if r := s.send("POST", "/v1/password/forgot", "", "application/json", strings.NewReader(`{"login":"ada"}`)); r.status != http.StatusAccepted {
			t.Fatalf("forgot: %d", r.status)
		}
		code := codeOf(t, waitForMail(t, func() []sentMail { return mailLog(t, s.testServer) }, "ada@example.com", "reset code", 1)[0])
		if r := s.send("POST", "/v1/password/reset", "", "application/json",
			strings.NewReader(`{"login":"ada","code":"`+code+`","new_password":"a passkey user's new passphrase"}`)); r.status != http.StatusNoContent {
			t.Errorf("reset with a passkey: %d %s", r.status, r.body)
		}
	})
}

// TestPasskeyFailuresRateLimited: refused passkey sign-ins are limited per
// client address, like every post of the login form, and never lock the
// account.
func TestPasskeyFailuresRateLimited(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL, localhostIssuer, func(c *config) { c.RateLimitPerIP = 6 })
		s.URL = s.app.cfg.Issuer
		b := newWebBrowser(t, s.testServer)
		form := b.get(authorizePath("mobile", loopbackCB, newPKCE(), nil)).form(t, "/login")
		var statuses []int
		for range 8 {
			r := b.submit(form, url.Values{"credential": {`{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{}}`}}, url.Values{"method": {"passkey"}})
			statuses = append(statuses, r.status)
		}
		if statuses[0] != http.StatusBadRequest || statuses[len(statuses)-1] != http.StatusTooManyRequests {
			t.Errorf("statuses of refused passkey sign-ins %v, want 400s then 429", statuses)
		}
		if r := s.passwordGrant("ada", signinPassword); r.status != http.StatusOK {
			t.Errorf("after refused passkeys, the password: %d %s", r.status, r.body)
		}
	})
}

// formWith is p's form that has the button action=value.
func formWith(t *testing.T, p webPage, action string) webForm {
	t.Helper()
	for _, f := range p.forms(t) {
		for _, b := range f.buttons {
			if b.Get("action") == action {
				return f
			}
		}
	}
	t.Fatalf("no form with the button %s in %.500s", action, p.body)
	return webForm{}
}

// TestPasskeyAccountPageWithoutJavaScript: the account page lists the
// passkeys, renames and deletes them with plain forms, refuses another
// user's id, and says that adding one needs JavaScript.
func TestPasskeyAccountPageWithoutJavaScript(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newPasskeySite(t, dbURL)
		at, _ := tokensOf(t, s.passwordGrant("ada", signinPassword))
		id := registerPasskey(t, s, at, &passkeytest.Authenticator{Origin: s.URL})
		b := newWebBrowser(t, s.testServer)
		page := b.login(b.get("/account"), "ada", signinPassword, false)
		if page.url.Path != "/account" || !strings.Contains(page.body, `id="passkeys"`) || !strings.Contains(page.body, "Passkey") {
			t.Fatalf("account page: %d %s %.300s", page.status, page.url, page.body)
		}
		if r := b.submit(formWith(t, page, "add-passkey"), nil, url.Values{"action": {"add-passkey"}}); r.status != http.StatusBadRequest ||
			!strings.Contains(r.body, "needs JavaScript") {
			t.Errorf("add without JavaScript: %d %.300s", r.status, r.body)
		}
		rename := formWith(t, page, "rename-passkey")
		if rename.fields.Get("id") != id {
			t.Fatalf("rename form for %q, want %q", rename.fields.Get("id"), id)
		}
		if r := b.submit(rename, url.Values{"name": {"Work laptop"}}, url.Values{"action": {"rename-passkey"}}); r.status != http.StatusOK || !strings.Contains(r.body, "Work laptop") {
			t.Errorf("rename: %d %.300s", r.status, r.body)
		}
		if r := b.submit(rename, url.Values{"name": {""}}, url.Values{"action": {"rename-passkey"}}); r.status != http.StatusBadRequest {
			t.Errorf("rename to nothing: %d", r.status)
		}
		if r := b.submit(rename, url.Values{"id": {"someone-elses"}}, url.Values{"action": {"delete-passkey"}}); r.status != http.StatusNotFound {
			t.Errorf("delete an unknown id: %d", r.status)
		}
		if r := b.submit(rename, nil, url.Values{"action": {"delete-passkey"}}); r.status != http.StatusOK || strings.Contains(r.body, "Work laptop") ||
			!strings.Contains(r.body, "The passkey has been deleted.") {
			t.Errorf("delete: %d %.300s", r.status, r.body)
		}
		if list := s.send("GET", "/v1/passkeys", at, "", nil).json(t)["passkeys"].([]any); len(list) != 0 {
			t.Errorf("after deleting on the page: %v", list)
		}
		if got := value(scrape(t, s.testServer), "idp_account_events_total", "event", "passkey_deleted"); got != 1 {
			t.Errorf("idp_account_events_total{event=passkey_deleted} = %v after a deletion on the page, want 1", got)
		}
	})
}
