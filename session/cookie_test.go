package session_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"idp/session"
)

// TestCookies: the cookie is HttpOnly, SameSite=Lax, Path=/, Secure with
// the __Host- name over HTTPS, persistent only when remembered; Read
// takes back only well-formed tokens; Clear expires the cookie.
func TestCookies(t *testing.T) {
	token := strings.Repeat("A", 43)
	exp := time.Now().Add(72 * time.Hour).Truncate(time.Second)
	tests := []struct {
		name     string
		secure   bool
		remember bool
		wantName string
	}{
		{"http, browser session", false, false, "idp_session"},
		{"http, remembered", false, true, "idp_session"},
		{"https, browser session", true, false, "__Host-idp_session"},
		{"https, remembered", true, true, "__Host-idp_session"},
	}
	for _, tt := range tests {
		c := session.Cookies{Secure: tt.secure}
		rec := httptest.NewRecorder()
		c.Set(rec, token, &session.Session{Remember: tt.remember, ExpiresAt: exp})
		cookies := rec.Result().Cookies()
		if len(cookies) != 1 {
			t.Fatalf("%s: %d cookies", tt.name, len(cookies))
		}
		ck := cookies[0]
		if ck.Name != tt.wantName || ck.Value != token || ck.Path != "/" || !ck.HttpOnly ||
			ck.SameSite != http.SameSiteLaxMode || ck.Secure != tt.secure || ck.Domain != "" {
			t.Errorf("%s: %s", tt.name, rec.Header().Get("Set-Cookie"))
		}
		if tt.remember {
			if !ck.Expires.Equal(exp) || ck.MaxAge < 72*3600-5 || ck.MaxAge > 72*3600 {
				t.Errorf("%s: Expires %v Max-Age %d, want %v and about 72h", tt.name, ck.Expires, ck.MaxAge, exp)
			}
		} else if !ck.Expires.IsZero() || ck.MaxAge != 0 {
			t.Errorf("%s: a browser-session cookie with Expires %v Max-Age %d", tt.name, ck.Expires, ck.MaxAge)
		}

		req := httptest.NewRequest("GET", "/", nil)
		req.AddCookie(ck)
		if got, ok := c.Read(req); !ok || got != token {
			t.Errorf("%s: Read = %q, %v", tt.name, got, ok)
		}
		// The other mode's name is not read.
		if _, ok := (session.Cookies{Secure: !tt.secure}).Read(req); ok {
			t.Errorf("%s: read under the other name", tt.name)
		}

		rec = httptest.NewRecorder()
		c.Clear(rec)
		cl := rec.Result().Cookies()[0]
		if cl.Name != tt.wantName || cl.Value != "" || cl.MaxAge >= 0 || cl.Path != "/" || cl.Secure != tt.secure {
			t.Errorf("%s: Clear sent %s", tt.name, rec.Header().Get("Set-Cookie"))
		}
	}

	for _, v := range []string{"", "short", strings.Repeat("A", 44), strings.Repeat("*", 43)} {
		req := httptest.NewRequest("GET", "/", nil)
		req.AddCookie(&http.Cookie{Name: "idp_session", Value: v})
		if _, ok := (session.Cookies{}).Read(req); ok {
			t.Errorf("Read accepted %q", v)
		}
	}
	if _, ok := (session.Cookies{}).Read(httptest.NewRequest("GET", "/", nil)); ok {
		t.Error("Read without a cookie")
	}
}
