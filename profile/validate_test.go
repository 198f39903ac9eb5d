package profile

import (
	"strings"
	"testing"
)

func TestSignupValidation(t *testing.T) {
	s := &Server{cfg: Config{PasswordMinLength: 12}}
	good := map[string]string{
		"username": "Ada.L_1-x", "password": "a sturdy passphrase", "email": "Ada@Example.COM",
		"first_name": "  Ada  ", "last_name": "Lovelace", "gender": "female",
	}
	fields := func(change map[string]string, drop ...string) signupFields {
		f := signupFields{present: map[string]bool{}}
		m := map[string]string{}
		for k, v := range good {
			m[k] = v
		}
		for k, v := range change {
			m[k] = v
		}
		for _, k := range drop {
			delete(m, k)
		}
		for k, v := range m {
			f.present[k] = true
			switch k {
			case "username":
				f.Username = v
			case "password":
				f.Password = v
			case "email":
				f.Email = v
			case "first_name":
				f.FirstName = v
			case "last_name":
				f.LastName = v
			case "gender":
				f.Gender = v
			}
		}
		return f
	}

	nu, errs := s.newUser(fields(nil))
	if len(errs) != 0 {
		t.Fatalf("good signup: %v", errs)
	}
	if nu.Username != "ada.l_1-x" || nu.Email != "ada@example.com" || nu.FirstName != "Ada" || nu.Gender != "female" {
		t.Errorf("normalised: %+v", nu)
	}
	if nu, _ := s.newUser(fields(nil, "gender")); nu.Gender != "unspecified" {
		t.Errorf("default gender %q", nu.Gender)
	}

	tests := []struct {
		name   string
		change map[string]string
		drop   []string
		field  string
		code   string
	}{
		{"username missing", nil, []string{"username"}, "username", "required"},
		{"username too short", map[string]string{"username": "ab"}, nil, "username", "invalid"},
		{"username too long", map[string]string{"username": strings.Repeat("a", 33)}, nil, "username", "invalid"},
		{"username with a space", map[string]string{"username": "ada l"}, nil, "username", "invalid"},
		{"username with @", map[string]string{"username": "ada@x"}, nil, "username", "invalid"},
		{"username non-ASCII", map[string]string{"username": "adá"}, nil, "username", "invalid"},
		{"email missing", nil, []string{"email"}, "email", "required"},
		{"email without @", map[string]string{"email": "ada.example.com"}, nil, "email", "invalid"},
		{"email with a name", map[string]string{"email": "Ada <ada@example.com>"}, nil, "email", "invalid"},
		{"email without a dot in the domain", map[string]string{"email": "ada@localhost"}, nil, "email", "invalid"},
		{"email too long", map[string]string{"email": strings.Repeat("a", 250) + "@x.io"}, nil, "email", "invalid"},
		{"password missing", nil, []string{"password"}, "password", "required"},
		{"password too short", map[string]string{"password": "short pw 11"}, nil, "password", "too_short"},
		{"password too short in code points", map[string]string{"password": "ééééééééééé"}, nil, "password", "too_short"},
		{"password too long", map[string]string{"password": strings.Repeat("x", 129)}, nil, "password", "too_long"},
		{"common password", map[string]string{"password": "Unbelievable"}, nil, "password", "common"},
		{"common password with digits", map[string]string{"password": "Password1234"}, nil, "password", "common"},
		{"run of digits", map[string]string{"password": "123456789012"}, nil, "password", "common"},
		{"password is the username", map[string]string{"username": "adalovelace1", "password": "AdaLovelace1"}, nil, "password", "matches_login"},
		{"password is the email", map[string]string{"email": "a.lovelace@ex.io", "password": "A.Lovelace@ex.io"}, nil, "password", "matches_login"},
		{"first name missing", nil, []string{"first_name"}, "first_name", "required"},
		{"first name blank", map[string]string{"first_name": "   "}, nil, "first_name", "required"},
		{"last name too long", map[string]string{"last_name": strings.Repeat("é", 101)}, nil, "last_name", "too_long"},
		{"last name with a control character", map[string]string{"last_name": "Love\x00lace"}, nil, "last_name", "invalid"},
		{"gender unknown", map[string]string{"gender": "other"}, nil, "gender", "invalid"},
		{"gender in capitals", map[string]string{"gender": "Female"}, nil, "gender", "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := s.newUser(fields(tc.change, tc.drop...))
			if len(errs) != 1 || errs[0].Field != tc.field || errs[0].Code != tc.code || errs[0].Message == "" {
				t.Errorf("errors = %+v, want one %s/%s", errs, tc.field, tc.code)
			}
		})
	}
	// Every bad field is reported at once.
	_, errs = s.newUser(fields(map[string]string{"username": "x", "email": "y", "gender": "z"}, "first_name"))
	if len(errs) != 4 {
		t.Errorf("want 4 errors, got %+v", errs)
	}
	// Exactly 100 characters and exactly the minimum length pass.
	if _, errs := s.newUser(fields(map[string]string{"last_name": strings.Repeat("é", 100), "password": "ééééééééééé1"})); len(errs) != 0 {
		t.Errorf("boundaries: %v", errs)
	}
}

// TestNamesRefuseInvisibleCharacters: a name is shown to people (and was
// put into mail); controls and format characters would let it read as
// something else, so signup and PATCH /v1/profile refuse them.
func TestNamesRefuseInvisibleCharacters(t *testing.T) {
	tests := []struct {
		name, value string
		ok          bool
	}{
		{"plain", "Ada", true},
		{"accents and scripts", "Zoë Ōtsuka-Ñúñez 李", true},
		{"an apostrophe and a space", "O'Brien Smith", true},
		{"right-to-left override", "Ada\u202Egpj.exe", false},
		{"left-to-right override", "\u202DAda", false},
		{"right-to-left embedding", "Ada\u202B", false},
		{"pop directional formatting", "Ada\u202C", false},
		{"left-to-right isolate", "\u2066Ada", false},
		{"right-to-left isolate", "Ada\u2067x", false},
		{"first strong isolate", "Ada\u2068x", false},
		{"pop directional isolate", "Ada\u2069", false},
		{"zero width space", "Ad\u200Ba", false},
		{"zero width non-joiner inside a Persian word", "می\u200Cخواهم", true},
		{"zero width joiner inside a word", "Ad\u200Da", true},
		{"zero width joiner at the start", "\u200DAda", false},
		{"zero width joiner at the end", "Ada\u200D", false},
		{"zero width non-joiner before a space", "Ada\u200C Lovelace", false},
		{"left-to-right mark", "Ada\u200E", false},
		{"byte order mark", "\uFEFFAda", false},
		{"soft hyphen", "Ada\u00ADLovelace", false},
		{"word joiner", "Ada\u2060", false},
		{"Arabic letter mark", "Ada\u061C", false},
		{"interlinear annotation", "Ada\uFFF9x", false},
		{"tag character", "Ada\U000E0041", false},
		{"NUL", "Ada\x00", false},
		{"escape", "Ada\x1b[31m", false},
		{"DEL", "Ada\x7f", false},
		{"C1 control", "Ada\u0085x", false},
		{"line separator", "Ada\u2028Lovelace", false},
		{"paragraph separator", "Ada\u2029x", false},
		{"newline inside", "Ada\nLovelace", false},
	}
	s := &Server{cfg: Config{PasswordMinLength: 12}}
	for _, tc := range tests {
		for _, field := range []string{"first_name", "last_name"} {
			t.Run(tc.name+"/"+field, func(t *testing.T) {
				// PATCH /v1/profile checks each name with checkName.
				_, fe, ok := checkName(field, tc.value, true)
				if ok != tc.ok || !ok && (fe.Field != field || fe.Code != "invalid") {
					t.Errorf("checkName(%q) = %v %+v, want ok %v (else %s/invalid)", tc.value, ok, fe, tc.ok, field)
				}
				// And so does signup.
				f := signupFields{
					Username: "ada", Password: "a sturdy passphrase", Email: "ada@example.com",
					FirstName: "Ada", LastName: "Lovelace",
					present: map[string]bool{"username": true, "password": true, "email": true, "first_name": true, "last_name": true},
				}
				if field == "first_name" {
					f.FirstName = tc.value
				} else {
					f.LastName = tc.value
				}
				_, errs := s.newUser(f)
				if tc.ok != (len(errs) == 0) || !tc.ok && (errs[0].Field != field || errs[0].Code != "invalid") {
					t.Errorf("signup with %s %q: %+v", field, tc.value, errs)
				}
			})
		}
	}
}

// TestSignupEmailDomains: an email's domain is stored in its ASCII form, so
// that its Unicode and ASCII spellings are one address; a domain IDNA
// refuses is invalid.
func TestSignupEmailDomains(t *testing.T) {
	s := &Server{cfg: Config{PasswordMinLength: 12}}
	tests := []struct{ email, want string }{
		{"user@bücher.example", "user@xn--bcher-kva.example"},
		{"User@BÜCHER.Example", "user@xn--bcher-kva.example"},
		{"user@xn--bcher-kva.example", "user@xn--bcher-kva.example"},
		{"user@XN--BCHER-KVA.example", "user@xn--bcher-kva.example"},
		{"user@ｂücher.example", "user@xn--bcher-kva.example"}, // full-width b: mapped
		{"jörg@example.com", "jörg@example.com"},              // the local part stays as it is
		{"ada@example.com", "ada@example.com"},
		{"user@faß.de", "user@xn--fa-hia.de"}, // not transitional: ß stays ß
		{"user@xn--bcher-.example", ""},       // a broken A-label
		{"user@-bücher.example", ""},          // a leading hyphen
		{"user@bü_cher.example", ""},          // not a host name
		{"user@a\u202Eb.example", ""},         // a direction override
		{"user@\u0661\u0662a.example", ""},    // breaks the bidi rule
	}
	for _, tc := range tests {
		f := signupFields{
			Username: "ada", Password: "a sturdy passphrase", Email: tc.email, FirstName: "Ada", LastName: "Lovelace",
			present: map[string]bool{"username": true, "password": true, "email": true, "first_name": true, "last_name": true},
		}
		nu, errs := s.newUser(f)
		switch {
		case tc.want == "" && (len(errs) != 1 || errs[0].Field != "email" || errs[0].Code != "invalid"):
			t.Errorf("%q: %+v, want email/invalid", tc.email, errs)
		case tc.want != "" && (len(errs) != 0 || nu.Email != tc.want):
			t.Errorf("%q: stored as %q (%+v), want %q", tc.email, nu.Email, errs, tc.want)
		}
	}
}
