package main

import (
	"net/http"
	"testing"
)

// TestSignupEmailDomainSpellings: user@bücher.example and
// user@xn--bcher-kva.example are one address: the second signup is refused
// as taken, and logins and reset requests find the account by either.
func TestSignupEmailDomainSpellings(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := startServer(t, dbURL)
		s.mobile()
		if r := s.signupJSON(signupBody("jorg", "user@bücher.example")); r.status != http.StatusCreated {
			t.Fatalf("signup: %d %s", r.status, r.body)
		}
		r := s.signupJSON(signupBody("jorg2", "user@xn--bcher-kva.example"))
		if r.status != http.StatusConflict || !hasFieldError(problemOf(t, r), "email", "taken") {
			t.Errorf("the ASCII spelling of a taken address: %d %s", r.status, r.body)
		}
		if r := s.signupJSON(signupBody("jorg3", "user@xn--bcher-.example")); r.status != http.StatusUnprocessableEntity || !hasFieldError(problemOf(t, r), "email", "invalid") {
			t.Errorf("a domain IDNA refuses: %d %s", r.status, r.body)
		}
		read := func() []sentMail { return mailLog(t, s) }
		for i, login := range []string{"user@bücher.example", "USER@XN--BCHER-KVA.EXAMPLE"} {
			if r := s.login(login, testPassword); r.status != 200 {
				t.Errorf("login as %s: %d %s", login, r.status, r.body)
			}
			s.forgot(login)
			waitForMail(t, read, "user@xn--bcher-kva.example", "reset code", i+1)
		}
	})
}
