package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"golang.org/x/net/html"
)

// The browser scenarios walk the sign-in as a browser without JavaScript
// does (docs/design.md, the browser sign-in): GET /oauth2/authorize, 303 to
// /login?continue=…, the login page's form (continue, csrf_token and the
// CSRF cookie), POST /login, 303 to /oauth2/authorize/resume, 303 to the
// client's redirect URI with the code. Redirects are never followed: the
// last one points at the client, which is not there.

// browserClient sends requests without following redirects; a jar, when
// given, keeps the server's cookies as a browser would.
func (r *runner) browserClient(jar http.CookieJar) *http.Client {
	return &http.Client{
		Transport:     r.transport,
		Timeout:       r.cfg.Timeout,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// pkce is a code verifier and its S256 challenge (RFC 7636).
type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	v := base64.RawURLEncoding.EncodeToString([]byte(randomHex(16)))
	sum := sha256.Sum256([]byte(v))
	return pkce{v, base64.RawURLEncoding.EncodeToString(sum[:])}
}

// authorizeURL is an authorization request of the public client with PKCE,
// a state and a nonce, as a mobile app sends it; prompt "" asks for none.
func (r *runner) authorizeURL(p pkce, state, prompt string) string {
	q := url.Values{
		"response_type": {"code"}, "client_id": {r.cfg.Client}, "redirect_uri": {r.cfg.RedirectURI},
		"scope": {loginScope}, "state": {state}, "nonce": {randomHex(8)},
		"code_challenge": {p.challenge}, "code_challenge_method": {"S256"},
	}
	if prompt != "" {
		q.Set("prompt", prompt)
	}
	return r.url("/oauth2/authorize?" + q.Encode())
}

// loginForm is a login page's form, ready to be posted again and again:
// the continue value stays valid for an hour, and the CSRF token is bound
// to the browser's CSRF cookie, which does not expire.
type loginForm struct {
	cookie string // the Cookie header: the CSRF cookie
	cont   string
	csrf   string
}

// body is the form's POST body for u.
func (f loginForm) body(u *user) []byte {
	return []byte(url.Values{
		"login": {u.username}, "password": {u.password}, "continue": {f.cont}, "csrf_token": {f.csrf},
	}.Encode())
}

// send answers with the body, up to 1 MiB, read and closed.
func send(c *http.Client, req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, b, err
}

// openLoginForm starts an authorization request in a browser with jar and
// returns the form of the login page it is sent to.
func (r *runner) openLoginForm(ctx context.Context, jar http.CookieJar) (loginForm, error) {
	c := r.browserClient(jar)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.authorizeURL(newPKCE(), randomHex(8), ""), nil)
	if err != nil {
		return loginForm{}, err
	}
	resp, body, err := send(c, req)
	if err != nil {
		return loginForm{}, err
	}
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Path != "/login" {
		return loginForm{}, fmt.Errorf("GET /oauth2/authorize: %s %q, want 303 to /login: %.200s", resp.Status, resp.Header.Get("Location"), bytes.TrimSpace(body))
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return loginForm{}, err
	}
	resp, body, err = send(c, req)
	if err != nil {
		return loginForm{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return loginForm{}, fmt.Errorf("GET /login: %s: %.200s", resp.Status, bytes.TrimSpace(body))
	}
	fields := formFields(body, "/login")
	f := loginForm{cont: fields.Get("continue"), csrf: fields.Get("csrf_token")}
	if f.cont == "" || f.csrf == "" {
		return loginForm{}, errors.New("GET /login: no form posting to /login with continue and csrf_token")
	}
	var cookies []string
	for _, ck := range jar.Cookies(loc) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	if len(cookies) == 0 {
		return loginForm{}, errors.New("GET /login: no CSRF cookie")
	}
	f.cookie = strings.Join(cookies, "; ")
	return f, nil
}

// formFields returns the named inputs of the page's form that posts to
// action.
func formFields(page []byte, action string) url.Values {
	z := html.NewTokenizer(bytes.NewReader(page))
	var fields url.Values
	for {
		switch z.Next() {
		case html.ErrorToken:
			return fields
		case html.StartTagToken, html.SelfClosingTagToken:
			t := z.Token()
			attr := func(k string) string {
				for _, a := range t.Attr {
					if a.Key == k {
						return a.Val
					}
				}
				return ""
			}
			switch {
			case t.Data == "form" && fields == nil && attr("action") == action:
				fields = url.Values{}
			case t.Data == "input" && fields != nil && attr("name") != "":
				fields.Set(attr("name"), attr("value"))
			}
		case html.EndTagToken:
			if fields != nil && z.Token().Data == "form" {
				return fields
			}
		}
	}
}

// postLogin posts form for u and returns the answer's status.
func (r *runner) postLogin(ctx context.Context, c *http.Client, f loginForm, u *user) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url("/login"), bytes.NewReader(f.body(u)))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", f.cookie)
	return send(c, req)
}

// prepareLoginForms opens one login form per prepared user, for loginpage
// and loginflood.
func (r *runner) prepareLoginForms(ctx context.Context) error {
	r.cfg.logf("  opening %d login pages", len(r.users))
	forms := make([]loginForm, len(r.users))
	for i := range forms {
		jar, _ := cookiejar.New(nil)
		var err error
		if forms[i], err = r.openLoginForm(ctx, jar); err != nil {
			return err
		}
	}
	r.loginForms = forms
	return nil
}

// signIn walks the login page for u in a new browser and returns the
// browser's cookies once signed in.
func (r *runner) signIn(ctx context.Context, u *user) (string, error) {
	jar, _ := cookiejar.New(nil)
	f, err := r.openLoginForm(ctx, jar)
	if err != nil {
		return "", err
	}
	err = withRetry(ctx, func() (int, error) {
		resp, body, err := r.postLogin(ctx, r.browserClient(jar), f, u)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusSeeOther {
			return resp.StatusCode, fmt.Errorf("POST /login as %s: %s: %.200s", u.username, resp.Status, bytes.TrimSpace(body))
		}
		return resp.StatusCode, nil
	})
	if err != nil {
		return "", err
	}
	var cookies []string
	for _, ck := range jar.Cookies(r.base) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	if len(cookies) < 2 {
		return "", fmt.Errorf("POST /login as %s: no session cookie beside the CSRF cookie", u.username)
	}
	return strings.Join(cookies, "; "), nil
}

// prepareSessions signs in one browser per authorize worker, the prepared
// users in turn, four at a time (each costs the server a password hash).
func (r *runner) prepareSessions(ctx context.Context, workers int) error {
	r.cfg.logf("  signing in %d browsers through the login page", workers)
	sessions := make([]string, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range workers {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			sessions[i], errs[i] = r.signIn(ctx, r.users[i%len(r.users)])
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.sessions = sessions
	return nil
}

// authorizeOnce is one iteration of the authorize scenario for the browser
// with cookies: the authorization request with prompt=none, and the
// redemption of its code at the token endpoint.
func (r *runner) authorizeOnce(ctx context.Context, c *http.Client, cookies string) outcome {
	p, state := newPKCE(), randomHex(8)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.authorizeURL(p, state, "none"), nil)
	if err != nil {
		return outcome{failure: "authorize:" + err.Error()}
	}
	req.Header.Set("Cookie", cookies)
	resp, _, err := send(c, req)
	if err != nil {
		return outcome{failure: "transport"}
	}
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || err != nil {
		return outcome{status: resp.StatusCode, failure: fmt.Sprintf("authorize:%d", resp.StatusCode)}
	}
	q := loc.Query()
	switch {
	case q.Get("error") != "":
		return outcome{status: resp.StatusCode, failure: "authorize:" + q.Get("error")}
	case q.Get("code") == "" || q.Get("state") != state:
		return outcome{status: resp.StatusCode, failure: "authorize:no code or state"}
	}
	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {r.cfg.RedirectURI},
		"code_verifier": {p.verifier}, "client_id": {r.cfg.Client},
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, r.url("/oauth2/token"), strings.NewReader(form.Encode()))
	if err != nil {
		return outcome{failure: "token:" + err.Error()}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body, err := send(c, req)
	if err != nil {
		return outcome{failure: "transport"}
	}
	var tok tokenResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
		return outcome{status: resp.StatusCode, failure: fmt.Sprintf("token:%d", resp.StatusCode)}
	}
	if r.codeSignatures.Load() == 0 {
		r.codeSignatures.Store(int64(countJWTs(tok.AccessToken, tok.IDToken)))
	}
	return outcome{status: resp.StatusCode, ok: true}
}

// outcome is one iteration of a scenario that runs in loop.
type outcome struct {
	status  int
	ok      bool
	failure string // the error's key in the summary when not ok
	latency time.Duration
}

// loop runs sc's iterations closed-loop for d on workers goroutines, each
// starting its next iteration when the last is done, as attack does with
// vegeta for one-request scenarios; onResult, when set, sees each outcome
// as a result (its status, and its failure as the error). It returns what
// attack returns.
func (r *runner) loop(ctx context.Context, sc scenario, workers int, d time.Duration, rec *recorder, onResult func(*vegeta.Result)) (time.Duration, cpuUse, bool) {
	results := make(chan outcome, 4*workers)
	before := sampleCPU(r.cfg.PID, r.cfg.DBPID)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t := time.Now()
				o := sc.iterate(ctx, w)
				o.latency = time.Since(t)
				results <- o
			}
		})
	}
	go func() {
		wg.Wait()
		close(results)
	}()
	for o := range results {
		if onResult != nil {
			onResult(&vegeta.Result{Code: uint16(o.status), Error: o.failure, Latency: o.latency})
		}
		if o.ok || o.failure == "" {
			rec.add(o.status, o.latency, o.ok)
		} else {
			rec.fail(o.failure, o.latency)
		}
	}
	elapsed := time.Since(start)
	u, ok := before.until(sampleCPU(r.cfg.PID, r.cfg.DBPID), elapsed)
	return elapsed, u, ok
}
