package pages

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// browser mints a cookie and a token for purpose, as a GET of a form page
// would, and returns them.
func browser(t *testing.T, c *CSRF, purpose string) (*http.Cookie, string) {
	t.Helper()
	w := httptest.NewRecorder()
	tok := c.Token(w, httptest.NewRequest(http.MethodGet, "/login", nil), purpose)
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("%d cookies set, want 1", len(cookies))
	}
	return cookies[0], tok
}

func post(cookie *http.Cookie, field *string, extra http.Header) *http.Request {
	form := url.Values{"login": {"alice"}}
	if field != nil {
		form.Set(CSRFField, *field)
	}
	r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cookie != nil {
		r.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	}
	for k, v := range extra {
		r.Header[k] = v
	}
	return r
}

func TestCSRFVerify(t *testing.T) {
	c, err := NewCSRF(testKey, false)
	if err != nil {
		t.Fatal(err)
	}
	mine, tok := browser(t, c, PurposeLogin)
	other, otherTok := browser(t, c, PurposeLogin)
	_, consentTok := browser(t, c, PurposeConsent)
	otherKey, _ := NewCSRF([]byte("another key of at least thirty-two bytes"), false)
	_, otherKeyTok := browser(t, otherKey, PurposeLogin)
	sameCookieConsent := c.sign(mine.Value, PurposeConsent)
	empty := ""
	tampered := tok[:len(tok)-2] + "AA"
	short := &http.Cookie{Name: mine.Name, Value: "abc"}
	forged := &http.Cookie{Name: mine.Name, Value: strings.Repeat("A", 43)}

	for _, tc := range []struct {
		name   string
		cookie *http.Cookie
		field  *string
		header http.Header
		ok     bool
	}{
		{"the browser's own token", mine, &tok, nil, true},
		{"same-origin fetch metadata", mine, &tok, http.Header{"Sec-Fetch-Site": {"same-origin"}}, true},
		{"no form field", mine, nil, nil, false},
		{"empty form field", mine, &empty, nil, false},
		{"no cookie", nil, &tok, nil, false},
		{"another session's token", mine, &otherTok, nil, false},
		{"another session's cookie", other, &tok, nil, false},
		{"a token for another form", mine, &sameCookieConsent, nil, false},
		{"another form's token of another browser", mine, &consentTok, nil, false},
		{"a token under another key", mine, &otherKeyTok, nil, false},
		{"a tampered token", mine, &tampered, nil, false},
		{"a malformed cookie", short, &tok, nil, false},
		{"a forged cookie without its token", forged, &tok, nil, false},
		{"a cross-site request", mine, &tok, http.Header{"Sec-Fetch-Site": {"cross-site"}}, false},
		{"a same-site request from a sibling", mine, &tok, http.Header{"Sec-Fetch-Site": {"same-site"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Verify(post(tc.cookie, tc.field, tc.header), PurposeLogin)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrCSRF) {
				t.Fatalf("got %v, want ErrCSRF", err)
			}
		})
	}

	// A token in the query string is not a form field.
	r := post(mine, nil, nil)
	r.URL.RawQuery = url.Values{CSRFField: {tok}}.Encode()
	if err := c.Verify(r, PurposeLogin); err == nil {
		t.Error("a token in the URL was accepted")
	}
}

func TestCSRFCookieAttributes(t *testing.T) {
	for _, tc := range []struct {
		issuer, name string
		secure       bool
	}{
		{"http://localhost:8080", "idp_csrf", false},
		{"https://idp.example", "__Host-idp_csrf", true},
	} {
		p := newPages(t, tc.issuer)
		w := render(t, p, nil, http.StatusOK, "", Login{})
		cookies := w.Result().Cookies()
		if len(cookies) != 1 {
			t.Fatalf("%s: %d cookies", tc.issuer, len(cookies))
		}
		ck := cookies[0]
		if ck.Name != tc.name || ck.Secure != tc.secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
			t.Errorf("%s: cookie %+v", tc.issuer, ck)
		}
		if len(ck.Value) < 43 {
			t.Errorf("cookie value %q is short", ck.Value)
		}
	}
}

// TestRenderedFormsVerify takes each page's form as a browser would (cookie
// from the answer, hidden field from the form) and posts it back.
func TestRenderedFormsVerify(t *testing.T) {
	p := newPages(t, "https://idp.example")
	pages := allPages()
	for name, purpose := range formPurpose {
		t.Run(name, func(t *testing.T) {
			w := render(t, p, nil, http.StatusOK, "", pages[name])
			doc := parse(t, w)
			fields := findAll(doc, tag("input", "name", CSRFField, "type", "hidden"))
			if len(fields) == 0 {
				t.Fatal("no CSRF field")
			}
			tok := attrVal(fields[0], "value")
			for _, f := range fields[1:] {
				if attrVal(f, "value") != tok {
					t.Fatal("the forms of one page carry different tokens")
				}
			}
			cookies := w.Result().Cookies()
			if len(cookies) != 1 {
				t.Fatalf("%d cookies", len(cookies))
			}
			if err := p.CSRF().Verify(post(cookies[0], &tok, nil), purpose); err != nil {
				t.Errorf("the page's own form is refused: %v", err)
			}
			for _, other := range formPurpose {
				if other != purpose && p.CSRF().Verify(post(cookies[0], &tok, nil), other) == nil {
					t.Errorf("its token also verifies for %q", other)
				}
			}

			// A browser that has the cookie keeps it: no new one, and the
			// token still matches it.
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.AddCookie(cookies[0])
			w2 := render(t, p, r, http.StatusOK, "", pages[name])
			if len(w2.Result().Cookies()) != 0 {
				t.Error("a second page replaced the browser's cookie")
			}
			tok2 := attrVal(findAll(parse(t, w2), tag("input", "name", CSRFField))[0], "value")
			if tok2 != tok {
				t.Error("the token changed for the same cookie and form")
			}
		})
	}
}

func TestCSRFOneCookiePerResponse(t *testing.T) {
	c, _ := NewCSRF(testKey, false)
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	a := c.Token(w, r, PurposeLogin)
	b := c.Token(w, r, PurposeConsent)
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("%d cookies for two forms of one page", len(cookies))
	}
	for purpose, tok := range map[string]string{PurposeLogin: a, PurposeConsent: b} {
		if err := c.Verify(post(cookies[0], &tok, nil), purpose); err != nil {
			t.Errorf("%s: %v", purpose, err)
		}
	}
}
