package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"idp/account"
	"idp/browsertest"
	"idp/database/databasetest"
	"idp/fake"
)

// accountSite is a server with one user, ada, and a browser signed in to
// her account page.
type accountSite struct {
	*testServer
	clock *fake.Clock
}

func newAccountSite(t *testing.T, dbURL string) *accountSite {
	t.Helper()
	clock := fake.NewClock(time.Now())
	s := startServer(t, dbURL, func(c *config) { c.clock = clock.Now; c.AccessTokenTTL = 72 * time.Hour })
	s.mobile()
	s.createUser("ada", "ada@example.com", signinPassword)
	return &accountSite{testServer: s, clock: clock}
}

// signIn opens the account page in b, signed out: the page sends it
// through the sign-in, and after the login it is back, signed in.
func (s *accountSite) signIn(t *testing.T, b *webBrowser) webPage {
	t.Helper()
	login := b.get("/account")
	if login.url.Path != "/login" || login.status != http.StatusOK {
		t.Fatalf("signed out, /account led to %s (%d), want the login page", login.url, login.status)
	}
	page := b.login(login, "ada", signinPassword, false)
	if page.url.Path != "/account" || page.url.RawQuery != "" || page.status != http.StatusOK {
		t.Fatalf("after the login: %s (%d), want /account: %.300s", page.url, page.status, page.body)
	}
	if !strings.Contains(page.body, "ada@example.com") {
		t.Fatalf("the account page does not show the address: %.500s", page.body)
	}
	return page
}

// action submits the account page's form whose button is action=name,
// with set over its fields.
func (b *webBrowser) action(t *testing.T, page webPage, name string, set url.Values) webPage {
	t.Helper()
	for _, f := range page.forms(t) {
		for _, btn := range f.buttons {
			if btn.Get("action") == name {
				return b.submit(f, set, btn)
			}
		}
	}
	t.Fatalf("no button action=%s on %s: %.500s", name, page.url, page.body)
	return webPage{}
}

// submitPicture posts the picture form of page with data as the file.
func (b *webBrowser) submitPicture(t *testing.T, page webPage, data []byte) webPage {
	t.Helper()
	var f webForm
	for _, form := range page.forms(t) {
		for _, btn := range form.buttons {
			if btn.Get("action") == "picture" {
				f = form
			}
		}
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, vs := range f.fields {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	mw.WriteField("action", "picture")
	fw, _ := mw.CreateFormFile("picture", "me.png")
	fw.Write(data)
	mw.Close()
	req, err := http.NewRequest(http.MethodPost, f.action.String(), &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

func notice(t *testing.T, page webPage, want string) {
	t.Helper()
	if page.status != http.StatusOK || page.url.Path != "/account" || !strings.Contains(page.body, `role="status"`) ||
		!strings.Contains(page.body, want) {
		t.Fatalf("%s (%d): want the notice %q: %.800s", page.url, page.status, want, page.body)
	}
}

// TestAccountPage walks the account page over HTTP, as a browser without
// JavaScript: signing in through the authorization endpoint, names and
// gender, picture, email verification, email change, re-authentication
// after five minutes, password change ending the other logins, the German
// page, and bad posts answered with pages, never a 500.
func TestAccountPage(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		s := newAccountSite(t, dbURL)
		b := newWebBrowser(t, s.testServer)
		page := s.signIn(t, b)
		if !strings.Contains(page.body, `id="new_email"`) || strings.Contains(page.body, `id="email_password"`) {
			t.Error("a fresh login: the email change should not ask for the password")
		}

		t.Run("profile", func(t *testing.T) {
			got := b.action(t, page, "profile", url.Values{"first_name": {"Augusta"}, "last_name": {"King"}, "gender": {"female"}})
			notice(t, got, "saved")
			u, err := s.app.accounts.FindByLogin(ctx, "ada")
			if err != nil || u.FirstName != "Augusta" || u.LastName != "King" || u.Gender != "female" {
				t.Fatalf("user after the change: %+v, %v", u, err)
			}
			bad := b.action(t, got, "profile", url.Values{"first_name": {""}, "gender": {"other"}})
			if bad.status != http.StatusUnprocessableEntity || strings.Count(bad.body, `class="field-error"`) != 2 {
				t.Errorf("bad names: %d, want 422 with two field errors: %.800s", bad.status, bad.body)
			}
		})

		t.Run("picture", func(t *testing.T) {
			got := b.submitPicture(t, b.get("/account"), testPNG(t, 64, 64))
			notice(t, got, "saved")
			u, _ := s.app.accounts.FindByLogin(ctx, "ada")
			if !u.HasPicture() {
				t.Fatal("no picture after the upload")
			}
			if bad := b.submitPicture(t, got, []byte("not an image at all")); bad.status != http.StatusUnsupportedMediaType {
				t.Errorf("not an image: %d", bad.status)
			}
			notice(t, b.action(t, b.get("/account"), "remove-picture", nil), "saved")
			if u, _ := s.app.accounts.FindByLogin(ctx, "ada"); u.HasPicture() {
				t.Error("the picture is still there")
			}
		})

		t.Run("verify email", func(t *testing.T) {
			read := func() []sentMail { return mailLog(t, s.testServer) }
			got := b.action(t, b.get("/account"), "resend-verification", nil)
			notice(t, got, "code")
			code := codeOf(t, waitForMail(t, read, "ada@example.com", verifySubject, 1)[0])
			wrong := "00000000"
			if code == wrong {
				wrong = "11111111"
			}
			if bad := b.action(t, got, "verify-email", url.Values{"code": {wrong}}); bad.status != http.StatusBadRequest {
				t.Errorf("a wrong code: %d", bad.status)
			}
			notice(t, b.action(t, got, "verify-email", url.Values{"code": {code}}), "confirmed")
			if u, _ := s.app.accounts.FindByLogin(ctx, "ada"); !u.EmailVerified {
				t.Error("not verified")
			}
		})

		t.Run("email change", func(t *testing.T) {
			read := func() []sentMail { return mailLog(t, s.testServer) }
			page := b.get("/account")
			if bad := b.action(t, page, "change-email", url.Values{"new_email": {"not an address"}}); bad.status != http.StatusUnprocessableEntity {
				t.Errorf("a bad address: %d", bad.status)
			}
			got := b.action(t, page, "change-email", url.Values{"new_email": {"augusta@example.com"}})
			notice(t, got, "new address")
			waitForMail(t, read, "ada@example.com", "A change of your email address", 1)
			code := codeOf(t, waitForMail(t, read, "augusta@example.com", "Confirm your new email address", 1)[0])
			notice(t, b.action(t, got, "verify-email", url.Values{"code": {code}}), "confirmed")
			u, _ := s.app.accounts.FindByLogin(ctx, "augusta@example.com")
			if u == nil || u.Username != "ada" || !u.EmailVerified {
				t.Fatalf("after the change: %+v", u)
			}
		})

		t.Run("re-authentication after five minutes", func(t *testing.T) {
			s.clock.Advance(6 * time.Minute)
			page := b.get("/account")
			if !strings.Contains(page.body, `id="email_password"`) || !strings.Contains(page.body, `id="delete_password"`) {
				t.Fatalf("a login 6 minutes old: the email change and deletion should ask for the password: %.1500s", page.body)
			}
			if got := b.action(t, page, "change-email", url.Values{"new_email": {"ada@example.org"}}); got.status != http.StatusUnprocessableEntity {
				t.Errorf("no password: %d", got.status)
			}
			if got := b.action(t, page, "change-email", url.Values{"new_email": {"ada@example.org"}, "password": {"wrong password 12"}}); got.status != http.StatusBadRequest {
				t.Errorf("a wrong password: %d", got.status)
			}
			notice(t, b.action(t, page, "change-email", url.Values{"new_email": {"ada@example.org"}, "password": {signinPassword}}), "new address")
		})

		t.Run("password change", func(t *testing.T) {
			other := newWebBrowser(t, s.testServer)
			s.signInAs(t, other, "augusta@example.com", signinPassword)
			page := b.get("/account")
			if bad := b.action(t, page, "change-password", url.Values{"current_password": {signinPassword}, "new_password": {"short"}}); bad.status != http.StatusUnprocessableEntity {
				t.Errorf("a short password: %d", bad.status)
			}
			if bad := b.action(t, page, "change-password", url.Values{"current_password": {"wrong password 12"}, "new_password": {"a brand new passphrase"}}); bad.status != http.StatusBadRequest {
				t.Errorf("a wrong current password: %d", bad.status)
			}
			notice(t, b.action(t, page, "change-password", url.Values{"current_password": {signinPassword}, "new_password": {"a brand new passphrase"}}), "changed")
			if got := other.get("/account"); got.url.Path != "/login" {
				t.Errorf("the other browser is still signed in: %s", got.url)
			}
			if got := b.get("/account"); got.url.Path != "/account" || got.status != http.StatusOK {
				t.Errorf("the page's own session ended: %s", got.url)
			}
			if _, err := s.app.accounts.Authenticate(ctx, "ada", "a brand new passphrase", "127.0.0.1"); err != nil {
				t.Errorf("the new password: %v", err)
			}
		})

		t.Run("sessions", func(t *testing.T) {
			other := newWebBrowser(t, s.testServer)
			s.signInAs(t, other, "ada", "a brand new passphrase")
			page := b.get("/account")
			if n := strings.Count(page.body, `name="action" value="end-session"`); n != 2 {
				t.Fatalf("%d sessions listed, want 2", n)
			}
			var otherID string
			// The current one is listed with data-current; end the other.
			current := page.body[strings.Index(page.body, `data-current="true"`):]
			for _, f := range page.forms(t) {
				if id := f.fields.Get("id"); id != "" && !strings.Contains(current[:strings.Index(current, "</li>")], id) {
					otherID = id
				}
			}
			if bad := b.action(t, page, "end-session", url.Values{"id": {"bs_AAAAAAAAAAAAAAAAAAAAAA"}}); bad.status != http.StatusNotFound {
				t.Errorf("an unknown id: %d", bad.status)
			}
			notice(t, b.action(t, page, "end-session", url.Values{"id": {otherID}}), "signed out")
			if got := other.get("/account"); got.url.Path != "/login" {
				t.Errorf("the ended browser is still signed in: %s", got.url)
			}
		})

		t.Run("export", func(t *testing.T) {
			got := b.action(t, b.get("/account"), "export", nil)
			var doc struct {
				Profile struct{ Username string }
			}
			if got.status != http.StatusOK || !strings.HasPrefix(got.header.Get("Content-Disposition"), "attachment;") ||
				json.Unmarshal([]byte(got.body), &doc) != nil || doc.Profile.Username != "ada" {
				t.Errorf("export: %d %q %.300s", got.status, got.header.Get("Content-Disposition"), got.body)
			}
		})

		t.Run("German", func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/account", nil)
			req.Header.Set("Accept-Language", "de-DE,de;q=0.9")
			got := b.do(req)
			if got.status != http.StatusOK || !strings.Contains(got.body, "Ihr Konto") || got.header.Get("Content-Language") != "de" {
				t.Errorf("German: %d %s %.300s", got.status, got.header.Get("Content-Language"), got.body)
			}
		})

		t.Run("bad posts", func(t *testing.T) {
			page := b.get("/account")
			f := page.forms(t)[0]
			for name, set := range map[string]url.Values{
				"unknown action": {"action": {"format-disk"}},
				"no action":      {"action": {""}},
				"no CSRF token":  {"action": {"profile"}, "csrf_token": {""}},
				"forged token":   {"action": {"profile"}, "csrf_token": {"AAAA"}},
			} {
				got := b.submit(f, set, nil)
				if got.status != http.StatusBadRequest && got.status != http.StatusForbidden {
					t.Errorf("%s: %d", name, got.status)
				}
			}
			big := b.submit(f, url.Values{"action": {"profile"}, "first_name": {strings.Repeat("x", 100<<10)}}, nil)
			if big.status != http.StatusRequestEntityTooLarge {
				t.Errorf("a 100 KiB form: %d", big.status)
			}
			anon := newWebBrowser(t, s.testServer)
			if got := anon.submit(f, url.Values{"action": {"profile"}}, nil); got.status != http.StatusForbidden {
				t.Errorf("another browser posting this one's form: %d", got.status)
			}
		})

		t.Run("delete", func(t *testing.T) {
			page := b.get("/account")
			if got := b.action(t, page, "delete-account", url.Values{"password": {"a brand new passphrase"}}); got.status != http.StatusBadRequest {
				t.Errorf("without the box ticked: %d", got.status)
			}
			if got := b.action(t, page, "delete-account", url.Values{"confirm": {"yes"}}); got.status != http.StatusUnprocessableEntity {
				t.Errorf("a login 6 minutes old, no password: %d", got.status)
			}
			if _, err := s.app.accounts.FindByLogin(ctx, "ada"); err != nil {
				t.Fatalf("refused deletions deleted: %v", err)
			}
			got := b.action(t, page, "delete-account", url.Values{"confirm": {"yes"}, "password": {"a brand new passphrase"}})
			if got.status != http.StatusOK || !strings.Contains(got.body, "deleted") {
				t.Fatalf("delete: %d %.300s", got.status, got.body)
			}
			if _, err := s.app.accounts.FindByLogin(ctx, "ada"); !errors.Is(err, account.ErrNotFound) {
				t.Errorf("after the deletion: %v", err)
			}
			if again := b.get("/account"); again.url.Path != "/login" {
				t.Errorf("after the deletion /account is %s", again.url)
			}
		})
	})
}

// signInAs signs b in through the account page as login.
func (s *accountSite) signInAs(t *testing.T, b *webBrowser, login, pw string) {
	t.Helper()
	page := b.login(b.get("/account"), login, pw, false)
	if page.url.Path != "/account" || page.status != http.StatusOK {
		t.Fatalf("sign in as %s: %s (%d)", login, page.url, page.status)
	}
}

// TestAccountPageChromium does what the account page offers in Debian's
// Chromium: signing in through it, names, picture, the email code, ending
// another browser's session, the export as a download, the German page,
// and deleting the account after re-entering the password once the login
// is more than five minutes old.
func TestAccountPageChromium(t *testing.T) {
	ctx := browsertest.New(t, browsertest.WithTimeout(4*time.Minute))
	s := newAccountSite(t, databasetest.SQLiteURL(t))
	read := func() []sentMail { return mailLog(t, s.testServer) }
	open := func(ctx context.Context) {
		t.Helper()
		browsertest.Do(t, ctx, chromedp.Navigate(s.URL+"/account"))
		browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.ID("sessions")))
	}
	status := func(ctx context.Context) string {
		t.Helper()
		return browsertest.Get(t, ctx, chromedp.Text(chromedp.CSS(`[role="status"]`)))
	}
	setField := func(ctx context.Context, sel, value string) {
		t.Helper()
		browsertest.Get(t, ctx, chromedp.Evaluate[bool](`(document.querySelector(`+strconv.Quote(sel)+`).value = "", true)`))
		browsertest.Do(t, ctx, chromedp.SendKeys(chromedp.CSS(sel), value))
	}

	t.Run("sign in through the page", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Navigate(s.URL+"/account"))
		chromeLogin(t, ctx, "ada", signinPassword)
		browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.ID("sessions")))
		if loc := browsertest.Get(t, ctx, chromedp.Location()); loc != s.URL+"/account" {
			t.Errorf("after the login at %s", loc)
		}
	})
	t.Run("names and picture", func(t *testing.T) {
		setField(ctx, `#first_name`, "Augusta")
		chromeSubmit(t, ctx, `button[name="action"][value="profile"]`)
		if msg := status(ctx); msg == "" {
			t.Error("no notice after saving")
		}
		pic := filepath.Join(t.TempDir(), "me.png")
		if err := os.WriteFile(pic, testPNG(t, 64, 48), 0o600); err != nil {
			t.Fatal(err)
		}
		browsertest.Do(t, ctx, chromedp.SetUploadFiles(chromedp.CSS(`#picture_file`), []string{pic}))
		chromeSubmit(t, ctx, `button[name="action"][value="picture"]`)
		u, err := s.app.accounts.FindByLogin(context.Background(), "ada")
		if err != nil || u.FirstName != "Augusta" || !u.HasPicture() {
			t.Errorf("after the page's changes: %+v %v", u, err)
		}
	})
	t.Run("verify the email address", func(t *testing.T) {
		chromeSubmit(t, ctx, `button[name="action"][value="resend-verification"]`)
		code := codeOf(t, waitForMail(t, read, "ada@example.com", verifySubject, 1)[0])
		setField(ctx, `#code`, code)
		chromeSubmit(t, ctx, `button[name="action"][value="verify-email"]`)
		if u, _ := s.app.accounts.FindByLogin(context.Background(), "ada"); !u.EmailVerified {
			t.Error("not verified")
		}
	})
	t.Run("end another browser's session", func(t *testing.T) {
		other := browsertest.NewUser(t, ctx)
		browsertest.Do(t, other, chromedp.Navigate(s.URL+"/account"))
		chromeLogin(t, other, "ada", signinPassword)
		browsertest.Do(t, other, chromedp.WaitVisible(chromedp.ID("sessions")))
		open(ctx)
		n := browsertest.Get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#sessions li').length`))
		if n != 2 {
			t.Fatalf("%d sessions listed, want 2", n)
		}
		// The one not marked current: its form's button.
		browsertest.Get(t, ctx, chromedp.Evaluate[bool](`(() => {
			for (const li of document.querySelectorAll('#sessions li')) {
				if (!li.dataset.current) { li.querySelector('button').id = 'end-other'; return true }
			}
			return false })()`))
		chromeSubmit(t, ctx, `#end-other`)
		browsertest.Do(t, other, chromedp.Navigate(s.URL+"/account"))
		browsertest.Do(t, other, chromedp.WaitVisible(chromedp.CSS(`input[name="login"]`)))
	})
	t.Run("change the email address", func(t *testing.T) {
		open(ctx)
		setField(ctx, `#new_email`, "augusta@example.com")
		chromeSubmit(t, ctx, `button[name="action"][value="change-email"]`)
		code := codeOf(t, waitForMail(t, read, "augusta@example.com", "Confirm your new email address", 1)[0])
		setField(ctx, `#code`, code)
		chromeSubmit(t, ctx, `button[name="action"][value="verify-email"]`)
		if email := browsertest.Get(t, ctx, chromedp.Text(chromedp.CSS(`#email p`))); !strings.Contains(email, "augusta@example.com") {
			t.Errorf("the page shows %q", email)
		}
	})
	t.Run("change the password", func(t *testing.T) {
		setField(ctx, `#current_password`, signinPassword)
		setField(ctx, `#new_password`, "a brand new passphrase")
		chromeSubmit(t, ctx, `button[name="action"][value="change-password"]`)
		if msg := status(ctx); msg == "" {
			t.Error("no notice after the change")
		}
		if _, err := s.app.accounts.Authenticate(context.Background(), "ada", "a brand new passphrase", "127.0.0.1"); err != nil {
			t.Errorf("the new password: %v", err)
		}
	})
	t.Run("export", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir}); err != nil {
			t.Fatal(err)
		}
		browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS(`button[name="action"][value="export"]`)))
		deadline := time.Now().Add(20 * time.Second)
		var doc map[string]any
		for doc == nil && time.Now().Before(deadline) {
			if files, _ := filepath.Glob(filepath.Join(dir, "idp-export-*.json")); len(files) == 1 {
				if b, err := os.ReadFile(files[0]); err == nil && json.Unmarshal(b, &doc) != nil {
					doc = nil
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		if doc == nil {
			t.Fatal("no export downloaded within 20s")
		}
		if p, _ := doc["profile"].(map[string]any); p["username"] != "ada" {
			t.Errorf("the export's profile: %v", doc["profile"])
		}
	})
	t.Run("German", func(t *testing.T) {
		de := browsertest.NewUser(t, ctx)
		if _, err := chromedp.Call(de, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": "de"}}); err != nil {
			t.Fatal(err)
		}
		browsertest.Do(t, de, chromedp.Navigate(s.URL+"/account"))
		chromeLogin(t, de, "ada", "a brand new passphrase")
		browsertest.Do(t, de, chromedp.WaitVisible(chromedp.ID("sessions")))
		if h := browsertest.Get(t, de, chromedp.Text(chromedp.CSS(`h1`))); h != "Ihr Konto" {
			t.Errorf("German heading %q", h)
		}
	})
	t.Run("delete after re-authentication", func(t *testing.T) {
		s.clock.Advance(6 * time.Minute)
		open(ctx)
		browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS(`#delete input[name="confirm"]`)))
		setField(ctx, `#delete_password`, "wrong password 12")
		chromeSubmit(t, ctx, `button[name="action"][value="delete-account"]`)
		if msg := browsertest.Get(t, ctx, chromedp.Text(chromedp.CSS(`#delete .field-error`))); msg == "" {
			t.Error("a wrong password: no message beside the field")
		}
		browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS(`#delete input[name="confirm"]`)))
		setField(ctx, `#delete_password`, "a brand new passphrase")
		chromeSubmit(t, ctx, `button[name="action"][value="delete-account"]`)
		if _, err := s.app.accounts.FindByLogin(context.Background(), "ada"); !errors.Is(err, account.ErrNotFound) {
			t.Errorf("after the deletion: %v", err)
		}
		browsertest.Do(t, ctx, chromedp.Navigate(s.URL+"/account"))
		browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.CSS(`input[name="login"]`)))
	})
}
