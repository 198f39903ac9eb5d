package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"idp/ent/accesstoken"
	"idp/ent/authorizecode"
	"idp/ent/browsersession"
	"idp/ent/onetimecode"
	"idp/ent/refreshchain"
	"idp/ent/user"
)

// liveSession is an entry of GET /v1/sessions.
type liveSession struct {
	ID         string    `json:"id"`
	ClientID   *string   `json:"client_id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	Current    bool      `json:"current"`
	UserAgent  string    `json:"user_agent"`
}

// sessionsOf lists the live sessions the access token's user has.
func (s *testServer) sessionsOf(t *testing.T, at string) []liveSession {
	t.Helper()
	r := s.get("/v1/sessions", at)
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/sessions: %d %s", r.status, r.body)
	}
	var body struct{ Sessions []liveSession }
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	return body.Sessions
}

func (s *testServer) endSession(at, id string) response {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, s.URL+"/v1/sessions/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+at)
	return s.do(req)
}

// passwordLogin is a password grant of the mobile client with a refresh
// token, sent with the user agent ua.
func (s *testServer) passwordLogin(t *testing.T, login, pw, ua string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/oauth2/token", strings.NewReader(url.Values{
		"grant_type": {"password"}, "client_id": {"mobile"}, "username": {login}, "password": {pw},
		"scope": {"openid profile offline_access"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", ua)
	r := s.do(req)
	if r.status != http.StatusOK {
		t.Fatalf("password grant: %d %s", r.status, r.body)
	}
	return r.json(t)
}

// TestSessions: two password-grant logins and a browser session are listed
// newest first, with the user agent that began each and the caller's own
// marked; ending another chain refuses its refresh token and its access
// token at once and leaves the caller's working; ending the browser
// session signs the browser out; another user's id, an unknown id and a
// malformed one are the same 404 and end nothing; the caller may end its
// own. On every engine.
func TestSessions(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := newSigninSite(t, dbURL)
		s.createUser("bob", "bob@example.com", signinPassword)

		phone := s.passwordLogin(t, "ada", signinPassword, "Phone/1.0 (\tctl)")
		tablet := s.passwordLogin(t, "ada", signinPassword, "Tablet/2.0")
		wb := newWebBrowser(t, s.testServer)
		s.signIn(t, wb, nil) // a browser session; no refresh token (no offline_access)
		phoneAT, tabletAT := phone["access_token"].(string), tablet["access_token"].(string)

		list := s.sessionsOf(t, tabletAT)
		if len(list) != 3 {
			t.Fatalf("sessions: %+v, want 3", list)
		}
		browser, tab, ph := list[0], list[1], list[2]
		if browser.ClientID != nil || !strings.HasPrefix(browser.ID, "bs_") || browser.UserAgent != "webBrowser/1.0" || browser.Current {
			t.Errorf("newest, the browser session: %+v", browser)
		}
		if tab.ClientID == nil || *tab.ClientID != "mobile" || !strings.HasPrefix(tab.ID, "rt_") || tab.UserAgent != "Tablet/2.0" || !tab.Current {
			t.Errorf("second, the calling tablet's chain: %+v", tab)
		}
		if ph.ClientID == nil || ph.UserAgent != "Phone/1.0 (ctl)" || ph.Current {
			t.Errorf("oldest, the phone's chain: %+v", ph)
		}
		for _, x := range list {
			if x.CreatedAt.IsZero() || x.LastUsedAt.Before(x.CreatedAt) || time.Since(x.CreatedAt) > time.Minute {
				t.Errorf("times of %+v", x)
			}
		}
		// Each token sees its own chain as current, a refreshed one too:
		// its access token is recorded on the refresh row.
		refreshed, err := s.refresh(phone["refresh_token"].(string), "")
		if err != nil {
			t.Fatal(err)
		}
		phoneAT = refreshed["access_token"].(string)
		for _, x := range s.sessionsOf(t, phoneAT) {
			if x.Current != (x.ID == ph.ID) {
				t.Errorf("with the phone's refreshed token: %+v", x)
			}
			if x.ID == ph.ID && x.LastUsedAt.Before(ph.LastUsedAt) {
				t.Errorf("the refresh did not move last_used_at: %+v, was %+v", x, ph)
			}
		}

		// Bob cannot end ada's logins, nor can anyone with a made-up id:
		// the same 404 for all, nothing ended.
		bob := s.passwordLogin(t, "bob", signinPassword, "Bob/1")
		bobAT := bob["access_token"].(string)
		if got := s.sessionsOf(t, bobAT); len(got) != 1 || !got[0].Current {
			t.Errorf("bob's sessions: %+v", got)
		}
		bad := []string{tab.ID, browser.ID, "rt_AAAAAAAAAAAAAAAAAAAAAA", "bs_AAAAAAAAAAAAAAAAAAAAAA", "rt_", "x",
			strings.Repeat("A", 4000), "rt_" + strings.Repeat("%00", 22), "%E2%80%AE", "..", url.PathEscape(ph.ID + "/")}
		var detail string
		for _, id := range bad {
			r := s.endSession(bobAT, id)
			if r.status != http.StatusNotFound {
				t.Errorf("bob ends %q: %d %s", id, r.status, r.body)
				continue
			}
			if r.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("bob ends %q: %s", id, r.header.Get("Content-Type"))
				continue
			}
			if d := r.json(t)["detail"].(string); detail == "" {
				detail = d
			} else if d != detail {
				t.Errorf("bob ends %q: a different answer: %s", id, r.body)
			}
		}
		if got := s.sessionsOf(t, tabletAT); len(got) != 3 {
			t.Errorf("after bob's attempts ada has %d sessions, want 3", len(got))
		}

		// The tablet ends the phone's chain.
		if r := s.endSession(tabletAT, ph.ID); r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Fatalf("end the phone's chain: %d %s", r.status, r.body)
		}
		if _, err := s.refresh(refreshed["refresh_token"].(string), ""); err == nil || err.Error() != "invalid_grant" {
			t.Errorf("the ended chain's refresh: %v, want invalid_grant", err)
		}
		if r := s.get("/v1/profile", phoneAT); r.status != http.StatusUnauthorized {
			t.Errorf("the ended chain's access token at /v1/profile: %d", r.status)
		}
		if r := s.get("/v1/profile", tabletAT); r.status != http.StatusOK {
			t.Errorf("the caller's access token after ending another: %d", r.status)
		}
		tabletNext, err := s.refresh(tablet["refresh_token"].(string), "")
		if err != nil {
			t.Fatalf("the caller's refresh after ending another: %v", err)
		}
		tabletAT = tabletNext["access_token"].(string)
		if r := s.endSession(tabletAT, ph.ID); r.status != http.StatusNotFound {
			t.Errorf("end it again: %d", r.status)
		}
		if r := s.get("/v1/profile", bobAT); r.status != http.StatusOK {
			t.Errorf("bob's token after ada's changes: %d", r.status)
		}

		// The browser session: ended, the browser has to sign in again.
		if r := s.endSession(tabletAT, browser.ID); r.status != http.StatusNoContent {
			t.Fatalf("end the browser session: %d %s", r.status, r.body)
		}
		if page := wb.get(authorizePath("mobile", loopbackCB, newPKCE(), nil)); page.url.Path != "/login" {
			t.Errorf("the ended browser session still signs in: %d %s", page.status, page.url)
		}
		got := s.sessionsOf(t, tabletAT)
		if len(got) != 1 || got[0].ID != tab.ID || !got[0].Current {
			t.Errorf("after ending two: %+v", got)
		}

		// The caller ends its own login.
		if r := s.endSession(tabletAT, tab.ID); r.status != http.StatusNoContent {
			t.Fatalf("end the current chain: %d %s", r.status, r.body)
		}
		if r := s.get("/v1/profile", tabletAT); r.status != http.StatusUnauthorized {
			t.Errorf("the ended current token: %d", r.status)
		}
		if got := value(scrape(t, s.testServer), "idp_account_events_total", "event", "session_ended"); got != 3 {
			t.Errorf("session_ended counted %v times, want 3", got)
		}
	})
}

// TestSessionsNeedAUserToken: the sessions endpoints refuse a missing or
// bad token and a service's own token, as every /v1 endpoint does.
func TestSessionsNeedAUserToken(t *testing.T) {
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db")
	secret := s.createClient(newConfidential("reports"))
	svc := s.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"users:stats"}}, "reports", secret).json(t)
	for _, tt := range []struct {
		name, bearer string
		want         int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"garbage", "not-a-token", http.StatusUnauthorized},
		{"a service's token", svc["access_token"].(string), http.StatusForbidden},
	} {
		if r := s.get("/v1/sessions", tt.bearer); r.status != tt.want {
			t.Errorf("%s: list %d, want %d", tt.name, r.status, tt.want)
		}
		if r := s.endSession(tt.bearer, "rt_AAAAAAAAAAAAAAAAAAAAAA"); r.status != tt.want {
			t.Errorf("%s: end %d, want %d", tt.name, r.status, tt.want)
		}
		if r := s.get("/v1/profile/export", tt.bearer); r.status != tt.want {
			t.Errorf("%s: export %d, want %d", tt.name, r.status, tt.want)
		}
	}
}

// TestExportHoldsNoSecret: the export has the profile, the live sessions,
// the consents, the pending codes (purpose only), the mail (subjects only)
// and the failed logins; and it holds none of the secrets the database
// keeps for the user, nor any token the test holds: every password hash,
// token row key, grant id, code hash, session token hash and id, mailed
// code, token and signature is looked for in it. On every engine.
func TestExportHoldsNoSecret(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		s := newSigninSite(t, dbURL)
		// A signup (tokens, a verification code and its mail), a login, a
		// failed login, a reset code, a browser session with a consent.
		signup := s.signupJSON(signupBody("eve", "eve@example.com"))
		if signup.status != http.StatusCreated {
			t.Fatalf("signup: %d %s", signup.status, signup.body)
		}
		var created struct {
			User   struct{ ID int64 }
			Tokens map[string]any
		}
		if err := json.Unmarshal(signup.body, &created); err != nil {
			t.Fatal(err)
		}
		login := s.passwordLogin(t, "eve", testPassword, "Phone/1.0")
		at := login["access_token"].(string)
		if r := s.postJSON("/v1/password/forgot", map[string]string{"login": "eve"}); r.status != http.StatusAccepted {
			t.Fatalf("forgot: %d", r.status)
		}
		wb := newWebBrowser(t, s.testServer)
		p := newPKCE()
		page := wb.get(authorizePath("rp", webCB, p, url.Values{"scope": {"openid profile offline_access"}}))
		page = wb.login(page, "eve", testPassword, true)
		if page.url.Path != "/consent" {
			t.Fatalf("rp sign-in: %d %s", page.status, page.url)
		}
		q := s.callback(t, wb.submit(page.form(t, "/consent"), nil, url.Values{"decision": {"allow"}}), webCB)
		rpTokens := s.redeem("rp", s.rpSecret, q.Get("code"), webCB, p.verifier).json(t)
		mails := waitForMail(t, func() []sentMail { return mailLog(t, s.testServer) }, "eve@example.com", "", 2)
		// Last: a successful login clears the count.
		if r := s.login("eve", "not the password"); r.status != http.StatusBadRequest {
			t.Fatalf("failed login: %d", r.status)
		}

		r := s.get("/v1/profile/export", at)
		if r.status != http.StatusOK {
			t.Fatalf("export: %d %s", r.status, r.body)
		}
		if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename="idp-export-`+strconv.FormatInt(created.User.ID, 10)+`.json"` {
			t.Errorf("Content-Disposition %q", cd)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
		var doc struct {
			Profile struct {
				ID                int64
				Username, Email   string
				EmailVerified     *bool     `json:"email_verified"`
				PasswordChangedAt time.Time `json:"password_changed_at"`
			}
			Sessions []liveSession
			Consents []struct {
				ClientID string `json:"client_id"`
				Scopes   []string
			}
			LoginThrottles []struct{ Failures int }   `json:"login_throttles"`
			PendingCodes   []struct{ Purpose string } `json:"pending_codes"`
			Mail           []struct{ Subject, State string }
		}
		if err := json.Unmarshal(r.body, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Profile.ID != created.User.ID || doc.Profile.Username != "eve" || doc.Profile.Email != "eve@example.com" ||
			doc.Profile.EmailVerified == nil || doc.Profile.PasswordChangedAt.IsZero() {
			t.Errorf("profile: %+v", doc.Profile)
		}
		// The signup's chain, the login's, the rp's and the browser's
		// session.
		var chains, browsers int
		var agents []string
		for _, x := range doc.Sessions {
			if x.ClientID == nil {
				browsers++
			} else {
				chains++
			}
			if x.ClientID != nil {
				agents = append(agents, *x.ClientID+" "+x.UserAgent)
			}
		}
		if chains != 3 || browsers != 1 {
			t.Errorf("sessions: %+v, want 3 chains and a browser", doc.Sessions)
		}
		// The signup, the password grant and the code exchange each
		// recorded the user agent of their request.
		slices.Sort(agents)
		if want := []string{"mobile Go-http-client/1.1", "mobile Phone/1.0", "rp Go-http-client/1.1"}; !slices.Equal(agents, want) {
			t.Errorf("chains' client and user agent: %q, want %q", agents, want)
		}
		if len(doc.Consents) != 1 || doc.Consents[0].ClientID != "rp" || !slices.Contains(doc.Consents[0].Scopes, "profile") {
			t.Errorf("consents: %+v", doc.Consents)
		}
		if len(doc.LoginThrottles) == 0 || doc.LoginThrottles[0].Failures != 1 {
			t.Errorf("login throttles: %+v", doc.LoginThrottles)
		}
		var purposes []string
		for _, c := range doc.PendingCodes {
			purposes = append(purposes, c.Purpose)
		}
		if slices.Sort(purposes); !slices.Equal(purposes, []string{"reset", "verify"}) {
			t.Errorf("pending codes: %+v", doc.PendingCodes)
		}
		if len(doc.Mail) < 2 {
			t.Errorf("mail: %+v", doc.Mail)
		}

		// Every secret of eve's that can be found.
		secrets := map[string]string{}
		add := func(what, v string) {
			if len(v) >= 8 {
				secrets[v] = what
			}
		}
		addBytes := func(what string, b []byte) {
			add(what+" (hex)", hex.EncodeToString(b))
			add(what+" (base64)", base64.StdEncoding.EncodeToString(b))
			add(what+" (base64url)", base64.RawURLEncoding.EncodeToString(b))
		}
		db := s.app.db.Ent
		sub := strconv.FormatInt(created.User.ID, 10)
		u := db.User.Query().Where(user.ID(created.User.ID)).OnlyX(ctx)
		add("password hash", u.PasswordHash)
		add("password hash's digest", u.PasswordHash[strings.LastIndex(u.PasswordHash, "$")+1:])
		for _, row := range db.RefreshChain.Query().Where(refreshchain.Subject(sub)).AllX(ctx) {
			add("refresh chain row key", row.ID)
			add("grant id", row.RequestID)
			add("refresh token row key", row.Hash)
			for _, id := range []*string{row.Access, row.PrevAccess, row.PrevHash} {
				if id != nil {
					add("token row key", *id)
				}
			}
		}
		for _, row := range db.AccessToken.Query().Where(accesstoken.Subject(sub)).AllX(ctx) {
			add("access token row key", row.ID)
			add("grant id", row.RequestID)
		}
		for _, row := range db.AuthorizeCode.Query().Where(authorizecode.Subject(sub)).AllX(ctx) {
			add("code row key", row.ID)
			add("grant id", row.RequestID)
		}
		codes := db.OneTimeCode.Query().Where(onetimecode.UserID(created.User.ID)).AllX(ctx)
		if len(codes) != 2 {
			t.Fatalf("one-time codes: %d, want 2", len(codes))
		}
		for _, row := range codes {
			addBytes("code hash", row.CodeHash)
		}
		for _, row := range db.BrowserSession.Query().Where(browsersession.UserID(created.User.ID)).AllX(ctx) {
			add("session token hash", row.TokenHash)
			add("session id", row.ID)
		}
		for _, m := range mails {
			if c := codePattern.FindString(m.Text); c != "" {
				add("mailed code", c)
			}
		}
		for _, ck := range wb.c.Jar.Cookies(page.url) {
			add("cookie "+ck.Name, ck.Value)
		}
		for name, tokens := range map[string]map[string]any{"signup": created.Tokens, "login": login, "rp": rpTokens} {
			for _, kind := range []string{"access_token", "refresh_token", "id_token"} {
				v, _ := tokens[kind].(string)
				add(name+" "+kind, v)
				// A JWT's parts, a refresh token's key and signature.
				for _, part := range strings.Split(v, ".") {
					add(name+" "+kind+" part", part)
				}
			}
		}
		if len(secrets) < 15 {
			t.Fatalf("found only %d secrets to look for", len(secrets))
		}
		body := string(r.body)
		for v, what := range secrets {
			if strings.Contains(body, v) || strings.Contains(strings.ToLower(body), strings.ToLower(v)) {
				t.Errorf("the export holds a %s", what)
			}
		}
		if got := value(scrape(t, s.testServer), "idp_account_events_total", "event", "account_exported"); got != 1 {
			t.Errorf("account_exported counted %v times, want 1", got)
		}
	})
}
