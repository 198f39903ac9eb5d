package session

import (
	"net/http"
	"time"
)

// Cookie names. The __Host- prefix makes the browser insist on Secure,
// Path=/ and no Domain, so no subdomain can plant or read the cookie; it
// only works over HTTPS, hence the plain name for local HTTP.
const (
	CookieName       = "idp_session"
	SecureCookieName = "__Host-idp_session"
)

// Cookies writes and reads the session cookie.
type Cookies struct {
	// Secure marks the cookie Secure and gives it the __Host- name; set it
	// whenever the site is served over HTTPS.
	Secure bool
}

func (c Cookies) name() string {
	if c.Secure {
		return SecureCookieName
	}
	return CookieName
}

// Set sends the cookie for token, of session s. A remembered session's
// cookie lasts until s.ExpiresAt (set it again when ExpiresAt moves);
// any other's ends with the browser.
func (c Cookies) Set(w http.ResponseWriter, token string, s *Session) {
	ck := &http.Cookie{
		Name:     c.name(),
		Value:    token,
		Path:     "/",
		Secure:   c.Secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	if s != nil && s.Remember {
		ck.Expires = s.ExpiresAt.UTC()
		// Max-Age wins over Expires where both are understood; it must be
		// positive, 0 or less would delete the cookie.
		ck.MaxAge = max(1, int(time.Until(s.ExpiresAt).Seconds()))
	}
	http.SetCookie(w, ck)
}

// Read returns the token the request's cookie carries, if it could be one.
func (c Cookies) Read(r *http.Request) (string, bool) {
	ck, err := r.Cookie(c.name())
	if err != nil || !wellFormed(ck.Value) {
		return "", false
	}
	return ck.Value, true
}

// Clear tells the browser to drop the cookie.
func (c Cookies) Clear(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name:     c.name(),
		Value:    "",
		Path:     "/",
		Secure:   c.Secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		MaxAge:   -1,
		Expires:  time.Unix(0, 0),
	})
}
