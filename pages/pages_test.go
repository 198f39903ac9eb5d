package pages

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func newPages(t testing.TB, issuer string) *Pages {
	t.Helper()
	p, err := New(Config{Issuer: issuer, CSRFKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// render renders page for a GET of r (a plain GET / when nil).
func render(t testing.TB, p *Pages, r *http.Request, status int, uiLocales string, page Page) *httptest.ResponseRecorder {
	t.Helper()
	if r == nil {
		r = httptest.NewRequest(http.MethodGet, "/", nil)
	}
	w := httptest.NewRecorder()
	if err := p.Render(w, r, status, uiLocales, page); err != nil {
		t.Fatalf("Render: %v", err)
	}
	return w
}

func parse(t testing.TB, w *httptest.ResponseRecorder) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(w.Body.String()))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func attrVal(n *html.Node, key string) string { v, _ := attr(n, key); return v }

// findAll returns the elements for which match holds, in document order.
func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for c := range n.Descendants() {
		if c.Type == html.ElementNode && match(c) {
			out = append(out, c)
		}
	}
	return out
}

func tag(name string, kv ...string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		if n.Data != name {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if v, ok := attr(n, kv[i]); !ok || v != kv[i+1] {
				return false
			}
		}
		return true
	}
}

func text(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// allPages is one of each page, with hidden state to carry.
func allPages() map[string]Page {
	flow := Flow{Continue: "req-123", RedirectURI: "https://client.example/cb"}
	return map[string]Page{
		"login":           Login{Flow: flow, Login: "alice", Passkey: true, Error: MsgLoginFailed},
		"consent":         Consent{Flow: flow, ClientName: "Example", Scopes: []string{"openid", "profile", "custom:thing"}},
		"logout":          LogoutConfirm{Flow: Flow{Continue: "lo-1"}, ClientName: "Example"},
		"signed_out":      SignedOut{},
		"error":           Error{Message: MsgUnknownClient},
		"forgot_login":    Forgot{Flow: flow, Step: ForgotLogin},
		"forgot_code":     Forgot{Flow: flow, Step: ForgotCode, Login: "alice", Notice: MsgCodeSent},
		"forgot_password": Forgot{Flow: flow, Step: ForgotPassword, Login: "alice", Code: "12345678", PasswordMin: 12},
		"signup":          Signup{Flow: flow, Username: "bob", Errors: map[string]Message{"email": MsgEmailTaken}, PasswordMin: 12},
		"account": Account{Username: "alice", Email: "alice@example.com", FirstName: "Alice", LastName: "Liddell", Gender: "female",
			PictureURL: "https://pictures.example/a.png", Reauth: true, PasswordMin: 12, Notice: MsgSaved,
			Errors:     map[string]Message{"new_email": MsgEmailInvalid},
			Sessions:   []AccountSession{{ID: "b-1", UserAgent: "Firefox", Created: "2026-12-01 10:00", LastUsed: "2026-12-02 09:00", Current: true}, {ID: "r-2", Client: "mobile"}},
			PasskeysOn: true, Passkeys: []AccountPasskey{{ID: "p1", Name: "Laptop", Created: "2026-12-01 10:00"}}},
		"account_deleted": AccountDeleted{},
		"form_post":       FormPost{Action: "https://client.example/cb", Fields: []Field{{"code", "abc"}, {"state", "xyz"}, {"iss", "http://localhost:8080"}}},
	}
}

// formPurpose is the CSRF purpose each page's form must carry.
var formPurpose = map[string]string{
	"login": PurposeLogin, "consent": PurposeConsent, "logout": PurposeLogout,
	"forgot_login": PurposeForgotLogin, "forgot_code": PurposeForgotCode,
	"forgot_password": PurposeForgotPassword, "signup": PurposeSignup, "account": PurposeAccount,
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Issuer: "http://localhost:8080", CSRFKey: testKey[:31]},
		{Issuer: "ftp://x", CSRFKey: testKey},
		{Issuer: "", CSRFKey: testKey},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%q, %d-byte key) succeeded", cfg.Issuer, len(cfg.CSRFKey))
		}
	}
}

func TestEveryPageHeaders(t *testing.T) {
	p := newPages(t, "http://localhost:8080")
	for name, page := range allPages() {
		t.Run(name, func(t *testing.T) {
			w := render(t, p, nil, http.StatusOK, "", page)
			h := w.Header()
			for k, want := range map[string]string{
				"Content-Type":           "text/html; charset=utf-8",
				"Cache-Control":          "no-store",
				"X-Frame-Options":        "DENY",
				"Referrer-Policy":        "no-referrer",
				"X-Content-Type-Options": "nosniff",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			csp := parseCSP(h.Get("Content-Security-Policy"))
			for k, want := range map[string]string{
				"frame-ancestors": "'none'",
				"default-src":     "'none'",
				"style-src":       "'self'",
				"base-uri":        "'none'",
			} {
				if csp[k] != want {
					t.Errorf("CSP %s %q, want %q (policy %q)", k, csp[k], want, h.Get("Content-Security-Policy"))
				}
			}
			if name == "form_post" {
				if csp["form-action"] != "https://client.example" {
					t.Errorf("form_post form-action %q, want the client's origin only", csp["form-action"])
				}
			} else if name == "login" || name == "account" {
				// The login and account pages with passkeys on load their
				// script, from this site only, and fetch options here only.
				if csp["script-src"] != "'self'" || csp["connect-src"] != "'self'" {
					t.Errorf("login: script-src %q, connect-src %q, want 'self' both", csp["script-src"], csp["connect-src"])
				}
			} else {
				if _, ok := csp["script-src"]; ok {
					t.Errorf("script-src %q on a page without script", csp["script-src"])
				}
				if fa := csp["form-action"]; !strings.HasPrefix(fa, "'self'") {
					t.Errorf("form-action %q", fa)
				}
			}

			doc := parse(t, w)
			htmlEl := findAll(doc, tag("html"))
			if len(htmlEl) != 1 || attrVal(htmlEl[0], "lang") != "en" {
				t.Errorf("<html lang> is not en")
			}
			if len(findAll(doc, tag("meta", "name", "viewport"))) != 1 {
				t.Error("no viewport meta")
			}
			links := findAll(doc, tag("link", "rel", "stylesheet"))
			if len(links) != 1 || !strings.HasPrefix(attrVal(links[0], "href"), StylePath+"?v=") {
				t.Errorf("stylesheet links %v", links)
			}
			scripts := findAll(doc, tag("script"))
			if name == "login" || name == "account" {
				if len(scripts) != 1 || !strings.HasPrefix(attrVal(scripts[0], "src"), PasskeyScriptPath+"?v=") {
					t.Errorf("login: scripts %v, want the passkey script", scripts)
				}
			} else if name == "form_post" && len(scripts) != 1 || name != "form_post" && len(scripts) != 0 {
				t.Errorf("%d scripts", len(scripts))
			}
			for _, el := range findAll(doc, func(n *html.Node) bool { return hasAttr(n, "style") }) {
				t.Errorf("inline style on <%s>: CSP forbids it", el.Data)
			}
			if strings.Contains(w.Body.String(), "%!") {
				t.Errorf("a format verb went wrong: %s", w.Body.String())
			}
		})
	}
}

func hasAttr(n *html.Node, key string) bool { _, ok := attr(n, key); return ok }

func parseCSP(s string) map[string]string {
	out := map[string]string{}
	for _, d := range strings.Split(s, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			out[f[0]] = strings.Join(f[1:], " ")
		}
	}
	return out
}

func TestEveryInputIsLabelled(t *testing.T) {
	p := newPages(t, "http://localhost:8080")
	for name, page := range allPages() {
		t.Run(name, func(t *testing.T) {
			doc := parse(t, render(t, p, nil, http.StatusOK, "", page))
			labelFor := map[string]bool{}
			for _, l := range findAll(doc, tag("label")) {
				if f := attrVal(l, "for"); f != "" {
					if text(l) == "" {
						t.Errorf("label for %q has no text", f)
					}
					labelFor[f] = true
				}
			}
			controls := findAll(doc, func(n *html.Node) bool {
				switch n.Data {
				case "select", "textarea":
					return true
				case "input":
					switch attrVal(n, "type") {
					case "hidden", "submit", "button", "reset", "image":
						return false
					}
					return true
				}
				return false
			})
			for _, c := range controls {
				if id := attrVal(c, "id"); id != "" && labelFor[id] {
					continue
				}
				if insideLabel(c) {
					continue
				}
				t.Errorf("<%s name=%q> has no label", c.Data, attrVal(c, "name"))
			}
			for _, b := range findAll(doc, tag("button")) {
				if text(b) == "" {
					t.Errorf("button %q has no text", attrVal(b, "name"))
				}
			}
		})
	}
}

func insideLabel(n *html.Node) bool {
	for a := n.Parent; a != nil; a = a.Parent {
		if a.Type == html.ElementNode && a.Data == "label" && text(a) != "" {
			return true
		}
	}
	return false
}

// one returns the only element that match selects, failing otherwise.
func one(t *testing.T, doc *html.Node, what string, match func(*html.Node) bool) *html.Node {
	t.Helper()
	els := findAll(doc, match)
	if len(els) != 1 {
		t.Fatalf("%d elements %s, want 1", len(els), what)
	}
	return els[0]
}

func TestLoginFixedNames(t *testing.T) {
	p := newPages(t, "http://localhost:8080")
	doc := parse(t, render(t, p, nil, http.StatusOK, "", Login{Flow: Flow{Continue: "req 1&x"}}))
	form := one(t, doc, "form", tag("form"))
	if attrVal(form, "method") != "post" || attrVal(form, "action") != "/login" {
		t.Errorf("form method %q action %q", attrVal(form, "method"), attrVal(form, "action"))
	}
	login := one(t, form, "input[name=login]", tag("input", "name", "login"))
	if got := attrVal(login, "autocomplete"); got != "username webauthn" {
		t.Errorf("login autocomplete %q", got)
	}
	pw := one(t, form, "input[name=password]", tag("input", "name", "password"))
	if attrVal(pw, "type") != "password" || attrVal(pw, "autocomplete") != "current-password" {
		t.Errorf("password input %v", pw.Attr)
	}
	one(t, form, "checkbox remember", tag("input", "name", "remember", "type", "checkbox"))
	one(t, form, "submit button", func(n *html.Node) bool {
		return n.Data == "button" && attrVal(n, "type") != "button" || n.Data == "input" && attrVal(n, "type") == "submit"
	})
	if len(findAll(form, tag("button", "name", "method", "value", "passkey"))) != 0 {
		t.Error("passkey button shown while switched off")
	}
	if len(findAll(doc, func(n *html.Node) bool { return hasAttr(n, "role") })) != 0 {
		t.Error("an alert without an error")
	}
	cont := one(t, form, "hidden continue", tag("input", "name", "continue", "type", "hidden"))
	if attrVal(cont, "value") != "req 1&x" {
		t.Errorf("continue %q", attrVal(cont, "value"))
	}
	for _, want := range []struct{ path, text string }{{"/login/forgot", "Forgot password?"}, {"/login/signup", "Create account"}} {
		a := one(t, doc, "link "+want.text, func(n *html.Node) bool { return n.Data == "a" && text(n) == want.text })
		u, err := url.Parse(attrVal(a, "href"))
		if err != nil || u.Path != want.path || u.Query().Get("continue") != "req 1&x" {
			t.Errorf("link %q: href %q", want.text, attrVal(a, "href"))
		}
	}

	// Switched on, and failed.
	doc = parse(t, render(t, p, nil, http.StatusOK, "", Login{Passkey: true, Error: MsgLoginFailed, Login: "alice"}))
	one(t, doc, "passkey button", tag("button", "name", "method", "value", "passkey"))
	alert := one(t, doc, "role=alert", func(n *html.Node) bool { return attrVal(n, "role") == "alert" })
	if text(alert) != "The username, email or password is not right." {
		t.Errorf("alert %q", text(alert))
	}
	if v := attrVal(one(t, doc, "login", tag("input", "name", "login")), "value"); v != "alice" {
		t.Errorf("login not kept: %q", v)
	}
	// The password button stays the form's first, so Enter signs in with
	// the password.
	buttons := findAll(doc, tag("button"))
	if len(buttons) != 2 || hasAttr(buttons[0], "name") {
		t.Errorf("first button is not the password sign-in")
	}
}

// TestLoginNotice: the login page the password reset ends on says, as a
// status and not an alert, that the password changed.
func TestLoginNotice(t *testing.T) {
	p := newPages(t, "http://localhost:8080")
	doc := parse(t, render(t, p, nil, http.StatusOK, "", Login{Flow: Flow{Continue: "req-1"}, Notice: MsgPasswordChanged}))
	status := one(t, doc, "role=status", func(n *html.Node) bool { return attrVal(n, "role") == "status" })
	if text(status) != "Your password has been changed." {
		t.Errorf("notice %q", text(status))
	}
	if n := len(findAll(doc, func(n *html.Node) bool { return attrVal(n, "role") == "alert" })); n != 0 {
		t.Errorf("%d alerts with a notice only", n)
	}
}

func TestConsentLogoutSignupFixedNames(t *testing.T) {
	p := newPages(t, "http://localhost:8080")
	pages := allPages()

	doc := parse(t, render(t, p, nil, http.StatusOK, "", pages["consent"]))
	one(t, doc, "allow", tag("button", "name", "decision", "value", "allow"))
	one(t, doc, "deny", tag("button", "name", "decision", "value", "deny"))
	items := findAll(doc, tag("li"))
	var got []string
	for _, li := range items {
		got = append(got, text(li))
	}
	want := []string{"know who you are (your account id)", "see your username, name, gender and picture", "custom:thing"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("scopes %q, want %q", got, want)
	}
	if h := text(one(t, doc, "h1", tag("h1"))); !strings.Contains(h, "Example") {
		t.Errorf("heading %q lacks the client's name", h)
	}
	// A request for no scope still tells the client who the user is: the
	// page says so rather than listing nothing.
	for _, lang := range []string{"en", "de"} {
		doc := parse(t, render(t, p, nil, http.StatusOK, lang, Consent{ClientName: "Example"}))
		items := findAll(doc, tag("li"))
		if len(items) != 1 || text(items[0]) == "" || text(items[0]) == "openid" {
			t.Errorf("%s: a consent for no scope lists %d items, want the account id's line", lang, len(items))
		}
	}

	doc = parse(t, render(t, p, nil, http.StatusOK, "", pages["logout"]))
	one(t, doc, "logout", tag("button", "name", "decision", "value", "logout"))

	doc = parse(t, render(t, p, nil, http.StatusOK, "", pages["signup"]))
	form := one(t, doc, "form", tag("form"))
	if attrVal(form, "enctype") != "multipart/form-data" || attrVal(form, "method") != "post" {
		t.Errorf("signup form %v", form.Attr)
	}
	for _, f := range []string{"username", "email", "password", "first_name", "last_name"} {
		one(t, form, f, tag("input", "name", f))
	}
	one(t, form, "gender", tag("select", "name", "gender"))
	for _, g := range []string{"female", "male", "unspecified"} {
		one(t, form, "gender "+g, tag("option", "value", g))
	}
	one(t, form, "picture", tag("input", "name", "picture", "type", "file"))
	email := one(t, form, "email", tag("input", "name", "email"))
	if attrVal(email, "aria-invalid") != "true" {
		t.Error("the field with an error is not marked invalid")
	}
	if !strings.Contains(text(form), "An account with this email address exists already.") {
		t.Error("field error not shown")
	}
}

func TestForgotSteps(t *testing.T) {
	p := newPages(t, "http://localhost:8080")
	for _, tc := range []struct {
		step    ForgotStep
		visible []string
		hidden  map[string]string
	}{
		{ForgotLogin, []string{"login"}, map[string]string{"step": "login", "continue": "c"}},
		{ForgotCode, []string{"code"}, map[string]string{"step": "code", "login": "alice", "continue": "c"}},
		{ForgotPassword, []string{"new_password"}, map[string]string{"step": "password", "login": "alice", "code": "12345678", "continue": "c"}},
	} {
		doc := parse(t, render(t, p, nil, http.StatusOK, "", Forgot{Flow: Flow{Continue: "c"}, Step: tc.step, Login: "alice", Code: "12345678"}))
		var visible []string
		hidden := map[string]string{}
		for _, in := range findAll(doc, tag("input")) {
			if attrVal(in, "type") == "hidden" {
				if n := attrVal(in, "name"); n != CSRFField {
					hidden[n] = attrVal(in, "value")
				}
			} else {
				visible = append(visible, attrVal(in, "name"))
			}
		}
		if strings.Join(visible, ",") != strings.Join(tc.visible, ",") {
			t.Errorf("step %d: inputs %v, want %v", tc.step, visible, tc.visible)
		}
		if len(hidden) != len(tc.hidden) {
			t.Errorf("step %d: hidden %v, want %v", tc.step, hidden, tc.hidden)
		}
		for k, v := range tc.hidden {
			if hidden[k] != v {
				t.Errorf("step %d: hidden %s=%q, want %q", tc.step, k, hidden[k], v)
			}
		}
	}
}

func TestFormPostNonce(t *testing.T) {
	p := newPages(t, "http://localhost:8080")
	page := allPages()["form_post"]
	nonceRE := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9+/=]+)'`)
	var nonces []string
	for range 2 {
		w := render(t, p, nil, http.StatusOK, "", page)
		m := nonceRE.FindStringSubmatch(w.Header().Get("Content-Security-Policy"))
		if m == nil {
			t.Fatalf("no nonce in CSP %q", w.Header().Get("Content-Security-Policy"))
		}
		doc := parse(t, w)
		script := one(t, doc, "script", tag("script"))
		if attrVal(script, "nonce") != m[1] {
			t.Errorf("script nonce %q, CSP nonce %q", attrVal(script, "nonce"), m[1])
		}
		if len(m[1]) < 22 {
			t.Errorf("nonce %q is short", m[1])
		}
		nonces = append(nonces, m[1])

		form := one(t, doc, "form", tag("form"))
		if attrVal(form, "action") != "https://client.example/cb" || attrVal(form, "method") != "post" {
			t.Errorf("form %v", form.Attr)
		}
		got := map[string]string{}
		for _, in := range findAll(form, tag("input", "type", "hidden")) {
			got[attrVal(in, "name")] = attrVal(in, "value")
		}
		if got["code"] != "abc" || got["state"] != "xyz" || got["iss"] != "http://localhost:8080" || len(got) != 3 {
			t.Errorf("fields %v", got)
		}
		if b := one(t, form, "Continue button", tag("button", "type", "submit")); text(b) != "Continue" {
			t.Errorf("button %q", text(b))
		}
	}
	if nonces[0] == nonces[1] {
		t.Error("two responses share a nonce")
	}
}

func TestEscapesUserValues(t *testing.T) {
	p := newPages(t, "http://localhost:8080")
	evil := `"><script>alert(1)</script><x y="`
	for name, page := range map[string]Page{
		"login hint":  Login{Login: evil, Flow: Flow{Continue: evil}},
		"client name": Consent{ClientName: evil, Scopes: []string{evil}},
		"logout":      LogoutConfirm{ClientName: evil},
		"signup":      Signup{Username: evil, Email: evil, FirstName: evil, LastName: evil, Gender: evil},
		"form_post":   FormPost{Action: "https://client.example/cb", Fields: []Field{{evil, evil}}},
	} {
		t.Run(name, func(t *testing.T) {
			w := render(t, p, nil, http.StatusOK, "", page)
			doc := parse(t, w)
			want := 0
			if name == "form_post" {
				want = 1
			}
			if n := len(findAll(doc, tag("script"))); n != want {
				t.Errorf("%d <script> elements: the value was not escaped\n%s", n, w.Body)
			}
			if len(findAll(doc, tag("x"))) != 0 {
				t.Error("an injected element")
			}
			// The value arrives intact where it belongs.
			found := false
			for n := range doc.Descendants() {
				if n.Type == html.TextNode && strings.Contains(n.Data, evil) {
					found = true
				}
				for _, a := range n.Attr {
					if a.Val == evil {
						found = true
					}
				}
			}
			if !found {
				t.Error("the value is not shown as it is")
			}
		})
	}

	// A script URL as form_post target is neutralised, never run.
	w := render(t, p, nil, http.StatusOK, "", FormPost{Action: "javascript:alert(1)"})
	if strings.Contains(w.Body.String(), "javascript:") {
		t.Error("javascript: URL in the page")
	}
	if fa := parseCSP(w.Header().Get("Content-Security-Policy"))["form-action"]; fa != "'none'" {
		t.Errorf("form-action for a script URL: %q, want 'none'", fa)
	}
}

func TestSeeOther(t *testing.T) {
	w := httptest.NewRecorder()
	SeeOther(w, httptest.NewRequest(http.MethodPost, "/login", nil), "/oauth2/authorize?continue=x")
	if w.Code != http.StatusSeeOther {
		t.Errorf("status %d, want 303", w.Code)
	}
	if got := w.Header().Get("Location"); got != "/oauth2/authorize?continue=x" {
		t.Errorf("Location %q", got)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Error("a redirect after POST may be cached")
	}
}

func TestStylesheet(t *testing.T) {
	p := newPages(t, "http://localhost:8080")
	h := p.Handler()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, StylePath+"?v=abc", nil))
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") || w.Body.Len() == 0 {
		t.Fatalf("GET %s: %d %q", StylePath, w.Code, w.Header().Get("Content-Type"))
	}
	if cc := w.Header().Get("Cache-Control"); !regexp.MustCompile(`^public, max-age=[1-9][0-9]*$`).MatchString(cc) {
		t.Errorf("Cache-Control %q", cc)
	}
	etag := w.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	r := httptest.NewRequest(http.MethodGet, StylePath, nil)
	r.Header.Set("If-None-Match", etag)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("If-None-Match: %d, %d bytes", w.Code, w.Body.Len())
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/pages/other.css", http.StatusNotFound},
		{http.MethodGet, "/pages/../pages/style.css", http.StatusNotFound},
		{http.MethodPost, StylePath, http.StatusMethodNotAllowed},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(tc.method, "/", nil)
		r.URL.Path = tc.path
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, w.Code, tc.want)
		}
	}
	// The page's link changes with the stylesheet's content.
	if !strings.Contains(render(t, p, nil, 200, "", SignedOut{}).Body.String(), StylePath+"?v="+strings.Trim(etag, `"`)) {
		t.Error("the page does not link the stylesheet by its ETag")
	}
}

func TestCSPSource(t *testing.T) {
	for in, want := range map[string]string{
		"https://client.example/cb?x=1":  "https://client.example",
		"http://127.0.0.1:53124/cb":      "http://127.0.0.1:53124",
		"http://[::1]:8080/cb":           "http://[::1]:8080",
		"HTTPS://Client.Example:443/":    "https://client.example:443",
		"com.example.app:/callback":      "com.example.app:",
		"":                               "",
		"https://a.example;script-src *": "",
		"https://a b/":                   "",
		"https://a.example'/":            "",
		"javascript:alert(1)":            "",
		"data:text/html,x":               "",
	} {
		if got := CSPSource(in); got != want {
			t.Errorf("CSPSource(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPasskeyScript(t *testing.T) {
	p := newPages(t, "http://localhost:8080")
	w := httptest.NewRecorder()
	p.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, PasskeyScriptPath+"?v=abc", nil))
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" ||
		w.Header().Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(w.Body.String(), "navigator.credentials.get") {
		t.Fatalf("GET %s: %d %q", PasskeyScriptPath, w.Code, w.Header().Get("Content-Type"))
	}
	etag := w.Header().Get("ETag")
	// The login page loads the script of this content, and the page
	// without passkeys loads none.
	body := render(t, p, nil, 200, "", Login{Passkey: true}).Body.String()
	if !strings.Contains(body, PasskeyScriptPath+"?v="+strings.Trim(etag, `"`)) || !strings.Contains(body, `data-passkey-options="/login/passkey/options"`) {
		t.Errorf("login page: %.500s", body)
	}
	off := render(t, p, nil, 200, "", Login{})
	if strings.Contains(off.Body.String(), "<script") || strings.Contains(off.Header().Get("Content-Security-Policy"), "script-src") {
		t.Error("the login page without passkeys loads a script")
	}
}
