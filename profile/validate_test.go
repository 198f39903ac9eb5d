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
