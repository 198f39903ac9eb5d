package pages

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"idp/browsertest"
)

// loopback serves h on 127.0.0.1 only.
func loopback(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// loginPost is what the test server saw of a login form's POST.
type loginPost struct {
	method, login, password, remember, continueValue string
	csrfErr                                          error
}

// clientHit is what the client's redirect URI saw.
type clientHit struct {
	method string
	query  url.Values
	form   url.Values
}

const goodPassword = "correct horse battery staple"

// signInSite is a stand-in for the server's login handler, built only from
// this package's API: it renders the login page, verifies the CSRF token
// of the POST, and answers 303 to the client or the page with the error.
type signInSite struct {
	p      *Pages
	srv    *httptest.Server
	posts  chan loginPost
	client *httptest.Server
	hits   chan clientHit
	// redirect is the Flow.RedirectURI the login page declares.
	redirect string
}

func newSignInSite(t *testing.T) *signInSite {
	s := &signInSite{posts: make(chan loginPost, 10), hits: make(chan clientHit, 10)}
	s.client = loopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/attack" {
			// Another origin's page that posts a login form to the site,
			// as a login-CSRF attack would: it cannot know the token.
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/login">
<input name="login" value="mallory"><input name="password" value="%s">
<input name="csrf_token" value="guessed"></form><script>document.forms[0].submit()</script>`, s.srv.URL, goodPassword)
			return
		}
		if r.URL.Path != "/cb" { // e.g. the browser's /favicon.ico
			http.NotFound(w, r)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
		r.ParseForm()
		s.hits <- clientHit{method: r.Method, query: r.URL.Query(), form: r.PostForm}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>client</title><p id="done">signed in</p>`)
	}))
	s.redirect = s.client.URL + "/cb"

	mux := http.NewServeMux()
	s.srv = loopback(t, mux)
	var err error
	s.p, err = New(Config{Issuer: s.srv.URL, CSRFKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("GET /pages/", s.p.Handler())
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		page := Login{Flow: Flow{Continue: "req-1", RedirectURI: s.redirect}, Login: r.URL.Query().Get("login_hint")}
		s.p.Render(w, r, http.StatusOK, r.URL.Query().Get("ui_locales"), page)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
		err := s.p.CSRF().Verify(r, PurposeLogin)
		s.posts <- loginPost{
			method: r.Method, login: r.PostFormValue("login"), password: r.PostFormValue("password"),
			remember: r.PostFormValue("remember"), continueValue: r.PostFormValue("continue"), csrfErr: err,
		}
		page := Login{Flow: Flow{Continue: r.PostFormValue("continue"), RedirectURI: s.redirect}, Login: r.PostFormValue("login")}
		switch {
		case err != nil:
			page.Error = MsgFormExpired
			s.p.Render(w, r, http.StatusForbidden, "", page)
		case r.PostFormValue("password") != goodPassword:
			page.Error = MsgLoginFailed
			s.p.Render(w, r, http.StatusOK, "", page)
		default:
			SeeOther(w, r, s.client.URL+"/cb?code=abc&state=xyz")
		}
	})
	mux.HandleFunc("GET /show/{name}", func(w http.ResponseWriter, r *http.Request) {
		page, ok := allPages()[r.PathValue("name")]
		if !ok || r.PathValue("name") == "form_post" { // it would post off this machine
			http.NotFound(w, r)
			return
		}
		s.p.Render(w, r, http.StatusOK, "", page)
	})
	mux.HandleFunc("GET /form_post", func(w http.ResponseWriter, r *http.Request) {
		s.p.Render(w, r, http.StatusOK, "", FormPost{Action: s.client.URL + "/cb", Fields: []Field{{"code", "abc"}, {"state", "xyz"}}})
	})
	return s
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("no %s within 20s", what)
		panic("unreachable")
	}
}

// fillLogin types into the fixed names and presses the password sign-in.
func fillLogin(t *testing.T, ctx context.Context, login, password string) {
	t.Helper()
	browsertest.Do(t, ctx,
		chromedp.WaitVisible(chromedp.CSS(`input[name="login"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="login"]`), login),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Click(chromedp.CSS(`input[name="remember"]`)),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]:not([name])`)),
	)
}

// TestInBrowser drives Chromium through the login page: the page loads
// under its own CSP (stylesheet applied), the form's POST carries the fixed
// names and a CSRF token that verifies, the 303 is followed to the client,
// and a failed login shows its message in role="alert".
func TestInBrowser(t *testing.T) {
	ctx := browsertest.New(t)
	s := newSignInSite(t)

	t.Run("login then 303 to the client", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Navigate(s.srv.URL+"/login"))
		if n := browsertest.Get(t, ctx, chromedp.Evaluate[int](`document.styleSheets.length && document.styleSheets[0].cssRules.length`)); n == 0 {
			t.Error("the stylesheet did not load under the page's CSP")
		}
		fillLogin(t, ctx, "alice", goodPassword)
		got := receive(t, s.posts, "login POST")
		if got.method != http.MethodPost || got.login != "alice" || got.password != goodPassword || got.remember != "1" || got.continueValue != "req-1" {
			t.Errorf("POST carried %+v", got)
		}
		if got.csrfErr != nil {
			t.Errorf("the browser's CSRF token was refused: %v", got.csrfErr)
		}
		hit := receive(t, s.hits, "request at the client")
		if hit.method != http.MethodGet || hit.query.Get("code") != "abc" || hit.query.Get("state") != "xyz" {
			t.Errorf("client got %+v: the 303 was not followed as a GET", hit)
		}
		browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.ID("done")))
		if loc := browsertest.Get(t, ctx, chromedp.Location()); !strings.HasPrefix(loc, s.client.URL+"/cb?") {
			t.Errorf("browser at %q", loc)
		}
	})

	t.Run("failed login shows role=alert", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Navigate(s.srv.URL+"/login"))
		fillLogin(t, ctx, "alice", "wrong password")
		got := receive(t, s.posts, "login POST")
		if got.csrfErr != nil {
			t.Errorf("CSRF refused: %v", got.csrfErr)
		}
		browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.CSS(`[role="alert"]`)))
		if msg := browsertest.Get(t, ctx, chromedp.Text(chromedp.CSS(`[role="alert"]`))); msg != "The username, email or password is not right." {
			t.Errorf("alert %q", msg)
		}
		if v := browsertest.Get(t, ctx, chromedp.Value(chromedp.CSS(`input[name="login"]`))); v != "alice" {
			t.Errorf("login field %q after a failure", v)
		}
		select {
		case hit := <-s.hits:
			t.Errorf("a failed login reached the client: %+v", hit)
		default:
		}
	})

	t.Run("another origin's form is refused", func(t *testing.T) {
		// The browser holds the site's CSRF cookie from the steps above.
		browsertest.Do(t, ctx, chromedp.Navigate(s.client.URL+"/attack"))
		got := receive(t, s.posts, "the attacker's POST")
		if got.login != "mallory" {
			t.Fatalf("unexpected POST %+v", got)
		}
		if got.csrfErr == nil {
			t.Error("a cross-origin form without the token was accepted")
		}
		t.Logf("refused: %v", got.csrfErr)
		select {
		case hit := <-s.hits:
			t.Errorf("the forged login reached the client: %+v", hit)
		case <-time.After(500 * time.Millisecond):
		}
	})

	t.Run("German by ui_locales", func(t *testing.T) {
		// Chromium asks for en-US by default: ui_locales must win.
		browsertest.Do(t, ctx, chromedp.Navigate(s.srv.URL+"/login?ui_locales=de"))
		if label := browsertest.Get(t, ctx, chromedp.Text(chromedp.CSS(`label[for="password"]`))); label != "Passwort" {
			t.Errorf("password label %q, want Passwort", label)
		}
		if lang := browsertest.Get(t, ctx, chromedp.Evaluate[string](`document.documentElement.lang`)); lang != "de" {
			t.Errorf("lang %q", lang)
		}
	})

	t.Run("login hint with markup stays text", func(t *testing.T) {
		hint := `"><script>document.title="owned"</script>`
		browsertest.Do(t, ctx, chromedp.Navigate(s.srv.URL+"/login?login_hint="+url.QueryEscape(hint)))
		if v := browsertest.Get(t, ctx, chromedp.Value(chromedp.CSS(`input[name="login"]`))); v != hint {
			t.Errorf("login field %q", v)
		}
		if title := browsertest.Get(t, ctx, chromedp.Title()); title == "owned" {
			t.Error("the hint ran as script")
		}
	})

	t.Run("form_post submits itself under its nonce", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Navigate(s.srv.URL+"/form_post"))
		hit := receive(t, s.hits, "form_post at the client")
		if hit.method != http.MethodPost || hit.form.Get("code") != "abc" || hit.form.Get("state") != "xyz" {
			t.Errorf("client got %+v", hit)
		}
	})

	t.Run("form_post without JavaScript: the button posts", func(t *testing.T) {
		if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatal(err)
		}
		defer chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false})
		browsertest.Do(t, ctx, chromedp.Navigate(s.srv.URL+"/form_post"))
		select {
		case hit := <-s.hits:
			t.Fatalf("the page submitted itself with scripts off: %+v", hit)
		case <-time.After(500 * time.Millisecond):
		}
		browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
		hit := receive(t, s.hits, "form_post at the client")
		if hit.method != http.MethodPost || hit.form.Get("code") != "abc" {
			t.Errorf("client got %+v", hit)
		}
	})

	t.Run("readable on a phone", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.EmulateViewport(360, 640, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
		defer chromedp.Do(ctx, chromedp.ResetViewport())
		for name := range allPages() {
			if name == "form_post" {
				continue
			}
			browsertest.Do(t, ctx, chromedp.Navigate(s.srv.URL+"/show/"+name))
			// Laid out at the phone's width (the viewport meta), nothing
			// wider than it, text no smaller than 16 CSS px.
			w := browsertest.Get(t, ctx, chromedp.Evaluate[[]int](`[document.documentElement.clientWidth, document.documentElement.scrollWidth]`))
			size := browsertest.Get(t, ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).fontSize`))
			if w[0] != 360 || w[1] > w[0] || size != "16px" {
				t.Errorf("%s on a 360px phone: laid out %dpx wide, content %dpx, font size %s", name, w[0], w[1], size)
			}
		}
	})

	// Browsers apply form-action to the redirects after a form's POST: a
	// login page that allows only 'self' cannot end at the client. This is
	// why form pages declare Flow.RedirectURI.
	t.Run("form-action without the client stops the redirect", func(t *testing.T) {
		s.redirect = ""
		defer func() { s.redirect = s.client.URL + "/cb" }()
		browsertest.Do(t, ctx, chromedp.Navigate(s.srv.URL+"/login"))
		fillLogin(t, ctx, "alice", goodPassword)
		if got := receive(t, s.posts, "login POST"); got.csrfErr != nil {
			t.Fatalf("CSRF refused: %v", got.csrfErr)
		}
		select {
		case hit := <-s.hits:
			t.Errorf("the browser followed the redirect past form-action 'self': %+v", hit)
		case <-time.After(2 * time.Second):
		}
	})
}
