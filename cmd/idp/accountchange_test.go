package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"idp/account"
	"idp/fake"
)

// Subjects of the mails of an email change (the password change's notice
// is the reset's).
const (
	emailChangeCodeSubject   = "Confirm your new email address"
	emailChangeNoticeSubject = "A change of your email address was requested"
	passwordChangedSubject   = "Your password was changed"
)

func (s *testServer) changeEmail(bearer, newEmail, pw string) response {
	s.t.Helper()
	b, _ := json.Marshal(map[string]string{"new_email": newEmail, "password": pw})
	return s.send(http.MethodPost, "/v1/email/change", bearer, "application/json", strings.NewReader(string(b)))
}

func (s *testServer) changePassword(bearer, current, next string) response {
	s.t.Helper()
	b, _ := json.Marshal(map[string]string{"current_password": current, "new_password": next})
	return s.send(http.MethodPost, "/v1/password/change", bearer, "application/json", strings.NewReader(string(b)))
}

// signupTokens signs a user up through the API and returns the tokens of
// its answer.
func (s *testServer) signupTokens(username, email string) (access, refresh string) {
	s.t.Helper()
	r := s.signupJSON(signupBody(username, email))
	if r.status != http.StatusCreated {
		s.t.Fatalf("signup %s: %d %s", username, r.status, r.body)
	}
	tokens := r.json(s.t)["tokens"].(map[string]any)
	return tokens["access_token"].(string), tokens["refresh_token"].(string)
}

// tryPasswordLogin runs the password grant for the mobile client and returns
// the status and the JSON answer.
func (s *testServer) tryPasswordLogin(login, pw string) (int, map[string]any) {
	s.t.Helper()
	r := s.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {"mobile"},
		"username": {login}, "password": {pw}, "scope": {strings.Join(allUserScopes, " ")}}, "", "")
	return r.status, r.json(s.t)
}

func wrongPasswordRefused(t *testing.T, r response, field string) {
	t.Helper()
	if r.status != http.StatusBadRequest || !hasFieldError(problemOf(t, r), field, "invalid") {
		t.Errorf("a wrong password: %d %s, want 400 with an error on %s", r.status, r.body, field)
	}
}

// TestEmailChange walks an email change over HTTP with the codes read from
// the mail log: the old address gets a notice, the new one the code, and
// the address changes (verified) only when the code is used at
// /v1/email/verify; wrong, used and expired codes are refused alike; a
// taken address is answered like a free one at the request; wrong
// passwords count toward the login lock-out.
//
// The clock stands still and jumps a day ahead; access tokens live 3 days
// so that the jump does not outrun them (see TestVerifyEmail).
func TestEmailChange(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		clock := stoppedClock()
		s := startServer(t, dbURL, func(c *config) { c.clock = clock.Now; c.AccessTokenTTL = 72 * time.Hour })
		s.mobile()
		read := func() []sentMail { return mailLog(t, s) }
		bearer, _ := s.signupTokens("ada", "ada@example.com")
		s.signupTokens("bob", "bob@example.com")
		for _, name := range []string{"ada", "bob"} {
			u, err := s.app.accounts.FindByLogin(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			// The row's password date is the database's real time, later
			// than the stopped clock that dates the tokens.
			s.app.db.Ent.User.UpdateOneID(u.ID).SetPasswordChangedAt(clock.Now().Add(-time.Minute)).ExecX(ctx)
		}
		profile := func() map[string]any {
			t.Helper()
			r := s.get("/v1/profile", bearer)
			if r.status != http.StatusOK {
				t.Fatalf("profile: %d %s", r.status, r.body)
			}
			return r.json(t)
		}
		refused := func(what, code string) {
			t.Helper()
			r := s.verifyEmail(bearer, code)
			if r.status != http.StatusBadRequest || !hasFieldError(problemOf(t, r), "code", "invalid") {
				t.Errorf("%s: %d %s, want 400 with an error on code", what, r.status, r.body)
			}
		}

		wrongPasswordRefused(t, s.changeEmail(bearer, "ada@new.example", "not the password"), "password")
		if r := s.changeEmail(bearer, "Ada@New.Example", testPassword); r.status != http.StatusAccepted || len(r.body) != 0 {
			t.Fatalf("change: %d %s", r.status, r.body)
		}
		notice := waitForMail(t, read, "ada@example.com", emailChangeNoticeSubject, 1)[0]
		code := codeOf(t, waitForMail(t, read, "ada@new.example", emailChangeCodeSubject, 1)[0])
		if strings.Contains(notice.Text, code) || strings.Contains(notice.Text, "ada@new.example") ||
			!strings.Contains(notice.Text, "reset your password") {
			t.Errorf("the notice to the old address: %q", notice.Text)
		}
		if strings.Contains(s.logs.String(), code) {
			t.Error("the email change code is in the server log")
		}
		if p := profile(); p["email"] != "ada@example.com" || p["email_verified"] != false {
			t.Fatalf("before the code: %v", p)
		}
		refused("a wrong code", wrongCode(code))
		if r := s.verifyEmail(bearer, code); r.status != http.StatusNoContent {
			t.Fatalf("verify with the change code: %d %s", r.status, r.body)
		}
		if p := profile(); p["email"] != "ada@new.example" || p["email_verified"] != true {
			t.Fatalf("after the code: %v, want the new address, verified", p)
		}
		refused("a used code", code)
		fams := scrape(t, s)
		if got := value(fams, "idp_account_events_total", "event", "email_change_requested"); got != 1 {
			t.Errorf("email_change_requested = %v, want 1", got)
		}
		if got := value(fams, "idp_account_events_total", "event", "email_changed"); got != 1 {
			t.Errorf("email_changed = %v, want 1", got)
		}
		if st, body := s.tryPasswordLogin("ada@new.example", testPassword); st != http.StatusOK {
			t.Errorf("login with the new address: %d %v", st, body)
		}
		if st, _ := s.tryPasswordLogin("ada@example.com", testPassword); st == http.StatusOK {
			t.Error("the old address still logs in")
		}

		// A day later the next change's code is dead.
		if r := s.changeEmail(bearer, "ada@later.example", testPassword); r.status != http.StatusAccepted {
			t.Fatalf("change: %d %s", r.status, r.body)
		}
		code = codeOf(t, waitForMail(t, read, "ada@later.example", emailChangeCodeSubject, 1)[0])
		clock.Advance(24*time.Hour + time.Minute)
		refused("an expired code", code)
		if p := profile(); p["email"] != "ada@new.example" {
			t.Fatalf("after an expired code: %v", p)
		}

		// Another account's address: the same 202 and the same mails; the
		// code is then refused with 409, and nothing changes.
		if r := s.changeEmail(bearer, "BOB@example.com", testPassword); r.status != http.StatusAccepted || len(r.body) != 0 {
			t.Fatalf("change to a taken address: %d %s, want the same 202", r.status, r.body)
		}
		waitForMail(t, read, "ada@new.example", emailChangeNoticeSubject, 1)
		code = codeOf(t, waitForMail(t, read, "bob@example.com", emailChangeCodeSubject, 1)[0])
		if r := s.verifyEmail(bearer, code); r.status != http.StatusConflict || !hasFieldError(problemOf(t, r), "email", "taken") {
			t.Errorf("confirm a taken address: %d %s, want 409 on email", r.status, r.body)
		}
		if p := profile(); p["email"] != "ada@new.example" || p["email_verified"] != true {
			t.Fatalf("after a refused change: %v", p)
		}

		// Wrong passwords lock like failed logins: the fifth locks the
		// address, for this endpoint and the token endpoint alike.
		for range 5 {
			wrongPasswordRefused(t, s.changeEmail(bearer, "ada@locked.example", "not the password"), "password")
		}
		r := s.changeEmail(bearer, "ada@locked.example", testPassword)
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Errorf("the right password while locked: %d %s (Retry-After %q), want 429", r.status, r.body, r.header.Get("Retry-After"))
		} else {
			problemOf(t, r)
		}
		if st, body := s.tryPasswordLogin("ada", testPassword); st != http.StatusTooManyRequests {
			t.Errorf("a login after wrong passwords at the email change: %d %v, want 429", st, body)
		}
		time.Sleep(300 * time.Millisecond) // the outbox polls every 50 ms
		if got := waitForMail(t, read, "ada@locked.example", emailChangeCodeSubject, 0); len(got) != 0 {
			t.Errorf("a refused request mailed: %v", got)
		}
	})
}

// TestEmailChangeRace: two accounts ask for the same new address, which is
// free, and confirm at once: the unique index lets exactly one through;
// the other gets 409 on email and keeps its address.
func TestEmailChangeRace(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := startServer(t, dbURL)
		s.mobile()
		read := func() []sentMail { return mailLog(t, s) }
		const racers = 2
		bearers := make([]string, racers)
		for i := range racers {
			bearers[i], _ = s.signupTokens(fmt.Sprintf("racer%d", i), fmt.Sprintf("racer%d@example.com", i))
			if r := s.changeEmail(bearers[i], "prize@example.com", testPassword); r.status != http.StatusAccepted {
				t.Fatalf("change %d: %d %s", i, r.status, r.body)
			}
		}
		mails := waitForMail(t, read, "prize@example.com", emailChangeCodeSubject, racers)
		// Both codes went to one mailbox; each works only for its account.
		codes := make([]string, racers)
		for i := range racers {
			for _, m := range mails {
				c := codeOf(t, m)
				id, _ := s.app.accounts.FindByLogin(context.Background(), fmt.Sprintf("racer%d", i))
				if s.app.accounts.CheckCode(context.Background(), id.ID, account.PurposeEmailChange, c) == nil {
					codes[i] = c
				}
			}
			if codes[i] == "" {
				t.Fatalf("no code of racer%d among %v", i, mails)
			}
		}
		var wg sync.WaitGroup
		results := make([]response, racers)
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-start
				results[i] = s.verifyEmail(bearers[i], codes[i])
			})
		}
		close(start)
		wg.Wait()
		won := -1
		for i, r := range results {
			switch r.status {
			case http.StatusNoContent:
				if won >= 0 {
					t.Errorf("two winners")
				}
				won = i
			case http.StatusConflict:
				if !hasFieldError(problemOf(t, r), "email", "taken") {
					t.Errorf("the loser's 409 names no email: %s", r.body)
				}
			default:
				t.Errorf("racer %d: %d %s", i, r.status, r.body)
			}
		}
		if won < 0 {
			t.Fatalf("no winner: %v", results)
		}
		for i := range racers {
			p := s.get("/v1/profile", bearers[i]).json(t)
			want := fmt.Sprintf("racer%d@example.com", i)
			if i == won {
				want = "prize@example.com"
			}
			if p["email"] != want {
				t.Errorf("racer %d: email %v, want %s", i, p["email"], want)
			}
		}
	})
}

// TestPasswordChange: a change with the current password ends every other
// login (refresh tokens refused with invalid_grant, access tokens refused
// at /v1/profile, browser sessions ended), answers fresh tokens that work,
// mails a notice; the new password logs in and the old does not; a wrong
// current password counts toward the lock-out.
func TestPasswordChange(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		s := startServer(t, dbURL)
		s.mobile()
		read := func() []sentMail { return mailLog(t, s) }
		access, refresh := s.signupTokens("ada", "ada@example.com")
		other, err := mobileConfig(s, allUserScopes...).PasswordCredentialsToken(ctx, "ada", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		ada, err := s.app.accounts.FindByLogin(ctx, "ada")
		if err != nil {
			t.Fatal(err)
		}
		browser, _, err := s.app.sessions.Create(ctx, ada.ID, []string{"pwd"}, "test", false)
		if err != nil {
			t.Fatal(err)
		}
		// A token issued in the same second as the change is refused by its
		// revoked grant, not by its date: step past the second anyway, so
		// that either check alone is tested by the other tokens.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))

		wrongPasswordRefused(t, s.changePassword(access, "not the password", newPassword), "current_password")
		if r := s.changePassword(access, testPassword, "short"); r.status != http.StatusUnprocessableEntity || !hasFieldError(problemOf(t, r), "new_password", "too_short") {
			t.Errorf("a short new password: %d %s", r.status, r.body)
		}
		if st, _ := s.tryPasswordLogin("ada", testPassword); st != http.StatusOK {
			t.Fatalf("refused changes changed the password: login %d", st)
		}
		r := s.changePassword(access, testPassword, newPassword)
		if r.status != http.StatusOK || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("change: %d %s", r.status, r.body)
		}
		fresh := r.json(t)
		if fresh["token_type"] != "Bearer" || fresh["access_token"] == nil || fresh["refresh_token"] == nil || fresh["id_token"] == nil {
			t.Fatalf("the fresh token response: %v", fresh)
		}
		for name, tok := range map[string]string{"the caller's": access, "another login's": other.AccessToken} {
			if r := s.get("/v1/profile", tok); r.status != http.StatusUnauthorized {
				t.Errorf("%s old access token at /v1/profile: %d", name, r.status)
			}
		}
		for name, tok := range map[string]string{"the caller's": refresh, "another login's": other.RefreshToken} {
			if _, err := s.refresh(tok, ""); err == nil || err.Error() != "invalid_grant" {
				t.Errorf("%s old refresh token: %v, want invalid_grant", name, err)
			}
		}
		if _, err := s.app.sessions.Lookup(ctx, browser); err == nil {
			t.Error("the browser session survived the password change")
		}
		if r := s.get("/v1/profile", fresh["access_token"].(string)); r.status != http.StatusOK {
			t.Errorf("the fresh access token: %d %s", r.status, r.body)
		}
		refreshed, err := s.refresh(fresh["refresh_token"].(string), "")
		if err != nil {
			t.Fatalf("the fresh refresh token: %v", err)
		}
		if r := s.get("/v1/profile", refreshed["access_token"].(string)); r.status != http.StatusOK {
			t.Errorf("an access token refreshed from the fresh chain: %d", r.status)
		}
		if st, body := s.tryPasswordLogin("ada", testPassword); st != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Errorf("the old password: %d %v", st, body)
		}
		// (The success clears the failure of the old password.)
		if st, body := s.tryPasswordLogin("ada", newPassword); st != http.StatusOK {
			t.Errorf("the new password: %d %v", st, body)
		}
		if got := value(scrape(t, s), "idp_account_events_total", "event", "password_changed"); got != 1 {
			t.Errorf("password_changed = %v, want 1", got)
		}
		notice := waitForMail(t, read, "ada@example.com", passwordChangedSubject, 1)[0]
		if !strings.Contains(notice.Text, "reset your password") {
			t.Errorf("the notice: %q", notice.Text)
		}

		// Wrong current passwords lock like failed logins.
		bearer := refreshed["access_token"].(string)
		for range 5 {
			wrongPasswordRefused(t, s.changePassword(bearer, "not the password", "yet another passphrase"), "current_password")
		}
		r = s.changePassword(bearer, newPassword, "yet another passphrase")
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Errorf("the right password while locked: %d %s, want 429 with Retry-After", r.status, r.body)
		}
		if st, _ := s.tryPasswordLogin("ada", newPassword); st != http.StatusTooManyRequests {
			t.Errorf("a login after wrong passwords at the password change: %d, want 429", st)
		}
	})
}

// TestAccountChangeBadInput: nothing a client sends to either endpoint is
// a 500 (the server's do fails the test on one); each has its 4xx.
func TestAccountChangeBadInput(t *testing.T) {
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db")
	s.mobile()
	bearer, _ := s.signupTokens("ada", "ada@example.com")
	big := `{"new_email":"` + strings.Repeat("a", 70<<10) + `"}`
	for _, tc := range []struct {
		name, path, contentType, body string
		status                        int
		field                         string
	}{
		{"email: not JSON", "/v1/email/change", "application/json", "{", 400, ""},
		{"email: an array", "/v1/email/change", "application/json", `["x"]`, 400, ""},
		{"email: two objects", "/v1/email/change", "application/json", `{}{}`, 400, ""},
		{"email: wrong content type", "/v1/email/change", "text/plain", `{}`, 415, ""},
		{"email: too large", "/v1/email/change", "application/json", big, 413, ""},
		{"email: missing fields", "/v1/email/change", "application/json", `{}`, 422, "new_email"},
		{"email: not a string", "/v1/email/change", "application/json", `{"new_email":1,"password":"x"}`, 422, "new_email"},
		{"email: bad address", "/v1/email/change", "application/json", `{"new_email":"ada@","password":"x"}`, 422, "new_email"},
		{"email: display name", "/v1/email/change", "application/json", `{"new_email":"Ada <ada@x.example>","password":"x"}`, 422, "new_email"},
		{"email: too long", "/v1/email/change", "application/json", `{"new_email":"` + strings.Repeat("a", 300) + `@example.com","password":"x"}`, 422, "new_email"},
		{"email: a bad domain", "/v1/email/change", "application/json", `{"new_email":"ada@bad..example","password":"x"}`, 422, "new_email"},
		{"email: no password", "/v1/email/change", "application/json", `{"new_email":"ada@new.example"}`, 422, "password"},
		{"password: not JSON", "/v1/password/change", "application/json", "nope", 400, ""},
		{"password: wrong content type", "/v1/password/change", "application/x-www-form-urlencoded", "current_password=x", 415, ""},
		{"password: missing fields", "/v1/password/change", "application/json", `{}`, 422, "current_password"},
		{"password: null fields", "/v1/password/change", "application/json", `{"current_password":null,"new_password":null}`, 422, "new_password"},
		{"password: not strings", "/v1/password/change", "application/json", `{"current_password":true,"new_password":{}}`, 422, "new_password"},
		{"password: weak", "/v1/password/change", "application/json", `{"current_password":"x","new_password":"Unbelievable"}`, 422, "new_password"},
		{"password: the username", "/v1/password/change", "application/json", `{"current_password":"x","new_password":"ADA@example.com"}`, 422, "new_password"},
		{"password: too long", "/v1/password/change", "application/json", `{"current_password":"x","new_password":"` + strings.Repeat("é", 129) + `"}`, 422, "new_password"},
	} {
		r := s.send(http.MethodPost, tc.path, bearer, tc.contentType, strings.NewReader(tc.body))
		if r.status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.status)
			continue
		}
		if p := problemOf(t, r); tc.field != "" && !hasFieldError(p, tc.field, "") {
			t.Errorf("%s: %s, want an error on %s", tc.name, r.body, tc.field)
		}
	}
	for _, path := range []string{"/v1/email/change", "/v1/password/change"} {
		if r := s.send(http.MethodPost, path, "", "application/json", strings.NewReader(`{}`)); r.status != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d", path, r.status)
		}
	}
	// Nothing above changed the account or mailed a code.
	if st, _ := s.tryPasswordLogin("ada@example.com", testPassword); st != http.StatusOK {
		t.Errorf("after bad input the account does not log in as before: %d", st)
	}
}

// TestChangeMailsHoldNoUserText: the mails of an email or password change
// quote nothing the user chose, in text or HTML: neither the names nor the
// new address, which whoever holds a stolen token could fill with words of
// theirs.
func TestChangeMailsHoldNoUserText(t *testing.T) {
	sg := fake.NewSendGrid(t)
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db", sendGrid(sg))
	s.mobile()
	body := signupBody("mallory_said_so", "victim@example.com")
	body["first_name"], body["last_name"] = "Click evil.example now", "Lastnameword"
	r := s.signupJSON(body)
	if r.status != http.StatusCreated {
		t.Fatalf("signup: %d %s", r.status, r.body)
	}
	bearer := r.json(t)["tokens"].(map[string]any)["access_token"].(string)
	const to = "call.evil.example.now@mallory.example"
	if r := s.changeEmail(bearer, to, testPassword); r.status != http.StatusAccepted {
		t.Fatalf("email change: %d %s", r.status, r.body)
	}
	if r := s.changePassword(bearer, testPassword, newPassword); r.status != http.StatusOK {
		t.Fatalf("password change: %d %s", r.status, r.body)
	}
	waitForMail(t, sg.Mails, to, emailChangeCodeSubject, 1)
	waitForMail(t, sg.Mails, "victim@example.com", emailChangeNoticeSubject, 1)
	waitForMail(t, sg.Mails, "victim@example.com", passwordChangedSubject, 1)
	for _, m := range sg.Mails() {
		if m.Subject == verifySubject {
			continue // the signup's, checked elsewhere
		}
		for _, part := range []struct{ name, body string }{{"text", m.Text}, {"html", m.HTML}} {
			if part.body == "" {
				t.Errorf("%q: no %s body", m.Subject, part.name)
			}
			for _, user := range []string{"mallory", "evil.example", "Lastnameword"} {
				if strings.Contains(strings.ToLower(part.body), strings.ToLower(user)) {
					t.Errorf("%q (%s) holds the user's text %q:\n%s", m.Subject, part.name, user, part.body)
				}
			}
		}
	}
}
