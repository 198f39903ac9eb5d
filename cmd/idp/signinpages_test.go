package main

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// The "Forgot password?" and "Create account" pages of CONTRACT §6, walked
// from the login page of an authorization request as a browser without
// JavaScript does, back to the client with a code.

// link returns the href of the page's link whose path is path.
func (p webPage) link(t *testing.T, path string) string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode || n.Data != "a" {
			continue
		}
		for _, a := range n.Attr {
			if a.Key != "href" {
				continue
			}
			if u, err := p.url.Parse(a.Val); err == nil && u.Path == path {
				return u.String()
			}
		}
	}
	t.Fatalf("%s: no link to %s in %.500s", p.url, path, p.body)
	return ""
}

// role returns the text of the page's elements with role (alert, status),
// joined.
func (p webPage) role(t *testing.T, role string) string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		for _, a := range n.Attr {
			if a.Key == "role" && a.Val == role {
				var b strings.Builder
				for c := range n.Descendants() {
					if c.Type == html.TextNode {
						b.WriteString(c.Data)
					}
				}
				out = append(out, strings.TrimSpace(b.String()))
			}
		}
	}
	return strings.Join(out, " | ")
}

// fieldError returns the text of the field-error paragraph that follows
// the input or select named field, or "".
func (p webPage) fieldError(t *testing.T, field string) string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode || n.Data != "input" && n.Data != "select" || attrOf(n, "name") != field {
			continue
		}
		for sib := n.NextSibling; sib != nil; sib = sib.NextSibling {
			if sib.Type != html.ElementNode {
				continue
			}
			if sib.Data == "p" && strings.Contains(attrOf(sib, "class"), "field-error") && sib.FirstChild != nil {
				return sib.FirstChild.Data
			}
			if sib.Data == "label" || sib.Data == "input" || sib.Data == "select" {
				break
			}
		}
		return ""
	}
	t.Fatalf("%s: no field %s", p.url, field)
	return ""
}

func attrOf(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// submitMultipart posts f as multipart/form-data, as a browser sends a
// form with a file input: its fields, then set (overriding), and the file
// part picture (filename "" and no bytes: no file chosen).
func (b *webBrowser) submitMultipart(f webForm, set url.Values, filename string, picture []byte) webPage {
	b.t.Helper()
	v := url.Values{}
	for k, vs := range f.fields {
		v[k] = vs
	}
	for k, vs := range set {
		v[k] = vs
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, vs := range v {
		for _, s := range vs {
			mw.WriteField(k, s)
		}
	}
	fw, err := mw.CreateFormFile("picture", filename)
	if err != nil {
		b.t.Fatal(err)
	}
	fw.Write(picture)
	mw.Close()
	req, err := http.NewRequest(http.MethodPost, f.action.String(), &body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

// hiddenStep is the value of the forgot form's step field.
func hiddenStep(t *testing.T, p webPage) string {
	t.Helper()
	return p.form(t, "/login/forgot").fields.Get("step")
}

func TestForgotPasswordPage(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL)
		mails := func() []sentMail { return mailLog(t, s.testServer) }
		b := newWebBrowser(t, s.testServer)
		pk := newPKCE()
		login := b.get(authorizePath("mobile", loopbackCB, pk, url.Values{"login_hint": {"ADA@example.com"}}))
		if login.url.Path != "/login" {
			t.Fatalf("authorize: %d at %s", login.status, login.url)
		}

		// Step 1, the login (pre-filled from login_hint).
		page := b.get(login.link(t, "/login/forgot"))
		form := page.form(t, "/login/forgot")
		if page.status != http.StatusOK || form.fields.Get("step") != "login" || form.fields.Get("login") != "ADA@example.com" {
			t.Fatalf("forgot page: %d step %q login %q", page.status, form.fields.Get("step"), form.fields.Get("login"))
		}
		// Without the form's CSRF token, nothing is sent.
		if p := b.submit(form, url.Values{"csrf_token": {"forged"}}, nil); p.status != http.StatusForbidden {
			t.Errorf("without the CSRF token: %d", p.status)
		}
		page = b.submit(form, nil, nil)
		if page.status != http.StatusOK || page.url.Path != "/login/forgot" || hiddenStep(t, page) != "code" {
			t.Fatalf("after the login: %d at %s", page.status, page.url)
		}
		notice := page.role(t, "status")
		if notice != "If an account exists for that login, we have emailed it a code." {
			t.Errorf("notice %q", notice)
		}
		code := codeOf(t, waitForMail(t, mails, "ada@example.com", "reset code", 1)[0])

		// Step 2, the code, carried in the form to step 3 and never in a URL.
		codeForm := page.form(t, "/login/forgot")
		page = b.submit(codeForm, url.Values{"code": {wrongCode(code)}}, nil)
		if hiddenStep(t, page) != "password" || strings.Contains(page.url.String(), code) {
			t.Fatalf("after the code: %d at %s: %s", page.status, page.url, page.body)
		}
		// Step 3 with a wrong code: back to the code, with the message
		// every failure shows.
		wrong := b.submit(page.form(t, "/login/forgot"), url.Values{"new_password": {newPassword}}, nil)
		if wrong.status != http.StatusBadRequest || hiddenStep(t, wrong) != "code" || wrong.role(t, "alert") != "The code is wrong or has expired." {
			t.Fatalf("a wrong code: %d step %q alert %q", wrong.status, hiddenStep(t, wrong), wrong.role(t, "alert"))
		}
		// An unknown login gets the same pages: a code page, then the
		// same refusal.
		other := newWebBrowser(t, s.testServer)
		p := other.get(other.get(authorizePath("mobile", loopbackCB, pk, nil)).link(t, "/login/forgot"))
		p = other.submit(p.form(t, "/login/forgot"), url.Values{"login": {"nobody@example.com"}}, nil)
		if hiddenStep(t, p) != "code" || p.role(t, "status") != notice {
			t.Fatalf("an unknown login: %d step %q", p.status, hiddenStep(t, p))
		}
		p = other.submit(p.form(t, "/login/forgot"), url.Values{"code": {code}}, nil)
		p = other.submit(p.form(t, "/login/forgot"), url.Values{"new_password": {newPassword}}, nil)
		if p.status != wrong.status || p.role(t, "alert") != wrong.role(t, "alert") {
			t.Errorf("an unknown login: %d %q, want what a wrong code gets", p.status, p.role(t, "alert"))
		}

		// The right code with a password the rules refuse: the password
		// step again, the code still good.
		page = b.submit(wrong.form(t, "/login/forgot"), url.Values{"code": {code}}, nil)
		weak := b.submit(page.form(t, "/login/forgot"), url.Values{"new_password": {"short"}}, nil)
		if weak.status != http.StatusUnprocessableEntity || hiddenStep(t, weak) != "password" || weak.role(t, "alert") != "The password is too short." {
			t.Fatalf("a weak password: %d step %q alert %q", weak.status, hiddenStep(t, weak), weak.role(t, "alert"))
		}
		done := b.submit(weak.form(t, "/login/forgot"), url.Values{"new_password": {newPassword}}, nil)
		if done.status != http.StatusOK || done.role(t, "status") != "Your password has been changed." {
			t.Fatalf("the reset: %d %q at %s", done.status, done.role(t, "status"), done.url)
		}
		waitForMail(t, mails, "ada@example.com", "password was changed", 1)

		// The login page of the same request: the old password is refused,
		// the new one continues the request to the client.
		if p := b.login(done, "ada", signinPassword, false); p.status != http.StatusBadRequest {
			t.Errorf("the old password: %d", p.status)
		}
		q := s.callback(t, b.login(done, "ada", newPassword, false), loopbackCB)
		if res := s.redeem("mobile", "", q.Get("code"), loopbackCB, pk.verifier); res.status != http.StatusOK {
			t.Fatalf("redeem: %d %s", res.status, res.body)
		}
		// The code is used up.
		p = b.submit(weak.form(t, "/login/forgot"), url.Values{"new_password": {"yet another passphrase"}}, nil)
		if p.status != http.StatusBadRequest || p.role(t, "alert") != wrong.role(t, "alert") {
			t.Errorf("a used code: %d %q", p.status, p.role(t, "alert"))
		}
	})
}

// TestForgotPasswordPageEndsSessions: a reset through the page ends the
// browser sessions of the user, as one through /v1 does.
func TestForgotPasswordPageEndsSessions(t *testing.T) {
	s := newSigninSite(t, "sqlite://"+t.TempDir()+"/idp.db")
	signedIn := newWebBrowser(t, s.testServer)
	s.signIn(t, signedIn, nil)
	if p := signedIn.get(authorizePath("mobile", loopbackCB, newPKCE(), nil)); p.status != http.StatusSeeOther {
		t.Fatalf("single sign-on before the reset: %d at %s", p.status, p.url)
	}

	b := newWebBrowser(t, s.testServer)
	page := b.get(b.get(authorizePath("mobile", loopbackCB, newPKCE(), nil)).link(t, "/login/forgot"))
	page = b.submit(page.form(t, "/login/forgot"), url.Values{"login": {"ada"}}, nil)
	code := codeOf(t, waitForMail(t, func() []sentMail { return mailLog(t, s.testServer) }, "ada@example.com", "reset code", 1)[0])
	page = b.submit(page.form(t, "/login/forgot"), url.Values{"code": {code}}, nil)
	if p := b.submit(page.form(t, "/login/forgot"), url.Values{"new_password": {newPassword}}, nil); p.role(t, "status") != "Your password has been changed." {
		t.Fatalf("reset: %d %s", p.status, p.url)
	}
	if p := signedIn.get(authorizePath("mobile", loopbackCB, newPKCE(), nil)); p.url.Path != "/login" {
		t.Errorf("after the reset the old session still signs in: %d at %s", p.status, p.url)
	}
}

func TestSignupPage(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		s := newSigninSite(t, dbURL)
		b := newWebBrowser(t, s.testServer)
		pk := newPKCE()
		login := b.get(authorizePath("mobile", loopbackCB, pk, nil))
		page := b.get(login.link(t, "/login/signup"))
		form := page.form(t, "/login/signup")
		if page.status != http.StatusOK || form.fields.Get("continue") == "" || form.fields.Get("csrf_token") == "" {
			t.Fatalf("signup page: %d %v", page.status, form.fields)
		}
		grace := url.Values{
			"username": {"Grace"}, "email": {"grace@example.com"}, "password": {"a sturdy passphrase"},
			"first_name": {"Grace"}, "last_name": {"Hopper"}, "gender": {"female"},
		}
		with := func(change ...string) url.Values {
			v := url.Values{}
			for k, vs := range grace {
				v[k] = vs
			}
			for i := 0; i+1 < len(change); i += 2 {
				v.Set(change[i], change[i+1])
			}
			return v
		}
		pic := testJPEG(t, 64, 48)

		// Refused forms: the page again, each message beside its field,
		// what was typed kept, the status /v1/users gives.
		p := b.submitMultipart(form, with("username", "a", "email", "not-an-address"), "me.jpg", pic)
		if p.status != http.StatusUnprocessableEntity ||
			p.fieldError(t, "username") != "Use 3 to 32 letters, digits, dots, hyphens or underscores." ||
			p.fieldError(t, "email") != "This is not a valid email address." ||
			p.fieldError(t, "first_name") != "" || p.form(t, "/login/signup").fields.Get("last_name") != "Hopper" {
			t.Errorf("invalid fields: %d username %q email %q", p.status, p.fieldError(t, "username"), p.fieldError(t, "email"))
		}
		p = b.submitMultipart(form, with("username", "ADA"), "me.jpg", pic)
		if p.status != http.StatusConflict || p.fieldError(t, "username") != "This username is taken." || p.fieldError(t, "email") != "" {
			t.Errorf("a taken username: %d %q", p.status, p.fieldError(t, "username"))
		}
		p = b.submitMultipart(form, with(), "me.jpg", []byte("not an image at all"))
		if p.status != http.StatusUnsupportedMediaType || p.fieldError(t, "picture") != "The file is not a JPEG, PNG, GIF or WebP image." {
			t.Errorf("not an image: %d %q", p.status, p.fieldError(t, "picture"))
		}
		if p := b.submitMultipart(form, with("csrf_token", "forged"), "me.jpg", pic); p.status != http.StatusForbidden {
			t.Errorf("without the CSRF token: %d", p.status)
		}
		if u, err := s.app.accounts.FindByLogin(ctx, "grace"); err == nil {
			t.Fatalf("a refused signup created %+v", u)
		}

		// Accepted, with a picture: signed in, and on to the client.
		q := s.callback(t, b.submitMultipart(form, with(), "me.jpg", pic), loopbackCB)
		res := s.redeem("mobile", "", q.Get("code"), loopbackCB, pk.verifier)
		if res.status != http.StatusOK {
			t.Fatalf("redeem: %d %s", res.status, res.body)
		}
		u, err := s.app.accounts.FindByLogin(ctx, "grace@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if u.Username != "grace" || u.FirstName != "Grace" || u.LastName != "Hopper" || u.Gender != "female" || !u.HasPicture() {
			t.Errorf("created %+v", u)
		}
		claims := s.idClaims(t, "mobile", res.json(t)["id_token"].(string))
		if claims["sub"] != strconv.FormatInt(u.ID, 10) {
			t.Errorf("ID token sub %v, want %d", claims["sub"], u.ID)
		}
		// The page's signup is the API's: the address is mailed a
		// verification code and stays unverified until it is used.
		mail := waitForMail(t, func() []sentMail { return mailLog(t, s.testServer) }, "grace@example.com", verifySubject, 1)
		if codeOf(t, mail[0]) == "" || u.EmailVerified {
			t.Errorf("after the signup page: mail %v, verified %v", mail, u.EmailVerified)
		}
		// The browser session a login would start: the next request of
		// this browser needs no page.
		if p := b.get(authorizePath("mobile", loopbackCB, newPKCE(), nil)); p.status != http.StatusSeeOther {
			t.Errorf("single sign-on after signup: %d at %s", p.status, p.url)
		}

		// Without a picture: the browser sends the file input empty.
		other := newWebBrowser(t, s.testServer)
		f := other.get(other.get(authorizePath("mobile", loopbackCB, pk, nil)).link(t, "/login/signup")).form(t, "/login/signup")
		s.callback(t, other.submitMultipart(f, with("username", "hopper", "email", "hopper@example.com"), "", nil), loopbackCB)
		if u, err := s.app.accounts.FindByLogin(ctx, "hopper"); err != nil || u.HasPicture() {
			t.Errorf("signup without a picture: %+v %v", u, err)
		}
	})
}
