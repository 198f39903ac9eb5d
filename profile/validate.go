package profile

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"idp/account"
	"idp/password"
	"idp/storage"
)

// Password length bounds, in Unicode code points.
const (
	DefaultPasswordMinLength = 12
	MinPasswordMinLength     = 8
	PasswordMaxLength        = 128
)

// signupFields are the text fields of a signup, as received.
type signupFields struct {
	Username, Password, Email, FirstName, LastName, Gender string
	present                                                map[string]bool
}

// newUser validates a signup's fields and returns the account to create,
// or one FieldError per bad field.
func (s *Server) newUser(f signupFields) (account.NewUser, []FieldError) {
	var errs []FieldError
	add := func(field, code, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	username := account.NormalizeLogin(f.Username)
	switch {
	case !f.present["username"] || username == "":
		add("username", "required", "A username is required.")
	case !validUsername(username):
		add("username", "invalid", "A username has 3 to 32 characters: letters a-z, digits, '.', '_' and '-'.")
	}
	email, err := account.NormalizeEmail(f.Email)
	switch {
	case !f.present["email"] || email == "":
		add("email", "required", "An email address is required.")
	case err != nil || !validEmail(email):
		add("email", "invalid", "This is not a valid email address.")
	}
	if fe, ok := s.checkPassword(f.Password, f.present["password"], username, email); !ok {
		errs = append(errs, fe)
	}
	first, fe, ok := checkName("first_name", f.FirstName, f.present["first_name"])
	if !ok {
		errs = append(errs, fe)
	}
	last, fe, ok := checkName("last_name", f.LastName, f.present["last_name"])
	if !ok {
		errs = append(errs, fe)
	}
	gender, fe, ok := checkGender(f.Gender)
	if !ok {
		errs = append(errs, fe)
	}
	return account.NewUser{
		Username: username, Email: email, Password: f.Password,
		FirstName: first, LastName: last, Gender: gender,
	}, errs
}

func validUsername(s string) bool {
	if len(s) < 3 || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validEmail accepts a bare address (no display name, no comments) that
// net/mail parses back to itself, of at most 254 octets (RFC 5321), with a
// domain that has a dot.
func validEmail(s string) bool {
	if len(s) > 254 || strings.ContainsAny(s, " \t\r\n<>\"") {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && len(local) <= 64 && strings.Contains(domain, ".") &&
		!strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".") && !strings.Contains(domain, "..")
}

// checkPassword applies the password rules of signup and reset.
func (s *Server) checkPassword(pw string, present bool, username, email string) (FieldError, bool) {
	fe := func(code, msg string) (FieldError, bool) {
		return FieldError{Field: "password", Code: code, Message: msg}, false
	}
	n := utf8.RuneCountInString(pw)
	switch {
	case !present || pw == "":
		return fe("required", "A password is required.")
	case !utf8.ValidString(pw):
		return fe("invalid", "The password is not valid UTF-8.")
	case n < s.cfg.PasswordMinLength:
		return fe("too_short", fmt.Sprintf("A password has at least %d characters.", s.cfg.PasswordMinLength))
	case n > PasswordMaxLength:
		return fe("too_long", fmt.Sprintf("A password has at most %d characters.", PasswordMaxLength))
	case password.IsCommon(pw):
		return fe("common", "This password is too common; choose another.")
	case strings.EqualFold(pw, username) || strings.EqualFold(pw, email):
		return fe("matches_login", "The password must differ from the username and the email address.")
	}
	return FieldError{}, true
}

// checkName trims a name and checks its length (1 to 100 characters) and
// that it holds no control or format characters: a right-to-left override
// (U+202E), an isolate (U+2066–U+2069) or an invisible character (U+200B,
// U+FEFF) lets a name show as something else than it is.
func checkName(field, v string, present bool) (string, FieldError, bool) {
	v = strings.TrimSpace(v)
	n := utf8.RuneCountInString(v)
	fe := func(code, msg string) (string, FieldError, bool) {
		return "", FieldError{Field: field, Code: code, Message: msg}, false
	}
	switch {
	case !present || v == "":
		return fe("required", "This field is required.")
	case !utf8.ValidString(v) || hasInvisible(v):
		return fe("invalid", "Control and format characters are not allowed.")
	case n > 100:
		return fe("too_long", "At most 100 characters.")
	}
	return v, FieldError{}, true
}

// hasInvisible reports whether a name holds a character it must not:
// controls (Cc), format characters (Cf) and the line and paragraph
// separators. The zero-width non-joiner and joiner (U+200C, U+200D) are
// format characters that Persian, the Indic scripts and emoji sequences
// need inside words; they reorder nothing, so between two letters, marks
// or symbols they are allowed.
func hasInvisible(v string) bool {
	rs := []rune(v)
	for i, r := range rs {
		if (r == '\u200C' || r == '\u200D') && i > 0 && i < len(rs)-1 && joinable(rs[i-1]) && joinable(rs[i+1]) {
			continue
		}
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return true
		}
	}
	return false
}

func joinable(r rune) bool { return unicode.In(r, unicode.L, unicode.M, unicode.So) }

// checkGender accepts female, male or unspecified; empty means unspecified.
func checkGender(v string) (storage.Gender, FieldError, bool) {
	if v == "" {
		return storage.GenderUnspecified, FieldError{}, true
	}
	g := storage.Gender(v)
	if !g.Valid() {
		return "", FieldError{Field: "gender", Code: "invalid", Message: "One of female, male or unspecified."}, false
	}
	return g, FieldError{}, true
}
