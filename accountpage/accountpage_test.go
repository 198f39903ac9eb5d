package accountpage

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"idp/fake"
	"idp/pages"
	"idp/profile"
	"idp/session"
	"idp/storage"
)

const issuer = "http://localhost:8080"

// token is a well-formed session cookie value.
var token = strings.Repeat("A", 43)

type fakeSessions struct{ s *session.Session }

func (f fakeSessions) Lookup(_ context.Context, tok string) (*session.Session, error) {
	if f.s == nil || tok != token {
		return nil, session.ErrNotFound
	}
	return f.s, nil
}

type fakeAccounts struct{ u *storage.User }

func (f fakeAccounts) Get(context.Context, int64) (*storage.User, error) { return f.u, nil }
func (f fakeAccounts) CheckPassword(context.Context, int64, string, string) (*storage.User, error) {
	return f.u, nil
}

// fakeProfile is a profile.Server that holds nothing; the page tests here
// are about the page's own decisions.
type fakeProfile struct{ Profile }

func (fakeProfile) PictureURL(context.Context, *storage.User) string { return "" }
func (fakeProfile) PasswordMinLength() int                           { return 12 }
func (fakeProfile) Sessions(context.Context, int64, profile.Current) ([]profile.Session, error) {
	return nil, nil
}

func newHandler(t *testing.T, sess *session.Session, clock *fake.Clock) http.Handler {
	t.Helper()
	pg, err := pages.New(pages.Config{Issuer: issuer, CSRFKey: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Issuer: issuer, Now: clock.Now}, Deps{
		Sessions: fakeSessions{sess}, Accounts: fakeAccounts{&storage.User{ID: 7, Username: "ada", Email: "ada@example.com"}},
		Profile: fakeProfile{}, Pages: pg,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	h.Mount(r)
	return r
}

func get(h http.Handler, target string, signedIn bool) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if signedIn {
		r.AddCookie(&http.Cookie{Name: session.CookieName, Value: token})
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestSignedOutGoesThroughTheSignIn: the page sends a browser without a
// session to the authorization endpoint as its own client, with PKCE, and
// back to itself; a refusal there ends at an error page, not in a loop.
func TestSignedOutGoesThroughTheSignIn(t *testing.T) {
	h := newHandler(t, nil, fake.NewClock(time.Now()))
	w := get(h, "/account?ui_locales=de", false)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("signed out: %d", w.Code)
	}
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil || loc.Scheme+"://"+loc.Host != issuer || loc.Path != "/oauth2/authorize" {
		t.Fatalf("redirect to %q", w.Header().Get("Location"))
	}
	q := loc.Query()
	for k, want := range map[string]string{
		"client_id": ClientID, "response_type": "code", "scope": "openid", "redirect_uri": issuer + "/account",
		"code_challenge_method": "S256", "ui_locales": "de",
	} {
		if q.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, q.Get(k), want)
		}
	}
	if len(q.Get("code_challenge")) != 43 {
		t.Errorf("code_challenge %q", q.Get("code_challenge"))
	}
	if again := get(h, "/account", false); again.Header().Get("Location") == w.Header().Get("Location") {
		t.Error("two sign-ins share a PKCE challenge")
	}
	if w := get(h, "/account?error=access_denied&state=x", false); w.Code != http.StatusBadRequest {
		t.Errorf("back with an error, signed out: %d, want the error page", w.Code)
	}
}

// TestReauthAfterFiveMinutes: the email change and the deletion ask for
// the password only once the session's login is older than ReauthAfter;
// the answer of the sign-in is dropped from the address.
func TestReauthAfterFiveMinutes(t *testing.T) {
	login := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		age  time.Duration
		asks bool
	}{
		{0, false},
		{ReauthAfter - time.Second, false},
		{ReauthAfter, false},
		{ReauthAfter + time.Second, true},
		{24 * time.Hour, true},
	} {
		clock := fake.NewClock(login.Add(tc.age))
		h := newHandler(t, &session.Session{ID: "s1", UserID: 7, AuthTime: login}, clock)
		w := get(h, "/account", true)
		if w.Code != http.StatusOK {
			t.Fatalf("%v: %d", tc.age, w.Code)
		}
		body := w.Body.String()
		for _, id := range []string{`id="email_password"`, `id="delete_password"`} {
			if strings.Contains(body, id) != tc.asks {
				t.Errorf("login %v old: %s shown %v, want %v", tc.age, id, !tc.asks, tc.asks)
			}
		}
	}
	h := newHandler(t, &session.Session{ID: "s1", UserID: 7, AuthTime: login}, fake.NewClock(login))
	if w := get(h, "/account?code=abc&state=&iss=x", true); w.Code != http.StatusSeeOther || w.Header().Get("Location") != issuer+"/account" {
		t.Errorf("back from the sign-in: %d %q", w.Code, w.Header().Get("Location"))
	}
}
