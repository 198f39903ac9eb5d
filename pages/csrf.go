package pages

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
)

// CSRFField is the name of the hidden form field that carries the token.
const CSRFField = "csrf_token"

// The purposes of the forms these pages render. A token minted for one
// purpose does not verify for another, so a token lifted from the consent
// form cannot drive the login form.
const (
	PurposeLogin          = "login"
	PurposeConsent        = "consent"
	PurposeLogout         = "logout"
	PurposeForgotLogin    = "forgot-login"
	PurposeForgotCode     = "forgot-code"
	PurposeForgotPassword = "forgot-password"
	PurposeSignup         = "signup"
	PurposeAccount        = "account"
)

// ErrCSRF is wrapped by every refusal of Verify.
var ErrCSRF = errors.New("csrf: form token refused")

// cookieBytes is the size of the random cookie value: 256 bits.
const cookieBytes = 32

// CSRF implements the signed double-submit cookie pattern (OWASP CSRF
// Prevention Cheat Sheet): a random value per browser in an HttpOnly cookie,
// and in each form an HMAC of that value and the form's purpose under a
// server key. A cross-site attacker can neither read the cookie nor compute
// the HMAC without the key, and a token from another browser is bound to
// that browser's cookie. The server keeps no state, so any replica verifies.
type CSRF struct {
	key    []byte
	name   string
	secure bool
}

// NewCSRF returns a CSRF guard. key must hold at least 32 bytes; secure
// (an https issuer) adds the Secure attribute and the __Host- cookie prefix,
// which stops a sibling subdomain from planting a cookie of its own.
func NewCSRF(key []byte, secure bool) (*CSRF, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("pages: CSRF key has %d bytes, need at least 32", len(key))
	}
	c := &CSRF{key: append([]byte(nil), key...), name: "idp_csrf", secure: secure}
	if secure {
		c.name = "__Host-idp_csrf"
	}
	return c, nil
}

// CookieName is the name of the cookie that holds the browser's value.
func (c *CSRF) CookieName() string { return c.name }

// Token returns the form field value for purpose, bound to the request's
// cookie. When the request has no usable cookie it sets a fresh one on w, so
// call it before the response's header is written. Render calls it for the
// forms it draws; handlers rarely need it.
func (c *CSRF) Token(w http.ResponseWriter, r *http.Request, purpose string) string {
	v, ok := c.cookie(r)
	if !ok {
		v, ok = c.pending(w)
	}
	if !ok {
		var b [cookieBytes]byte
		rand.Read(b[:])
		v = base64.RawURLEncoding.EncodeToString(b[:])
		http.SetCookie(w, &http.Cookie{
			Name:     c.name,
			Value:    v,
			Path:     "/",
			HttpOnly: true,
			Secure:   c.secure,
			SameSite: http.SameSiteLaxMode,
		})
	}
	return c.sign(v, purpose)
}

// Verify checks the form field of a POST against the request's cookie for
// purpose. It reads the field with r.PostFormValue: bound the body first
// (http.MaxBytesReader), and for a multipart form call r.ParseMultipartForm
// with the handler's own limit before Verify. It also refuses a request that
// the browser marks as coming from another site (Sec-Fetch-Site), which our
// own forms never are.
func (c *CSRF) Verify(r *http.Request, purpose string) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return fmt.Errorf("%w: request from another site", ErrCSRF)
	}
	v, ok := c.cookie(r)
	if !ok {
		return fmt.Errorf("%w: no cookie", ErrCSRF)
	}
	got := r.PostFormValue(CSRFField)
	if got == "" {
		return fmt.Errorf("%w: no form field", ErrCSRF)
	}
	if !hmac.Equal([]byte(got), []byte(c.sign(v, purpose))) {
		return fmt.Errorf("%w: field does not match the cookie", ErrCSRF)
	}
	return nil
}

// cookie returns the request's cookie value when it has the shape Token
// gives it; anything else is treated as absent and replaced.
func (c *CSRF) cookie(r *http.Request) (string, bool) {
	ck, err := r.Cookie(c.name)
	if err != nil {
		return "", false
	}
	v := ck.Value
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) != cookieBytes {
		return "", false
	}
	return v, true
}

// pending returns the value that an earlier Token call set on this
// response, so that two forms on one page share one cookie.
func (c *CSRF) pending(w http.ResponseWriter) (string, bool) {
	for _, line := range w.Header().Values("Set-Cookie") {
		if ck, err := http.ParseSetCookie(line); err == nil && ck.Name == c.name {
			return ck.Value, true
		}
	}
	return "", false
}

// sign is the HMAC-SHA256 of the purpose and the cookie value. The purpose
// comes first and is length-delimited by the NUL, which neither contains.
func (c *CSRF) sign(cookie, purpose string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("idp csrf v1\x00"))
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
