package main

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"idp/fake"
)

func (s *testServer) login(username, pw string, header ...string) response {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/oauth2/token", strings.NewReader(url.Values{
		"grant_type": {"password"}, "client_id": {"mobile"}, "username": {username}, "password": {pw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return s.do(req)
}

// TestLockout: five failed logins from one address lock the account for
// it, exponentially longer
// each time; a locked account gives the same answer for a right and a wrong
// password; a successful login resets the count; unknown logins lock alike.
func TestLockout(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		clock := fake.NewRunningClock()
		s := startServer(t, dbURL, func(c *config) { c.clock = clock.Now })
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		for i := range 5 {
			if r := s.login("ada", "wrong password "+strconv.Itoa(i)); r.status != 400 || r.json(t)["error"] != "invalid_grant" {
				t.Fatalf("failure %d: %d %s", i+1, r.status, r.body)
			}
		}
		right, wrong := s.login("ADA", testPassword), s.login("ada@example.com", "wrong again")
		for _, r := range []response{right, wrong} {
			if r.status != 429 || r.json(t)["error"] != "slow_down" || r.header.Get("Retry-After") == "" {
				t.Errorf("locked: %d %v %s", r.status, r.header, r.body)
			}
		}
		if string(right.body) != string(wrong.body) {
			t.Errorf("a locked account tells the right password apart:\n%s\n%s", right.body, wrong.body)
		}
		first, _ := strconv.Atoi(right.header.Get("Retry-After"))

		// After the lock, one more failure locks for twice as long.
		clock.Advance(time.Duration(first+1) * time.Second)
		s.login("ada", "still wrong")
		r := s.login("ada", testPassword)
		second, _ := strconv.Atoi(r.header.Get("Retry-After"))
		if r.status != 429 || second < 2*first-2 {
			t.Errorf("second lock: %d, Retry-After %d after a first of %d", r.status, second, first)
		}

		// A successful login after the lock resets the count.
		clock.Advance(time.Duration(second+1) * time.Second)
		if r := s.login("ada", testPassword); r.status != 200 {
			t.Fatalf("login after the lock: %d %s", r.status, r.body)
		}
		for i := range 4 {
			s.login("ada", "wrong "+strconv.Itoa(i))
		}
		if r := s.login("ada", testPassword); r.status != 200 {
			t.Errorf("four failures after a success locked the account: %d", r.status)
		}

		// Unknown logins lock exactly like accounts.
		for range 5 {
			s.login("nobody", "some password")
		}
		if r := s.login("nobody", "some password"); r.status != 429 {
			t.Errorf("an unknown login does not lock (%d): lock-out would reveal which accounts exist", r.status)
		}
	})
}

// TestRateLimits: per-address limits trip and recover, and a spoofed
// X-Forwarded-For from an untrusted peer changes nothing.
func TestRateLimits(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		clock := stoppedClock() // the count must stay in one window
		s := startServer(t, dbURL, func(c *config) { c.clock = clock.Now; c.RateLimitPerIP = 3 })
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		for i := range 3 {
			if r := s.login("ada", testPassword, "X-Forwarded-For", "198.51.100."+strconv.Itoa(i)); r.status != 200 {
				t.Fatalf("request %d: %d %s", i+1, r.status, r.body)
			}
		}
		r := s.login("ada", testPassword, "X-Forwarded-For", "198.51.100.99")
		if r.status != 429 || r.json(t)["error"] != "slow_down" || r.header.Get("Retry-After") == "" {
			t.Errorf("4th request (spoofed X-Forwarded-For): %d %s", r.status, r.body)
		}
		// Each endpoint counts apart; signup and forgot answer problem+json.
		for range 3 {
			s.postJSON("/v1/password/forgot", map[string]string{"login": "ada"})
		}
		r = s.postJSON("/v1/password/forgot", map[string]string{"login": "ada"})
		if r.status != 429 || r.header.Get("Retry-After") == "" {
			t.Errorf("forgot over the limit: %d", r.status)
		}
		problemOf(t, r)
		// The "Forgot password?" page does what the API does, but is an
		// endpoint of its own (CONTRACT §4: per IP and endpoint).
		b := newWebBrowser(t, s)
		login := b.get(authorizePath("mobile", loopbackCB, newPKCE(), nil))
		forgot := b.get(login.link(t, "/login/forgot"))
		if page := b.submit(forgot.form(t, "/login/forgot"), url.Values{"login": {"ada"}}, nil); page.status == http.StatusTooManyRequests {
			t.Errorf("the forgot page shares the API's limit: %d", page.status)
		}
		// The next minute, it recovers.
		clock.Advance(time.Minute)
		if r := s.login("ada", testPassword); r.status != 200 {
			t.Errorf("after a minute: %d %s", r.status, r.body)
		}
	})
}

// TestTrustedProxy: behind a trusted proxy the client address comes from
// X-Forwarded-For, so two clients behind one proxy have their own limits.
// The clock stands still: on the real one a run that straddles a minute
// boundary starts a fresh window and the third request passes.
func TestTrustedProxy(t *testing.T) {
	clock := stoppedClock()
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db", func(c *config) {
		c.clock = clock.Now
		c.RateLimitPerIP = 2
		c.TrustedProxies = "127.0.0.1"
	})
	s.mobile()
	s.createUser("ada", "ada@example.com", testPassword)
	for _, client := range []string{"203.0.113.1", "203.0.113.2"} {
		for i := range 2 {
			if r := s.login("ada", testPassword, "X-Forwarded-For", client); r.status != 200 {
				t.Errorf("client %s request %d: %d", client, i+1, r.status)
			}
		}
		if r := s.login("ada", testPassword, "X-Forwarded-For", "6.6.6.6, "+client); r.status != 429 {
			t.Errorf("client %s past its limit, with a spoofed left entry: %d", client, r.status)
		}
	}
}

// behindProxy is a server that takes the client address from
// X-Forwarded-For, so that a test can speak from many addresses.
func behindProxy(c *config) { c.TrustedProxies = "127.0.0.1" }

// TestLockoutSparesTheOwner: five wrong passwords from an attacker's
// address lock the account for that address only; the owner logs in from
// theirs.
func TestLockoutSparesTheOwner(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := startServer(t, dbURL, behindProxy)
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		const attacker, owner = "203.0.113.66", "198.51.100.7"
		for i := range 5 {
			if r := s.login("ada", "guess "+strconv.Itoa(i), "X-Forwarded-For", attacker); r.status != 400 {
				t.Fatalf("guess %d: %d %s", i+1, r.status, r.body)
			}
		}
		if r := s.login("ada", testPassword, "X-Forwarded-For", attacker); r.status != 429 || r.json(t)["error"] != "slow_down" {
			t.Errorf("the attacker's address after 5 failures, right password: %d %s", r.status, r.body)
		}
		if r := s.login("ada", testPassword, "X-Forwarded-For", owner); r.status != 200 {
			t.Errorf("the owner's address is locked out by guesses from another: %d %s", r.status, r.body)
		}
		// The owner's success does not unlock the attacker.
		if r := s.login("ada", testPassword, "X-Forwarded-For", attacker); r.status != 429 {
			t.Errorf("the attacker's address after the owner's login: %d %s", r.status, r.body)
		}
	})
}

// TestLockoutAccountCeiling: 100 failures spread over many addresses lock
// the account everywhere (NIST SP 800-63B §5.2.2's ceiling); a password
// reset by emailed code lifts every lock.
func TestLockoutAccountCeiling(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := startServer(t, dbURL, behindProxy)
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		const owner = "198.51.100.7"
		for i := range 100 {
			from := "203.0.113." + strconv.Itoa(1+i/5) // five guesses from each of 20 addresses
			if r := s.login("ada", "guess "+strconv.Itoa(i), "X-Forwarded-For", from); r.status != 400 {
				t.Fatalf("guess %d from %s: %d %s", i+1, from, r.status, r.body)
			}
		}
		right, wrong := s.login("ada", testPassword, "X-Forwarded-For", owner), s.login("ada", "guess", "X-Forwarded-For", owner)
		for _, r := range []response{right, wrong} {
			if r.status != 429 || r.json(t)["error"] != "slow_down" || r.header.Get("Retry-After") == "" {
				t.Errorf("after 100 failures, from a fresh address: %d %s", r.status, r.body)
			}
		}
		if string(right.body) != string(wrong.body) {
			t.Errorf("the ceiling lock tells the right password apart:\n%s\n%s", right.body, wrong.body)
		}

		// The owner's way out: a reset by emailed code.
		forgotFrom(t, s, "ada", owner)
		code := codeOf(t, waitForMail(t, func() []sentMail { return mailLog(t, s) }, "ada@example.com", "reset code", 1)[0])
		if r := s.reset("ada", code, newPassword); r.status != 204 {
			t.Fatalf("reset: %d %s", r.status, r.body)
		}
		for _, from := range []string{owner, "203.0.113.1"} {
			if r := s.login("ada", newPassword, "X-Forwarded-For", from); r.status != 200 {
				t.Errorf("login from %s after the reset: %d %s", from, r.status, r.body)
			}
		}
	})
}
