package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"idp/account"
	"idp/oauth"
)

const verifySubject = "Confirm your email address"

func (s *testServer) verifyEmail(bearer, code string) response {
	s.t.Helper()
	return s.send(http.MethodPost, "/v1/email/verify", bearer, "application/json", strings.NewReader(`{"code":"`+code+`"}`))
}

func (s *testServer) resendVerification(bearer string) {
	s.t.Helper()
	if r := s.send(http.MethodPost, "/v1/email/verify/resend", bearer, "", nil); r.status != http.StatusAccepted {
		s.t.Fatalf("resend: %d %s", r.status, r.body)
	}
}

// emailVerifiedEverywhere reads email_verified from the profile, userinfo,
// a new ID token (password grant) and introspection, and fails unless all
// four say want.
func emailVerifiedEverywhere(t *testing.T, s *testServer, login, pw, rsSecret string, want bool) {
	t.Helper()
	ctx := context.Background()
	tok, err := mobileConfig(s, allUserScopes...).PasswordCredentialsToken(ctx, login, pw)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.get("/v1/profile", tok.AccessToken); r.status != 200 || r.json(t)["email_verified"] != want {
		t.Errorf("profile: %d %s, want email_verified %v", r.status, r.body, want)
	}
	if r := s.get("/userinfo", tok.AccessToken); r.status != 200 || r.json(t)["email_verified"] != want {
		t.Errorf("userinfo: %d %s, want email_verified %v", r.status, r.body, want)
	}
	provider, err := oidc.NewProvider(ctx, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	id, err := provider.Verifier(&oidc.Config{ClientID: "mobile"}).Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := id.Claims(&claims); err != nil || claims["email_verified"] != want {
		t.Errorf("ID token claims %v (%v), want email_verified %v", claims, err, want)
	}
	r := s.postForm("/oauth2/introspect", url.Values{"token": {tok.AccessToken}}, "resource-server", rsSecret)
	if r.status != 200 || r.json(t)["email_verified"] != want {
		t.Errorf("introspection: %d %s, want email_verified %v", r.status, r.body, want)
	}
}

// TestVerifyEmail walks email verification over HTTP with the codes read
// from the mail log: the code mailed at signup, wrong, replaced, expired and
// dead codes all refused alike, the resend quota, and email_verified in
// every place a relying party reads it.
//
// The clock stands still (the hour's quota must stay in one window) and
// jumps a day ahead. The password grant dates an access token's expiry by
// the real clock, so access tokens live 3 days here: the jumps must not
// outrun them.
func TestVerifyEmail(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		clock := stoppedClock()
		s := startServer(t, dbURL, func(c *config) { c.clock = clock.Now; c.AccessTokenTTL = 72 * time.Hour })
		s.mobile()
		rsSecret := s.createClient(oauth.NewClient{ID: "resource-server", GrantTypes: []string{"client_credentials"}, Scopes: []string{"users:stats"}})
		read := func() []sentMail { return mailLog(t, s) }
		mails := func(n int) []sentMail { return waitForMail(t, read, "ada@example.com", verifySubject, n) }

		r := s.signupJSON(signupBody("ada", "ada@example.com"))
		if r.status != http.StatusCreated {
			t.Fatalf("signup: %d %s", r.status, r.body)
		}
		body := r.json(t)
		if body["user"].(map[string]any)["email_verified"] != false {
			t.Errorf("signup profile: %v, want email_verified false", body["user"])
		}
		ada, err := s.app.accounts.FindByLogin(ctx, "ada")
		if err != nil {
			t.Fatal(err)
		}
		// The row's password date is the database's real time, later than
		// the stopped clock that dates the tokens: move it before them.
		s.app.db.Ent.User.UpdateOneID(ada.ID).SetPasswordChangedAt(clock.Now().Add(-time.Minute)).ExecX(ctx)
		code := codeOf(t, mails(1)[0])
		if strings.Contains(s.logs.String(), code) {
			t.Error("the verification code is in the server log")
		}
		emailVerifiedEverywhere(t, s, "ada", testPassword, rsSecret, false)

		var bearer string
		freshToken := func() {
			t.Helper()
			tok, err := mobileConfig(s, allUserScopes...).PasswordCredentialsToken(ctx, "ada", testPassword)
			if err != nil {
				t.Fatal(err)
			}
			bearer = tok.AccessToken
		}
		freshToken()
		refused := func(what, code string) {
			t.Helper()
			r := s.verifyEmail(bearer, code)
			if r.status != http.StatusBadRequest || !hasFieldError(problemOf(t, r), "code", "invalid") ||
				!strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
				t.Errorf("%s: %d %s, want 400 with an error on code", what, r.status, r.body)
			}
		}
		wrong := func(code string) string {
			if code == "00000000" {
				return "11111111"
			}
			return "00000000"
		}
		refused("a wrong code", wrong(code))
		refused("an empty code", "")
		refused("not digits", "abcdefgh")

		// 24 hours: alive just before, refused after.
		clock.Advance(24*time.Hour - time.Minute)
		if live, err := s.app.accounts.HasLiveCode(ctx, ada.ID, account.PurposeVerify); err != nil || !live {
			t.Fatalf("a code before 24 hours: live %v (%v)", live, err)
		}
		clock.Advance(2 * time.Minute)
		freshToken()
		refused("an expired code", code)

		// At most 3 mails an hour: the 4th resend is accepted and neither
		// mails nor issues a code. The newest code wins.
		var codes []string
		for i := range 3 {
			s.resendVerification(bearer)
			codes = append(codes, codeOf(t, mails(2 + i)[1+i]))
		}
		s.resendVerification(bearer)
		time.Sleep(500 * time.Millisecond) // the outbox polls every 50 ms
		if got := waitForMail(t, read, "ada@example.com", verifySubject, 4); len(got) != 4 {
			t.Fatalf("%d verification mails, want 4: the 4th resend of the hour was sent", len(got))
		}
		code = codes[2]
		if err := s.app.accounts.CheckCode(ctx, ada.ID, account.PurposeVerify, code); err != nil {
			t.Fatalf("the hour's third code after a 4th resend: %v", err)
		}
		for _, old := range codes[:2] {
			if old != code {
				refused("a replaced code", old) // a wrong try of the live code
			}
		}

		// Five wrong tries kill the code.
		for range account.MaxCodeAttempts {
			refused("a wrong try", wrong(code))
		}
		refused("the right code after five wrong tries", code)
		emailVerifiedEverywhere(t, s, "ada", testPassword, rsSecret, false)

		// The next hour: a new code, and it verifies, once.
		clock.Advance(time.Hour)
		freshToken()
		s.resendVerification(bearer)
		code = codeOf(t, mails(5)[4])
		if r := s.verifyEmail(bearer, code); r.status != http.StatusNoContent {
			t.Fatalf("verify: %d %s", r.status, r.body)
		}
		refused("a used code", code)
		emailVerifiedEverywhere(t, s, "ada", testPassword, rsSecret, true)

		// Verified: a resend sends nothing; bad input is no 500.
		s.resendVerification(bearer)
		for _, tc := range []struct {
			name, contentType, body string
			status                  int
		}{
			{"not JSON", "application/json", "{", 400},
			{"code not a string", "application/json", `{"code":12345678}`, 422},
			{"wrong content type", "text/plain", `{"code":"12345678"}`, 415},
		} {
			if r := s.send(http.MethodPost, "/v1/email/verify", bearer, tc.contentType, strings.NewReader(tc.body)); r.status != tc.status {
				t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.status)
			}
		}
		for _, path := range []string{"/v1/email/verify", "/v1/email/verify/resend"} {
			if r := s.send(http.MethodPost, path, "", "application/json", strings.NewReader(`{"code":"12345678"}`)); r.status != http.StatusUnauthorized {
				t.Errorf("%s without a token: %d", path, r.status)
			}
		}
		time.Sleep(300 * time.Millisecond)
		if got := waitForMail(t, read, "ada@example.com", verifySubject, 5); len(got) != 5 {
			t.Errorf("%d verification mails after a resend for a verified address, want 5", len(got))
		}
	})
}

// TestResetVerifiesEmail: a password reset by emailed code proves the
// address as well as a verification code does.
func TestResetVerifiesEmail(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := startServer(t, dbURL)
		s.mobile()
		rsSecret := s.createClient(oauth.NewClient{ID: "resource-server", GrantTypes: []string{"client_credentials"}, Scopes: []string{"users:stats"}})
		if r := s.signupJSON(signupBody("ada", "ada@example.com")); r.status != http.StatusCreated {
			t.Fatalf("signup: %d %s", r.status, r.body)
		}
		emailVerifiedEverywhere(t, s, "ada", testPassword, rsSecret, false)
		s.forgot("ada")
		code := codeOf(t, waitForMail(t, func() []sentMail { return mailLog(t, s) }, "ada@example.com", "reset code", 1)[0])
		if r := s.reset("ada", code, newPassword); r.status != http.StatusNoContent {
			t.Fatalf("reset: %d %s", r.status, r.body)
		}
		emailVerifiedEverywhere(t, s, "ada", newPassword, rsSecret, true)
	})
}
