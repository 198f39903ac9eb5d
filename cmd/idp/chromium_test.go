package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"idp/browsertest"
	"idp/database/databasetest"
	"idp/oauth"
)

// relyingParty is a client's redirect URI on a loopback port: it records
// what the browser brings and shows a page saying so.
type relyingParty struct {
	srv  *httptest.Server
	hits chan url.Values
}

func newRelyingParty(t *testing.T) *relyingParty {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rp := &relyingParty{hits: make(chan url.Values, 16)}
	rp.srv = &httptest.Server{Listener: ln, Config: &http.Server{ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/favicon.ico" {
				http.NotFound(w, r)
				return
			}
			r.ParseForm()
			rp.hits <- r.Form
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(`<!doctype html><title>rp</title><p id="done">back at the app</p>`))
		})}}
	rp.srv.Start()
	t.Cleanup(rp.srv.Close)
	return rp
}

// receive waits for the browser to arrive at the client, and for the
// client's page to load, so that the next navigation does not abort it.
func (rp *relyingParty) receive(t *testing.T, ctx context.Context) url.Values {
	t.Helper()
	select {
	case q := <-rp.hits:
		browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.ID("done")))
		return q
	case <-time.After(20 * time.Second):
		t.Fatal("the browser did not come back to the client within 20s")
		return nil
	}
}

// chromeLogin fills the login page by its fixed names and submits it.
func chromeLogin(t *testing.T, ctx context.Context, login, password string) {
	t.Helper()
	browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.CSS(`input[name="login"]`)))
	// A failed login keeps what was typed: start from an empty field.
	browsertest.Get(t, ctx, chromedp.Evaluate[bool](`(document.querySelector('input[name="login"]').value = "", true)`))
	browsertest.Do(t, ctx,
		chromedp.SendKeys(chromedp.CSS(`input[name="login"]`), login),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
	)
	chromeSubmit(t, ctx, `form button[type="submit"]:not([name])`)
}

// chromeSubmit clicks a submit button and waits until the answer has
// replaced the page, so that the next step does not act on the old one.
func chromeSubmit(t *testing.T, ctx context.Context, button string) {
	t.Helper()
	browsertest.Get(t, ctx, chromedp.Evaluate[bool](`(window.idpOldPage = true)`))
	browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS(button)))
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		// Asking while the page is replaced fails: ask again.
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		done, err := chromedp.Run(sctx, chromedp.Evaluate[bool](`!window.idpOldPage && document.readyState === "complete"`))
		cancel()
		if err == nil && done {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the page did not change within 20s of clicking %s", button)
}

// TestSignInChromium walks the browser sign-in in Debian's Chromium: login,
// the code at the client, single sign-on for a second client with its
// consent (deny, then allow), prompt=none before and after logout,
// max_age, and the German page.
func TestSignInChromium(t *testing.T) {
	ctx := browsertest.New(t, browsertest.WithTimeout(4*time.Minute))
	s := newSigninSite(t, databasetest.SQLiteURL(t))
	app := newRelyingParty(t)
	third := newRelyingParty(t)
	s.createClient(oauth.NewClient{
		ID: "shop", Public: true, GrantTypes: []string{oauth.GrantAuthorizationCode},
		Scopes: []string{"openid", "profile", "email"}, RedirectURIs: []string{"http://127.0.0.1/shop"},
	})
	appCB := app.srv.URL + "/callback"
	shopCB := third.srv.URL + "/shop"
	p := newPKCE()
	authorize := func(client, cb string, extra url.Values) string {
		return s.URL + authorizePath(client, cb, p, extra)
	}

	t.Run("prompt=none signed out", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Navigate(authorize("mobile", appCB, url.Values{"prompt": {"none"}})))
		if q := app.receive(t, ctx); q.Get("error") != "login_required" || q.Get("iss") != s.URL {
			t.Errorf("client got %v", q)
		}
	})
	t.Run("login", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Navigate(authorize("mobile", appCB, nil)))
		chromeLogin(t, ctx, "nobody", "wrong password 123")
		msg := browsertest.Get(t, ctx, chromedp.Text(chromedp.CSS(`[role="alert"]`)))
		chromeLogin(t, ctx, "ada", "wrong password 123")
		if again := browsertest.Get(t, ctx, chromedp.Text(chromedp.CSS(`[role="alert"]`))); again != msg || msg == "" {
			t.Errorf("unknown login says %q, wrong password %q", msg, again)
		}
		chromeLogin(t, ctx, "ada", signinPassword)
		q := app.receive(t, ctx)
		if q.Get("code") == "" || q.Get("state") != "state-1234" || q.Get("iss") != s.URL {
			t.Fatalf("client got %v", q)
		}
		if res := s.redeem("mobile", "", q.Get("code"), appCB, p.verifier); res.status != http.StatusOK {
			t.Errorf("redeem: %d %s", res.status, res.body)
		}
	})
	t.Run("single sign-on, consent denied then allowed", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Navigate(authorize("shop", shopCB, nil)))
		chromeSubmit(t, ctx, `button[name="decision"][value="deny"]`)
		if q := third.receive(t, ctx); q.Get("error") != "access_denied" {
			t.Errorf("deny: client got %v", q)
		}
		browsertest.Do(t, ctx, chromedp.Navigate(authorize("shop", shopCB, nil)))
		chromeSubmit(t, ctx, `button[name="decision"][value="allow"]`)
		if q := third.receive(t, ctx); q.Get("code") == "" {
			t.Errorf("allow: client got %v", q)
		}
		// Remembered: no page the next time.
		browsertest.Do(t, ctx, chromedp.Navigate(authorize("shop", shopCB, url.Values{"prompt": {"none"}})))
		if q := third.receive(t, ctx); q.Get("code") == "" {
			t.Errorf("remembered consent: client got %v", q)
		}
	})
	t.Run("max_age", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond)
		browsertest.Do(t, ctx, chromedp.Navigate(authorize("mobile", appCB, url.Values{"max_age": {"1"}})))
		chromeLogin(t, ctx, "ada", signinPassword)
		if q := app.receive(t, ctx); q.Get("code") == "" {
			t.Errorf("client got %v", q)
		}
	})
	t.Run("logout, then prompt=none", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Navigate(s.URL+"/oauth2/logout"))
		chromeSubmit(t, ctx, `button[name="decision"][value="logout"]`)
		browsertest.Do(t, ctx, chromedp.Navigate(authorize("mobile", appCB, url.Values{"prompt": {"none"}})))
		if q := app.receive(t, ctx); q.Get("error") != "login_required" {
			t.Errorf("after logout: client got %v", q)
		}
	})
	t.Run("create account with a picture", func(t *testing.T) {
		pic := filepath.Join(t.TempDir(), "me.png")
		if err := os.WriteFile(pic, testPNG(t, 64, 48), 0o600); err != nil {
			t.Fatal(err)
		}
		other := browsertest.NewUser(t, ctx)
		browsertest.Do(t, other, chromedp.Navigate(authorize("mobile", appCB, nil)))
		browsertest.Do(t, other, chromedp.WaitVisible(chromedp.CSS(`input[name="login"]`)))
		chromeSubmit(t, other, `a[href^="/login/signup"]`)
		browsertest.Do(t, other,
			chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "grace"),
			chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "grace@example.com"),
			chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "a sturdy passphrase"),
			chromedp.SendKeys(chromedp.CSS(`input[name="first_name"]`), "Grace"),
			chromedp.SendKeys(chromedp.CSS(`input[name="last_name"]`), "Hopper"),
			chromedp.SetUploadFiles(chromedp.CSS(`input[name="picture"]`), []string{pic}),
		)
		chromeSubmit(t, other, `form button[type="submit"]`)
		q := app.receive(t, other)
		res := s.redeem("mobile", "", q.Get("code"), appCB, p.verifier)
		if res.status != http.StatusOK {
			t.Fatalf("redeem after signup: %d %s", res.status, res.body)
		}
		prof := s.get("/v1/profile", res.json(t)["access_token"].(string)).json(t)
		if prof["username"] != "grace" || prof["picture_url"] == nil {
			t.Errorf("profile after signing up in the browser: %v", prof)
		}
	})
	t.Run("reset the password by emailed code", func(t *testing.T) {
		other := browsertest.NewUser(t, ctx)
		browsertest.Do(t, other, chromedp.Navigate(authorize("mobile", appCB, nil)))
		browsertest.Do(t, other, chromedp.WaitVisible(chromedp.CSS(`input[name="login"]`)))
		chromeSubmit(t, other, `a[href^="/login/forgot"]`)
		browsertest.Do(t, other, chromedp.SendKeys(chromedp.CSS(`input[name="login"]`), "ada"))
		chromeSubmit(t, other, `form button[type="submit"]`)
		code := codeOf(t, waitForMail(t, func() []sentMail { return mailLog(t, s.testServer) }, "ada@example.com", "reset code", 1)[0])
		browsertest.Do(t, other, chromedp.SendKeys(chromedp.CSS(`input[name="code"]`), code))
		chromeSubmit(t, other, `form button[type="submit"]`)
		browsertest.Do(t, other, chromedp.SendKeys(chromedp.CSS(`input[name="new_password"]`), "a brand new passphrase"))
		chromeSubmit(t, other, `form button[type="submit"]`)
		chromeLogin(t, other, "ada", "a brand new passphrase")
		if q := app.receive(t, other); q.Get("code") == "" {
			t.Errorf("after the reset: client got %v", q)
		}
	})
	t.Run("German", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Navigate(authorize("mobile", appCB, url.Values{"ui_locales": {"de"}})))
		browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.CSS(`input[name="login"]`)))
		if label := browsertest.Get(t, ctx, chromedp.Text(chromedp.CSS(`label[for="password"]`))); label != "Passwort" {
			t.Errorf("password label %q", label)
		}
		if loc := browsertest.Get(t, ctx, chromedp.Location()); !strings.HasPrefix(loc, s.URL+"/login?") {
			t.Errorf("at %s", loc)
		}
	})
}
