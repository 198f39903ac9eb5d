package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"idp/fake"
	"idp/mail"
)

var codePattern = regexp.MustCompile(`\b\d{8}\b`)

// sentMail is a message as a sender delivered it (the mail.log holds no
// HTML body).
type sentMail = fake.Mail

// mailLog reads the mail.log of a server's data directory.
func mailLog(t *testing.T, s *testServer) []sentMail {
	t.Helper()
	f, err := os.Open(s.app.cfg.path("mail.log"))
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []sentMail
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m struct{ To, Subject, Text, SentAt string }
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("mail.log line %q: %v", sc.Text(), err)
		}
		out = append(out, sentMail{To: m.To, Subject: m.Subject, Text: m.Text})
	}
	return out
}

// waitForMail polls until n mails matching subject were sent to to.
func waitForMail(t *testing.T, read func() []sentMail, to, subject string, n int) []sentMail {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var got []sentMail
		for _, m := range read() {
			if m.To == to && strings.Contains(m.Subject, subject) {
				got = append(got, m)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mails %q to %s after 15s, want %d", len(got), subject, to, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func codeOf(t *testing.T, m sentMail) string {
	t.Helper()
	code := codePattern.FindString(m.Text)
	if code == "" {
		t.Fatalf("no code in %q", m.Text)
	}
	return code
}

func (s *testServer) postJSON(path string, v any) response {
	s.t.Helper()
	b, _ := json.Marshal(v)
	return s.send(http.MethodPost, path, "", "application/json", strings.NewReader(string(b)))
}

func (s *testServer) forgot(login string) {
	s.t.Helper()
	if r := s.postJSON("/v1/password/forgot", map[string]string{"login": login}); r.status != http.StatusAccepted {
		s.t.Fatalf("forgot %s: %d %s", login, r.status, r.body)
	}
}

func (s *testServer) reset(login, code, pw string) response {
	s.t.Helper()
	return s.postJSON("/v1/password/reset", map[string]string{"login": login, "code": code, "new_password": pw})
}

const newPassword = "a brand new passphrase"

// TestPasswordReset runs the whole flow on each engine with the mail.log
// sender of the embedded default.
func TestPasswordReset(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		s := startServer(t, dbURL)
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		conf := mobileConfig(s, allUserScopes...)
		before, err := conf.PasswordCredentialsToken(ctx, "ada", testPassword)
		if err != nil {
			t.Fatal(err)
		}

		s.forgot("ADA@example.com")
		mails := waitForMail(t, func() []sentMail { return mailLog(t, s) }, "ada@example.com", "reset code", 1)
		code := codeOf(t, mails[0])
		if strings.Contains(s.logs.String(), code) {
			t.Error("the reset code is in the server log")
		}

		if r := s.reset("ada", "00000000", newPassword); r.status != 400 {
			t.Errorf("wrong code: %d %s", r.status, r.body)
		}
		if r := s.reset("ada", code, "short"); r.status != 422 || !hasFieldError(problemOf(t, r), "new_password", "too_short") {
			t.Errorf("weak new password: %d %s", r.status, r.body)
		}
		if r := s.reset("ada", code, newPassword); r.status != http.StatusNoContent {
			t.Fatalf("reset: %d %s", r.status, r.body)
		}
		waitForMail(t, func() []sentMail { return mailLog(t, s) }, "ada@example.com", "password was changed", 1)

		// Every grant of the user ended: the refresh token is refused, the
		// access token no longer works here.
		if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: before.RefreshToken}).Token(); err == nil {
			t.Error("a refresh token from before the reset still works")
		}
		if r := s.get("/v1/profile", before.AccessToken); r.status != 401 {
			t.Errorf("an access token from before the reset: %d", r.status)
		}
		if r := s.get("/userinfo", before.AccessToken); r.status != 401 {
			t.Errorf("userinfo with a token from before the reset: %d", r.status)
		}
		// The old password is gone, the new one works, the code is used up.
		if _, err := conf.PasswordCredentialsToken(ctx, "ada", testPassword); err == nil {
			t.Error("the old password still works")
		}
		after, err := conf.PasswordCredentialsToken(ctx, "ada", newPassword)
		if err != nil {
			t.Fatalf("the new password: %v", err)
		}
		if r := s.get("/v1/profile", after.AccessToken); r.status != 200 {
			t.Errorf("a token after the reset: %d", r.status)
		}
		if r := s.reset("ada", code, "yet another passphrase"); r.status != 400 {
			t.Errorf("a used code: %d", r.status)
		}
	})
}

// TestResetCodeFailuresLookAlike checks that wrong, used, expired and dead
// codes and unknown logins all get one identical answer.
func TestResetCodeFailuresLookAlike(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		clock := fake.NewRunningClock()
		s := startServer(t, dbURL, func(c *config) { c.clock = clock.Now })
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		read := func() []sentMail { return mailLog(t, s) }
		var answers []string
		answer := func(name string, r response) {
			t.Helper()
			if r.status != 400 || !hasFieldError(problemOf(t, r), "code", "invalid") {
				t.Errorf("%s: %d %s", name, r.status, r.body)
			}
			answers = append(answers, string(r.body))
		}

		s.forgot("ada")
		code := codeOf(t, waitForMail(t, read, "ada@example.com", "reset code", 1)[0])
		answer("wrong", s.reset("ada", wrongCode(code), newPassword))
		answer("malformed", s.reset("ada", "12ab", newPassword))
		answer("unknown login", s.reset("nobody", code, newPassword))
		if r := s.reset("ada", code, newPassword); r.status != 204 {
			t.Fatalf("the right code after two wrong ones: %d %s", r.status, r.body)
		}
		answer("used", s.reset("ada", code, newPassword+"!"))

		// Expired: 15 minutes.
		s.forgot("ada")
		code = codeOf(t, waitForMail(t, read, "ada@example.com", "reset code", 2)[1])
		clock.Advance(16 * time.Minute)
		answer("expired", s.reset("ada", code, newPassword+"!"))

		// Dead: the 6th try, with the right code, after 5 wrong ones.
		s.forgot("ada")
		code = codeOf(t, waitForMail(t, read, "ada@example.com", "reset code", 3)[2])
		for i := range 5 {
			answer("wrong "+string(rune('1'+i)), s.reset("ada", wrongCode(code), newPassword+"!"))
		}
		answer("dead", s.reset("ada", code, newPassword+"!"))

		// A newer code replaces the older one.
		clock.Advance(2 * time.Hour) // past the hourly mail quota
		s.forgot("ada")
		older := codeOf(t, waitForMail(t, read, "ada@example.com", "reset code", 4)[3])
		s.forgot("ada")
		newer := codeOf(t, waitForMail(t, read, "ada@example.com", "reset code", 5)[4])
		if older != newer {
			answer("replaced", s.reset("ada", older, newPassword+"!"))
		}
		for _, a := range answers[1:] {
			if a != answers[0] {
				t.Errorf("answers differ:\n%s\n%s", answers[0], a)
			}
		}
		if r := s.reset("ada", newer, newPassword+"!"); r.status != 204 {
			t.Errorf("the newest code: %d %s", r.status, r.body)
		}
	})
}

func wrongCode(code string) string {
	if code == "11111111" {
		return "22222222"
	}
	return "11111111"
}

// TestForgot checks the answer for unknown logins, the timing floor and the
// silent per-account mail quota.
func TestForgot(t *testing.T) {
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db")
	s.mobile()
	s.createUser("ada", "ada@example.com", testPassword)
	floor := 300 * time.Millisecond
	for _, login := range []string{"ada", "nobody", "nobody@example.com", "ada"} {
		start := time.Now()
		r := s.postJSON("/v1/password/forgot", map[string]string{"login": login})
		took := time.Since(start)
		if r.status != http.StatusAccepted {
			t.Errorf("forgot %s: %d %s", login, r.status, r.body)
		}
		// A lower bound only: every answer waits out the same floor.
		if took < floor {
			t.Errorf("forgot %s answered in %v, before the %v floor", login, took, floor)
		}
		t.Logf("forgot %-20s %v", login, took)
	}
	for range 4 {
		s.forgot("ada")
	}
	time.Sleep(300 * time.Millisecond) // let the outbox drain
	if n := len(waitForMail(t, func() []sentMail { return mailLog(t, s) }, "ada@example.com", "reset code", 3)); n != 3 {
		t.Errorf("%d mails for 6 requests in an hour, want the quota of 3", n)
	}
	for _, bad := range []string{`{}`, `{"login":5}`, `[`} {
		if r := s.send(http.MethodPost, "/v1/password/forgot", "", "application/json", strings.NewReader(bad)); r.status/100 != 4 {
			t.Errorf("forgot %s: %d", bad, r.status)
		}
	}
	// Signed out, the account page's password form is behind the login,
	// which offers the reset.
	if r := s.get("/.well-known/change-password", ""); r.status != 200 || !strings.Contains(string(r.body), "/login/forgot") {
		t.Errorf("change-password did not lead to the sign-in with its reset link: %d", r.status)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Get(s.URL + "/.well-known/change-password")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != s.app.cfg.ChangePasswordURL {
		t.Errorf("change-password: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
}

// sendGrid points the server's mail at f.
func sendGrid(f *fake.SendGrid) func(*config) {
	return func(c *config) {
		c.SendGridAPIKey = fake.SendGridKey
		c.MailFrom = "idp <no-reply@idp.test>"
		c.sendGridOptions = []mail.SendGridOption{mail.WithSendGridHost(f.URL)}
	}
}

// TestResetWithSendGrid runs the flow with the real sendgrid-go client,
// through a provider outage and a server restart between the request and
// the delivery.
func TestResetWithSendGrid(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		sg := fake.NewSendGrid(t)
		var failing atomic.Bool
		failing.Store(true)
		sg.Respond(func(int) int {
			if failing.Load() {
				return http.StatusInternalServerError
			}
			return http.StatusAccepted
		})
		first := startServer(t, dbURL, sendGrid(sg))
		first.mobile()
		first.createUser("ada", "ada@example.com", testPassword)
		first.forgot("ada")
		// The provider fails: the mail is retried, not lost.
		for deadline := time.Now().Add(10 * time.Second); sg.Requests() < 2; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the outbox did not try to send")
			}
		}
		if len(sg.Mails()) != 0 {
			t.Fatal("a mail got through a failing provider")
		}
		// The server restarts while the provider is down; a new one starts
		// on the same database and the provider recovers.
		first.stop()
		second := startServer(t, dbURL, sendGrid(sg))
		failing.Store(false)
		code := codeOf(t, waitForMail(t, sg.Mails, "ada@example.com", "reset code", 1)[0])
		if r := second.reset("ada", code, newPassword); r.status != 204 {
			t.Fatalf("reset with the code from SendGrid: %d %s", r.status, r.body)
		}
		waitForMail(t, sg.Mails, "ada@example.com", "password was changed", 1)
		time.Sleep(200 * time.Millisecond)
		if n := len(sg.Mails()); n != 2 {
			t.Errorf("%d mails delivered, want 2 (each exactly once)", n)
		}
		for _, m := range sg.Mails() {
			if m.From != "no-reply@idp.test" || m.Text == "" || m.HTML == "" {
				t.Errorf("%q: from %q, %d bytes of text, %d of HTML; want IDP_MAIL_FROM and both bodies", m.Subject, m.From, len(m.Text), len(m.HTML))
			}
		}
	})
}

// forgotFrom asks for a reset code from the client address from (the
// server must trust the loopback proxy).
func forgotFrom(t *testing.T, s *testServer, login, from string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/password/forgot", strings.NewReader(`{"login":`+strconv.Quote(login)+`}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", from)
	if r := s.do(req); r.status != http.StatusAccepted {
		t.Fatalf("forgot %s from %s: %d %s", login, from, r.status, r.body)
	}
}

// TestResetComparesNothingBeforeTheCode: without the code, a new password
// equal to the account's email gets the same 400 as any other and spends a
// try, so that the reset endpoint cannot confirm a guessed email. Once the
// code is proven, the password rules apply (422) and the code stays usable.
func TestResetComparesNothingBeforeTheCode(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := startServer(t, dbURL)
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		read := func() []sentMail { return mailLog(t, s) }
		s.forgot("ada")
		code := codeOf(t, waitForMail(t, read, "ada@example.com", "reset code", 1)[0])
		attack := s.reset("ada", wrongCode(code), "ada@example.com")
		unrelated := s.reset("ada", wrongCode(code), "an unrelated passphrase")
		if attack.status != 400 || string(attack.body) != string(unrelated.body) {
			t.Fatalf("a guessed email as the new password, without the code: %d %s; any other password: %d %s",
				attack.status, attack.body, unrelated.status, unrelated.body)
		}
		// The attack spent a try: with three more, five wrong tries kill the code.
		for range 3 {
			s.reset("ada", wrongCode(code), newPassword)
		}
		if r := s.reset("ada", code, newPassword); r.status != 400 {
			t.Errorf("the right code after the attack and four wrong tries: %d %s (the attack did not count)", r.status, r.body)
		}

		// With the code proven, the rules apply; the code is not used up.
		s.forgot("ada")
		code = codeOf(t, waitForMail(t, read, "ada@example.com", "reset code", 2)[1])
		if r := s.reset("ada", code, "ADA@example.com"); r.status != 422 || !hasFieldError(problemOf(t, r), "new_password", "matches_login") {
			t.Errorf("the email as the new password, with the code: %d %s", r.status, r.body)
		}
		if r := s.reset("ada", code, newPassword); r.status != 204 {
			t.Errorf("the code after a refused password: %d %s", r.status, r.body)
		}
	})
}

// TestForgotQuotaPerAddress: requests from an attacker's address use up
// only that address's quota; the owner's own request still mails a code.
func TestForgotQuotaPerAddress(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := startServer(t, dbURL, behindProxy)
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		read := func() []sentMail { return mailLog(t, s) }
		for range 4 {
			forgotFrom(t, s, "ada", "203.0.113.66")
		}
		forgotFrom(t, s, "ada", "198.51.100.7")
		mails := waitForMail(t, read, "ada@example.com", "reset code", 4)
		time.Sleep(300 * time.Millisecond) // let the outbox drain
		if mails = waitForMail(t, read, "ada@example.com", "reset code", 4); len(mails) != 4 {
			t.Errorf("%d mails, want 3 for the attacker's address and 1 for the owner's", len(mails))
		}
		if r := s.reset("ada", codeOf(t, mails[len(mails)-1]), newPassword); r.status != 204 {
			t.Errorf("the owner's code: %d %s", r.status, r.body)
		}
	})
}

// TestForgotAfterDeadCode: with the account's hourly quota used up, no mail
// is sent while its code works; once wrong tries kill the code, the owner's
// next request mails a new, working one.
func TestForgotAfterDeadCode(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		clock := stoppedClock() // the hour's quota must stay in one window
		s := startServer(t, dbURL, behindProxy, func(c *config) { c.clock = clock.Now })
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		read := func() []sentMail { return mailLog(t, s) }
		for i := range 10 { // the account's quota: 3 from each of 4 addresses, but 10 in all
			forgotFrom(t, s, "ada", "203.0.113."+strconv.Itoa(1+i/3))
		}
		mails := waitForMail(t, read, "ada@example.com", "reset code", 10)
		const owner = "198.51.100.7"
		forgotFrom(t, s, "ada", owner)
		time.Sleep(500 * time.Millisecond) // let the outbox drain
		if n := len(waitForMail(t, read, "ada@example.com", "reset code", 10)); n != 10 {
			t.Fatalf("%d mails: past the account's quota, a request while the code works must send nothing", n)
		}
		code := codeOf(t, mails[9])
		for range 5 {
			s.reset("ada", wrongCode(code), newPassword)
		}
		forgotFrom(t, s, "ada", owner)
		mails = waitForMail(t, read, "ada@example.com", "reset code", 11)
		if r := s.reset("ada", codeOf(t, mails[10]), newPassword); r.status != 204 {
			t.Errorf("the new code after the dead one: %d %s", r.status, r.body)
		}
	})
}

// TestSecurityMailHoldsNoUserText: the reset code mail and the password
// change notice quote nothing the user chose, in text or HTML: whoever signs
// up with someone else's address must not write into our mail to them.
func TestSecurityMailHoldsNoUserText(t *testing.T) {
	sg := fake.NewSendGrid(t)
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db", sendGrid(sg))
	s.mobile()
	body := signupBody("mallory_said_so", "victim@example.com")
	body["first_name"], body["last_name"] = "Click evil.example now", "Lastnameword"
	if r := s.signupJSON(body); r.status != http.StatusCreated {
		t.Fatalf("signup: %d %s", r.status, r.body)
	}
	s.forgot("victim@example.com")
	code := codeOf(t, waitForMail(t, sg.Mails, "victim@example.com", "reset code", 1)[0])
	if r := s.reset("mallory_said_so", code, newPassword); r.status != http.StatusNoContent {
		t.Fatalf("reset: %d %s", r.status, r.body)
	}
	waitForMail(t, sg.Mails, "victim@example.com", "password was changed", 1)
	for _, m := range sg.Mails() {
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
