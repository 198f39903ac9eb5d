package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// webBrowser is a browser without JavaScript over HTTP: a cookie jar, the
// server's redirects followed, a redirect anywhere else (to a client)
// stopped and returned, and the pages' forms filled in by their fixed
// names (CONTRACT §6). The Chromium tests drive a real browser; this one
// makes the protocol tests fast and exact.
type webBrowser struct {
	t  *testing.T
	s  *testServer
	c  *http.Client
	ua string
	// onRequest, when set, sees every request, redirects included.
	onRequest func(*http.Request)
}

func newWebBrowser(t *testing.T, s *testServer) *webBrowser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &webBrowser{t: t, s: s, ua: "webBrowser/1.0"}
	server, _ := url.Parse(s.URL)
	b.c = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != server.Host || len(via) > 10 {
			return http.ErrUseLastResponse
		}
		if b.onRequest != nil {
			b.onRequest(req)
		}
		return nil
	}}
	return b
}

// webPage is one answer: the last of the redirects the browser followed.
type webPage struct {
	status int
	url    *url.URL // where the answer came from
	header http.Header
	body   string
}

// location is the redirect a stopped answer points to.
func (p webPage) location(t *testing.T) *url.URL {
	t.Helper()
	loc := p.header.Get("Location")
	if p.status != http.StatusSeeOther && p.status != http.StatusFound || loc == "" {
		t.Fatalf("%s: want a redirect to the client, got %d %q: %.300s", p.url, p.status, loc, p.body)
	}
	u, err := p.url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (b *webBrowser) do(req *http.Request) webPage {
	b.t.Helper()
	req.Header.Set("User-Agent", b.ua)
	if b.onRequest != nil {
		b.onRequest(req)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	if res.StatusCode >= 500 && res.StatusCode != http.StatusServiceUnavailable {
		b.t.Errorf("%s %s: status %d: %s", req.Method, res.Request.URL, res.StatusCode, body)
	}
	b.s.checkOpenAPI(res, body)
	return webPage{status: res.StatusCode, url: res.Request.URL, header: res.Header, body: string(body)}
}

// get loads a URL (absolute, or a path on the server).
func (b *webBrowser) get(rawURL string) webPage {
	b.t.Helper()
	if strings.HasPrefix(rawURL, "/") {
		rawURL = b.s.URL + rawURL
	}
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// webForm is a form of a page: where it posts and its fields' values.
type webForm struct {
	action  *url.URL
	fields  url.Values
	buttons []url.Values // name=value of each submit button
}

// forms parses the forms of a page.
func (p webPage) forms(t *testing.T) []webForm {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	var out []webForm
	var walk func(n *html.Node, f *webForm)
	walk = func(n *html.Node, f *webForm) {
		if n.Type == html.ElementNode {
			attr := func(k string) (string, bool) {
				for _, a := range n.Attr {
					if a.Key == k {
						return a.Val, true
					}
				}
				return "", false
			}
			switch n.Data {
			case "form":
				action, _ := attr("action")
				u, err := p.url.Parse(action)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, webForm{action: u, fields: url.Values{}})
				f = &out[len(out)-1]
			case "input":
				if f == nil {
					break
				}
				name, _ := attr("name")
				typ, _ := attr("type")
				value, _ := attr("value")
				_, checked := attr("checked")
				if name == "" || typ == "checkbox" && !checked || typ == "file" {
					break
				}
				f.fields.Set(name, value)
			case "button":
				if f == nil {
					break
				}
				name, _ := attr("name")
				value, _ := attr("value")
				btn := url.Values{}
				if name != "" {
					btn.Set(name, value)
				}
				f.buttons = append(f.buttons, btn)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, f)
			// A form's children were walked with it; the next form starts
			// a new one.
			if c.Type == html.ElementNode && c.Data == "form" {
				f = nil
			}
		}
	}
	walk(doc, nil)
	return out
}

// form returns the page's form that posts to path.
func (p webPage) form(t *testing.T, path string) webForm {
	t.Helper()
	for _, f := range p.forms(t) {
		if f.action.Path == path {
			return f
		}
	}
	t.Fatalf("%s (%d): no form posting to %s in %.500s", p.url, p.status, path, p.body)
	return webForm{}
}

// submit posts f with its fields, then set (overriding), then button
// (a name=value pair, or nil for a form without a named button).
func (b *webBrowser) submit(f webForm, set url.Values, button url.Values) webPage {
	b.t.Helper()
	v := url.Values{}
	for k, vs := range f.fields {
		v[k] = vs
	}
	for k, vs := range set {
		v[k] = vs
	}
	for k, vs := range button {
		v[k] = vs
	}
	req, err := http.NewRequest(http.MethodPost, f.action.String(), strings.NewReader(v.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// login fills the login form of p and submits it.
func (b *webBrowser) login(p webPage, login, password string, remember bool) webPage {
	b.t.Helper()
	f := p.form(b.t, "/login")
	set := url.Values{"login": {login}, "password": {password}}
	if remember {
		set.Set("remember", "1")
	}
	return b.submit(f, set, nil)
}
