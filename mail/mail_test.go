package mail

import (
	"errors"
	"testing"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in      string
		want    Address
		wantErr bool
	}{
		{in: "idp@example.com", want: Address{Email: "idp@example.com"}},
		{in: "  idp@example.com  ", want: Address{Email: "idp@example.com"}},
		{in: "Example IdP <idp@example.com>", want: Address{Name: "Example IdP", Email: "idp@example.com"}},
		{in: `"Example, Inc." <no-reply@example.com>`, want: Address{Name: "Example, Inc.", Email: "no-reply@example.com"}},
		{in: "<idp@example.com>", want: Address{Email: "idp@example.com"}},
		{in: "", wantErr: true},
		{in: "not an address", wantErr: true},
		{in: "Name <>", wantErr: true},
		{in: "a@example.com, b@example.com", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAddress(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseAddress(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseAddress(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestAddressString(t *testing.T) {
	tests := []struct {
		a    Address
		want string
	}{
		{Address{Email: "a@example.com"}, "<a@example.com>"},
		{Address{Name: "Example IdP", Email: "a@example.com"}, `"Example IdP" <a@example.com>`},
	}
	for _, tt := range tests {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.a, got, tt.want)
		}
		back, err := ParseAddress(tt.a.String())
		if err != nil || back != tt.a {
			t.Errorf("ParseAddress(%q) = %+v, %v; want %+v", tt.a.String(), back, err, tt.a)
		}
	}
}

func TestMessageValidate(t *testing.T) {
	tests := []struct {
		name    string
		m       Message
		wantErr bool
	}{
		{"complete", Message{To: "a@example.com", Subject: "s", Text: "t", HTML: "<p>t</p>"}, false},
		{"text only", Message{To: "a@example.com", Subject: "s", Text: "t"}, false},
		{"html only", Message{To: "a@example.com", Subject: "s", HTML: "<p>t</p>"}, false},
		{"no recipient", Message{Subject: "s", Text: "t"}, true},
		{"blank recipient", Message{To: "  ", Subject: "s", Text: "t"}, true},
		{"no subject", Message{To: "a@example.com", Text: "t"}, true},
		{"no body", Message{To: "a@example.com", Subject: "s"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("validate() = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidMessage) {
				t.Errorf("validate() = %v, want it to wrap ErrInvalidMessage", err)
			}
		})
	}
}
