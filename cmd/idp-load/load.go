package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The scenarios, in the order they run. healthz comes first: it is the
// baseline the static and token-checking endpoints are compared with.
// userinfo and profile run before refresh, whose rotations may end the
// access tokens they use. signup runs last of the ten because it adds
// users (the stats scenario reads them all).
// authorize and loginpage walk the browser sign-in (browser.go).
var allScenarios = []string{
	"healthz", "discovery", "jwks", "userinfo", "profile",
	"refresh", "refresh2", "authorize", "password", "loginpage", "client_credentials", "stats", "signup",
}

// The floods are run only when named in -scenarios (make bench names
// them): 200 concurrent password grants, and as many login-page POSTs.
const (
	floodScenario      = "flood"
	loginFloodScenario = "loginflood"
	// pictureFloodScenario is as many signups, each with a 5 MiB picture:
	// uploads, hashes and decodes at once.
	pictureFloodScenario = "pictureflood"
)

var floodScenarios = []string{floodScenario, loginFloodScenario, pictureFloodScenario}

// loginScope is what the password grant and signup ask for, as a mobile app
// does: an ID token and a refresh token besides the access token.
const loginScope = "openid profile email offline_access"

// loadConfig is one load run against one server.
type loadConfig struct {
	BaseURL      string
	Scenarios    []string
	Duration     time.Duration
	Concurrency  int
	Timeout      time.Duration
	Client       string // public client for signup, password and refresh
	RedirectURI  string // of Client, for the browser sign-in (authorize)
	ClientID     string // confidential client for client_credentials and stats
	ClientSecret string
	Users        int // users to sign up before the load; 0: one per worker
	// Login and Password are an existing account of a peer (another
	// provider loaded side by side with idp): with them nothing is signed
	// up, and every prepared user is a password-grant login of this one
	// account. LoginClientSecret, when set, authenticates Client with HTTP
	// Basic, for a peer whose password-grant client is confidential.
	Login, Password   string
	LoginClientSecret string
	// LoginConcurrency is the workers of password and signup, whose
	// capacity is the server's hashing slots: a few more workers than slots
	// keep every slot busy, many more only wait in its queue and time out.
	// 0: twice HashConcurrency.
	LoginConcurrency int
	// Rounds splits each scenario's Duration into interleaved slices.
	Rounds int
	// BeforeRound, when set, runs before each round.
	BeforeRound func(ctx context.Context, round int) error
	Prefix      string // of the usernames this run creates; "": random
	JSONPath    string

	FloodConcurrency int
	FloodDuration    time.Duration
	// DebugURL is the base URL of the server's debug listener
	// (IDP_OPS_ADDR with IDP_OPS_PROFILER). With ProfileDir, the server's CPU is profiled
	// during each scenario's slice of each round, into
	// ProfileDir/<scenario>-<round>.pprof.
	DebugURL   string
	ProfileDir string

	PID             int // the server's process, for the flood's memory samples and CPU time
	DBPID           int // the database server's process, whose CPU time counts as the server's
	HashConcurrency int
	Argon2MemoryKiB uint32
	// IdleRSSMiB is the server's resident set when idle after start-up
	// (the bench reads it), the base of the floods' memory bound; 0: not
	// known, and the bound allows 150 MiB for it and the rest.
	IdleRSSMiB float64

	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// user is a prepared account and the tokens its signup returned.
type user struct {
	username, email, password string
	accessToken, refreshToken string
}

// tokenResponse is the part of a token answer the load needs.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Error        string `json:"error"`
}

// runner holds what the scenarios share.
type runner struct {
	cfg          loadConfig
	base         *url.URL
	endpoints    endpoints         // idp's paths until check reads the discovery document
	transport    http.RoundTripper // plain, for preparation
	client       *http.Client      // through the refresh chain pool, for the load
	chains       *chainPool
	users        []*user
	serviceToken string
	signups      atomic.Int64
	notes        []string

	loginForms     []loginForm // one per user, for loginpage and loginflood
	sessions       []string    // signed-in browsers' cookies, one per authorize worker
	codeSignatures atomic.Int64
}

// workers is the concurrency of scenario name.
func (c *loadConfig) workers(name string) int {
	if name == "refresh2" {
		// refresh on 2 chains, against refresh's -concurrency: throughput
		// must not fall as concurrent chains rise.
		return 2
	}
	if name != "password" && name != "signup" && name != "loginpage" {
		return c.Concurrency
	}
	if c.LoginConcurrency > 0 {
		return c.LoginConcurrency
	}
	return 2 * max(c.HashConcurrency, 1)
}

func (c *loadConfig) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

// newTransport is the HTTP transport of the load: keep-alive connections,
// enough idle ones for every worker, no proxy, no compression.
func newTransport(conns int) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

func newRunner(cfg loadConfig) (*runner, error) {
	base, err := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("-url: %q is not an http(s) URL", cfg.BaseURL)
	}
	t := newTransport(max(cfg.Concurrency, cfg.FloodConcurrency) + 16)
	r := &runner{cfg: cfg, base: base, transport: t}
	r.endpoints = r.idpEndpoints()
	r.chains = newChainPool(t, r.relogin)
	r.client = &http.Client{Transport: r.chains, Timeout: cfg.Timeout}
	return r, nil
}

func (r *runner) url(path string) string { return r.base.String() + path }

// runLoad prepares users and tokens, runs every chosen scenario, and returns
// the report.
func runLoad(ctx context.Context, cfg loadConfig) (*Report, error) {
	reps, err := runLoads(ctx, cfg)
	if len(reps) == 0 {
		return nil, err
	}
	return reps[0], err
}

// runLoads loads several servers with the same scenarios, interleaved: each
// scenario's slice of each round runs against every server in turn, the
// first server's BeforeRound before each round. Two servers compared this
// way (a database at scale against a fresh one) see the same minutes of the
// machine: its speed changes from one minute to the next (other tenants of
// its host), and a comparison of two runs minutes apart measured that.
// Floods, which take the machine whole, run after the rounds, one server
// after the other.
func runLoads(ctx context.Context, cfgs ...loadConfig) ([]*Report, error) {
	type acc struct {
		rec     *recorder
		elapsed time.Duration
		workers int
		skip    string
		cpu     cpuUse
		cpuOK   bool
	}
	type target struct {
		cfg   loadConfig
		r     *runner
		rep   *Report
		accs  map[string]*acc
		total cpuUse
	}
	targets := make([]*target, len(cfgs))
	for i, cfg := range cfgs {
		r, err := newRunner(cfg)
		if err != nil {
			return nil, err
		}
		// The load is over when runLoads returns: its keep-alive
		// connections would otherwise keep the server's per-connection
		// goroutines and buffers for 90 s, and the bench reads the idle
		// server's memory next.
		if t, ok := r.transport.(interface{ CloseIdleConnections() }); ok {
			defer t.CloseIdleConnections()
		}
		rep := &Report{URL: r.base.String(), Started: time.Now().UTC(), Duration: cfg.Duration.Seconds(), Concurrency: cfg.Concurrency, Rounds: max(cfg.Rounds, 1)}
		if cfg.ProfileDir != "" {
			if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
				return nil, err
			}
		}
		if err := r.prepare(ctx); err != nil {
			return nil, err
		}
		targets[i] = &target{cfg: cfg, r: r, rep: rep, accs: map[string]*acc{}}
	}
	if len(targets) == 0 {
		return nil, errors.New("no server to load")
	}
	first := cfgs[0]
	chosen := func(name string) bool { return slices.Contains(first.Scenarios, name) }
	// Each scenario runs in Rounds slices of Duration/Rounds, the rounds
	// one after another: a burst of contention from elsewhere on the
	// machine then falls on every scenario alike, and the ratios between
	// them survive it. BeforeRound lets the bench sample the machine's
	// limits over the same stretch of time.
	rounds := max(first.Rounds, 1)
	slice := first.Duration / time.Duration(rounds)
	for round := range rounds {
		if first.BeforeRound != nil {
			if err := first.BeforeRound(ctx, round); err != nil {
				return nil, err
			}
		}
		for _, name := range allScenarios {
			if !chosen(name) {
				continue
			}
			for i, t := range targets {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				cfg, r := t.cfg, t.r
				a := t.accs[name]
				if a == nil {
					a = &acc{rec: newRecorder(), workers: cfg.workers(name), cpuOK: cfg.PID > 0}
					t.accs[name] = a
				}
				if a.skip != "" {
					continue
				}
				sc := r.scenario(ctx, name)
				if a.skip = sc.skip; a.skip != "" {
					continue
				}
				if round == 0 {
					if len(targets) > 1 {
						cfg.logf("  %-18s %d workers, %d × %v, server %d of %d", name, a.workers, rounds, slice, i+1, len(targets))
					} else {
						cfg.logf("  %-18s %d workers, %d × %v", name, a.workers, rounds, slice)
					}
				}
				profiled := r.profile(ctx, fmt.Sprintf("%s-%d.pprof", name, round+1), slice)
				el, u, ok := r.attack(ctx, sc, a.workers, slice, a.rec, nil)
				if err := profiled(); err != nil {
					cfg.logf("  profile of %s: %v", name, err)
				}
				a.elapsed += el
				a.cpu.add(u)
				t.total.add(u)
				a.cpuOK = a.cpuOK && ok
			}
		}
	}
	reps := make([]*Report, len(targets))
	for i, t := range targets {
		r, rep := t.r, t.rep
		for _, name := range allScenarios {
			a := t.accs[name]
			if a == nil {
				continue
			}
			if a.skip != "" {
				rep.Scenarios = append(rep.Scenarios, ScenarioResult{Name: name, Concurrency: a.workers, Skipped: a.skip})
				continue
			}
			res := a.rec.result(name, a.workers, a.elapsed)
			if a.cpuOK {
				res.withCPU(a.cpu, runtime.GOMAXPROCS(0))
			}
			if name == "authorize" {
				rep.SignaturesPerCode = int(r.codeSignatures.Load())
			}
			if name == "refresh" {
				rep.SignaturesPerRefresh = int(r.chains.signatures.Load())
				if n := r.chains.relogins.Load(); n > 0 {
					res.Note = fmt.Sprintf("%d chains broke and were logged in again", n)
				}
			}
			rep.Scenarios = append(rep.Scenarios, res)
		}
		cfg := t.cfg
		if chosen(floodScenario) && ctx.Err() == nil {
			cfg.logf("  %-18s %d workers for %v", floodScenario, cfg.FloodConcurrency, cfg.FloodDuration)
			rep.Flood = r.flood(ctx, floodScenario)
		}
		if chosen(loginFloodScenario) && ctx.Err() == nil {
			cfg.logf("  %-18s %d workers for %v", loginFloodScenario, cfg.FloodConcurrency, cfg.FloodDuration)
			rep.LoginFlood = r.flood(ctx, loginFloodScenario)
		}
		if chosen(pictureFloodScenario) && ctx.Err() == nil {
			cfg.logf("  %-18s %d workers for %v", pictureFloodScenario, cfg.FloodConcurrency, cfg.FloodDuration)
			rep.PictureFlood = r.flood(ctx, pictureFloodScenario)
		}
		rep.Notes = r.notes
		if cfg.PID > 0 && t.total.wall > 0 {
			rep.OthersShare = t.total.others.Seconds() / (t.total.wall.Seconds() * float64(runtime.GOMAXPROCS(0)))
		}
		rep.Users = len(r.users)
		reps[i] = rep
	}
	return reps, ctx.Err()
}

// prepare checks the server and prepares the users and the service token
// the chosen scenarios need.
func (r *runner) prepare(ctx context.Context) error {
	cfg := r.cfg
	if err := r.check(ctx); err != nil {
		return err
	}
	chosen := func(name string) bool { return slices.Contains(cfg.Scenarios, name) }
	needUsers := slices.ContainsFunc(cfg.Scenarios, func(s string) bool {
		return s != "healthz" && s != "discovery" && s != "jwks" && s != "client_credentials" && s != "stats" && s != "signup"
	})
	if needUsers {
		if err := r.prepareUsers(ctx); err != nil {
			return err
		}
	}
	if (chosen("client_credentials") || chosen("stats")) && cfg.ClientID != "" {
		tok, err := r.clientCredentials(ctx)
		if err != nil {
			return fmt.Errorf("service client %s: %w", cfg.ClientID, err)
		}
		r.serviceToken = tok
	}
	return nil
}

// profile starts a CPU profile of the server for d (in whole seconds, at
// least one), written to file in the profile directory, and returns a
// function that waits for it. Without a profile directory it does nothing.
// The profiler costs the server a little CPU: a profiled run's figures are
// for finding where the time goes, not results.
func (r *runner) profile(ctx context.Context, file string, d time.Duration) func() error {
	if r.cfg.ProfileDir == "" || r.cfg.DebugURL == "" {
		return func() error { return nil }
	}
	secs := max(1, int(d/time.Second))
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			u := strings.TrimSuffix(r.cfg.DebugURL, "/") + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs)
			ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return err
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", u, res.Status)
			}
			body, err := io.ReadAll(res.Body)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(r.cfg.ProfileDir, file), body, 0o644)
		}()
	}()
	return func() error { return <-done }
}

// check makes sure a server answers at the base URL (idp at /healthz, a
// peer with its discovery document), reads the endpoints from the discovery
// document, and notes whether the document and the key set support
// conditional requests.
func (r *runner) check(ctx context.Context) error {
	if r.cfg.Login == "" {
		resp, body, err := r.do(ctx, http.MethodGet, "/healthz", nil, nil)
		if err != nil {
			return fmt.Errorf("no server at %s: %w", r.base, err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s/healthz: %s %s", r.base, resp.Status, bytes.TrimSpace(body))
		}
	}
	eps, err := r.discover(ctx)
	if err != nil {
		return err
	}
	r.endpoints = eps
	for _, u := range []string{r.url(discoveryPath), eps.jwks} {
		// The notes name what idp serves by its path, as they always did.
		name := strings.TrimPrefix(u, r.base.String())
		resp, _, err := r.doURL(ctx, http.MethodGet, u, nil, nil)
		if err != nil {
			return err
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			r.notes = append(r.notes, name+": no ETag")
			continue
		}
		resp, _, err = r.doURL(ctx, http.MethodGet, u, nil, http.Header{"If-None-Match": {etag}})
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusNotModified {
			r.notes = append(r.notes, fmt.Sprintf("%s: If-None-Match with its ETag gives %d, not 304", name, resp.StatusCode))
		}
	}
	return nil
}

// do sends one request outside the measured load, to path below the base URL.
func (r *runner) do(ctx context.Context, method, path string, body []byte, h http.Header) (*http.Response, []byte, error) {
	return r.doURL(ctx, method, r.url(path), body, h)
}

// doURL sends one request outside the measured load, to u.
func (r *runner) doURL(ctx context.Context, method, u string, body []byte, h http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	c := http.Client{Transport: r.transport, Timeout: r.cfg.Timeout}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, b, err
}

// withRetry runs f until it succeeds, fails for good, or ten tries have
// been spent on overload (503).
func withRetry(ctx context.Context, f func() (status int, err error)) error {
	var err error
	for try := range 10 {
		var status int
		status, err = f()
		if err == nil || status != http.StatusServiceUnavailable {
			return err
		}
		select {
		case <-time.After(time.Duration(try+1) * 200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// prepareUsers signs up the users the load logs in as, four at a time (each
// signup costs the server a password hash); with -login it logs the peer's
// account in as many times instead.
func (r *runner) prepareUsers(ctx context.Context) error {
	n := r.cfg.Users
	if n <= 0 {
		n = max(r.cfg.Concurrency, r.cfg.workers("password"))
	}
	if r.cfg.Login != "" {
		return r.prepareLogins(ctx, n)
	}
	if r.cfg.Prefix == "" {
		r.cfg.Prefix = "lg-" + randomHex(4)
	}
	r.cfg.logf("  preparing %d users (%s-u*) through POST /v1/users with client %s", n, r.cfg.Prefix, r.cfg.Client)
	r.users = make([]*user, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			u := &user{
				username: fmt.Sprintf("%s-u%d", r.cfg.Prefix, i),
				password: "lg-" + rand.Text(),
			}
			u.email = u.username + "@example.com"
			errs[i] = withRetry(ctx, func() (int, error) { return r.signup(ctx, u, i) })
			r.users[i] = u
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// signupBody is the JSON signup of one user.
func (r *runner) signupBody(username, email, password string, i int) []byte {
	b, _ := json.Marshal(map[string]string{
		"client_id": r.cfg.Client, "username": username, "email": email, "password": password,
		"first_name": "Load", "last_name": "Test " + strconv.Itoa(i), "gender": []string{"female", "male", "unspecified"}[i%3],
	})
	return b
}

func (r *runner) signup(ctx context.Context, u *user, i int) (int, error) {
	resp, body, err := r.do(ctx, http.MethodPost, "/v1/users", r.signupBody(u.username, u.email, u.password, i),
		http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusCreated {
		return resp.StatusCode, fmt.Errorf("signup %s: %s %s", u.username, resp.Status, bytes.TrimSpace(body))
	}
	var doc struct {
		Tokens tokenResponse `json:"tokens"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Tokens.AccessToken == "" {
		return resp.StatusCode, fmt.Errorf("signup %s: no tokens in the answer", u.username)
	}
	u.accessToken, u.refreshToken = doc.Tokens.AccessToken, doc.Tokens.RefreshToken
	return resp.StatusCode, nil
}

// passwordForm is the password grant of u.
func (r *runner) passwordForm(u *user) []byte {
	return []byte(url.Values{
		"grant_type": {"password"}, "client_id": {r.cfg.Client},
		"username": {u.username}, "password": {u.password}, "scope": {loginScope},
	}.Encode())
}

var formHeader = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}

// login runs a password grant for u and returns its tokens.
func (r *runner) login(ctx context.Context, u *user) (tokenResponse, error) {
	var tok tokenResponse
	err := withRetry(ctx, func() (int, error) {
		resp, body, err := r.doURL(ctx, http.MethodPost, r.endpoints.token, r.passwordForm(u), r.tokenHeader())
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, fmt.Errorf("login %s: %s %s", u.username, resp.Status, bytes.TrimSpace(body))
		}
		return resp.StatusCode, json.Unmarshal(body, &tok)
	})
	return tok, err
}

// relogin starts a new refresh chain for a chain that broke.
func (r *runner) relogin(ctx context.Context, c *chain) {
	tok, err := r.login(ctx, c.user)
	if err != nil {
		r.cfg.logf("  refresh chain %d: %v", c.id, err)
		return
	}
	c.refreshToken = tok.RefreshToken
}

func (r *runner) clientCredentials(ctx context.Context) (string, error) {
	resp, body, err := r.doURL(ctx, http.MethodPost, r.endpoints.token, clientCredentialsForm, r.serviceHeader())
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("client_credentials: %s %s", resp.Status, bytes.TrimSpace(body))
	}
	var tok tokenResponse
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", errors.New("client_credentials: no access token in the answer")
	}
	return tok.AccessToken, nil
}

// clientCredentialsForm asks for the scope of the stats endpoint.
var clientCredentialsForm = []byte("grant_type=client_credentials&scope=users%3Astats")

// serviceHeader authenticates the confidential client with HTTP Basic, its
// id and secret form-encoded first as RFC 6749 §2.3.1 says.
func (r *runner) serviceHeader() http.Header {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(url.QueryEscape(r.cfg.ClientID), url.QueryEscape(r.cfg.ClientSecret))
	h := formHeader.Clone()
	h.Set("Authorization", req.Header.Get("Authorization"))
	return h
}

// scenario is one kind of request with what counts as its success.
type scenario struct {
	name     string
	expect   int
	targeter vegeta.Targeter
	skip     string
	keepBody bool // results carry the body
	// iterate, when set, is one operation of several requests, run by
	// loop instead of vegeta; worker is the goroutine's number.
	iterate func(ctx context.Context, worker int) outcome
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// static is a targeter that sends the same request every time.
func static(method, u string, h http.Header) vegeta.Targeter {
	return func(t *vegeta.Target) error {
		t.Method, t.URL, t.Header = method, u, h
		return nil
	}
}

// scenario builds the targeter of the scenario name.
func (r *runner) scenario(ctx context.Context, name string) scenario {
	sc := scenario{name: name, expect: http.StatusOK}
	switch name {
	case "healthz":
		sc.targeter = static(http.MethodGet, r.url("/healthz"), nil)
	case "discovery":
		sc.targeter = static(http.MethodGet, r.url("/.well-known/openid-configuration"), nil)
	case "jwks":
		sc.targeter = static(http.MethodGet, r.endpoints.jwks, nil)
	case "userinfo", "profile":
		target := map[string]string{"userinfo": r.endpoints.userinfo, "profile": r.url("/v1/profile")}[name]
		headers := make([]http.Header, len(r.users))
		for i, u := range r.users {
			headers[i] = bearer(u.accessToken)
		}
		var n atomic.Uint64
		sc.targeter = func(t *vegeta.Target) error {
			t.Method, t.URL, t.Header = http.MethodGet, target, headers[int(n.Add(1)-1)%len(headers)]
			return nil
		}
	case "password", floodScenario:
		bodies := make([][]byte, len(r.users))
		for i, u := range r.users {
			bodies[i] = r.passwordForm(u)
		}
		var n atomic.Uint64
		h := r.tokenHeader()
		sc.targeter = func(t *vegeta.Target) error {
			t.Method, t.URL, t.Header = http.MethodPost, r.endpoints.token, h
			t.Body = bodies[int(n.Add(1)-1)%len(bodies)]
			return nil
		}
	case "authorize":
		if r.sessions == nil {
			if err := r.prepareSessions(ctx, r.cfg.workers(name)); err != nil {
				sc.skip = "sign-in: " + err.Error()
				return sc
			}
		}
		c := r.browserClient(nil)
		sc.iterate = func(ctx context.Context, worker int) outcome {
			return r.authorizeOnce(ctx, c, r.sessions[worker%len(r.sessions)])
		}
	case "loginpage", loginFloodScenario:
		if r.loginForms == nil {
			if err := r.prepareLoginForms(ctx); err != nil {
				sc.skip = "login page: " + err.Error()
				return sc
			}
		}
		sc.expect = http.StatusSeeOther
		headers := make([]http.Header, len(r.users))
		bodies := make([][]byte, len(r.users))
		for i, u := range r.users {
			f := r.loginForms[i]
			headers[i] = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Cookie": {f.cookie}}
			bodies[i] = f.body(u)
		}
		var n atomic.Uint64
		sc.targeter = func(t *vegeta.Target) error {
			i := int(n.Add(1)-1) % len(bodies)
			t.Method, t.URL, t.Header, t.Body = http.MethodPost, r.url("/login"), headers[i], bodies[i]
			return nil
		}
	case "refresh", "refresh2":
		if len(r.users) == 0 || r.users[0].refreshToken == "" {
			sc.skip = fmt.Sprintf("client %s got no refresh token at %s", r.cfg.Client, map[bool]string{true: "signup", false: "login"}[r.cfg.Login == ""])
			return sc
		}
		if r.chains.free == nil {
			r.chains.reset(ctx, r.users, r.cfg.Client)
			r.chains.authorization = r.clientAuthorization()
		}
		sc.targeter = r.chains.targeter(r.endpoints.token, r.cfg.Timeout)
	case "client_credentials":
		if r.cfg.ClientID == "" {
			sc.skip = "needs -client-id and -client-secret"
			return sc
		}
		h := r.serviceHeader()
		sc.targeter = func(t *vegeta.Target) error {
			t.Method, t.URL, t.Header, t.Body = http.MethodPost, r.endpoints.token, h, clientCredentialsForm
			return nil
		}
	case "stats":
		if r.serviceToken == "" {
			sc.skip = "needs -client-id and -client-secret (a client with client_credentials and users:stats)"
			return sc
		}
		sc.targeter = static(http.MethodGet, r.url("/v1/users/stats"), bearer(r.serviceToken))
	case "signup":
		if r.cfg.Prefix == "" {
			r.cfg.Prefix = "lg-" + randomHex(4)
		}
		sc.expect = http.StatusCreated
		h := http.Header{"Content-Type": {"application/json"}}
		pw := "lg-" + rand.Text()
		sc.targeter = func(t *vegeta.Target) error {
			i := int(r.signups.Add(1))
			name := fmt.Sprintf("%s-s%d", r.cfg.Prefix, i)
			t.Method, t.URL, t.Header = http.MethodPost, r.url("/v1/users"), h
			t.Body = r.signupBody(name, name+"@example.com", pw, i)
			return nil
		}
	case pictureFloodScenario:
		pic, err := floodPicture()
		if err != nil {
			sc.skip = "picture: " + err.Error()
			return sc
		}
		if r.cfg.Prefix == "" {
			r.cfg.Prefix = "lg-" + randomHex(4)
		}
		sc.expect = http.StatusCreated
		pw := "lg-" + rand.Text()
		sc.iterate = func(ctx context.Context, _ int) outcome {
			i := int(r.signups.Add(1))
			name := fmt.Sprintf("%s-p%d", r.cfg.Prefix, i)
			return r.pictureSignup(ctx, name, pw, i, pic)
		}
	default:
		sc.skip = "unknown scenario"
	}
	return sc
}

// attack runs sc closed-loop for d: workers each send their next request
// as soon as the previous one is answered. vegeta with an unbounded rate and
// as many workers as maximum workers is exactly that. Every result goes into
// rec (and to onResult); attack returns the time from the start to the last
// answer and the CPU time spent meanwhile (ok false when it could not be
// read).
func (r *runner) attack(ctx context.Context, sc scenario, workers int, d time.Duration, rec *recorder, onResult func(*vegeta.Result)) (time.Duration, cpuUse, bool) {
	if sc.iterate != nil {
		return r.loop(ctx, sc, workers, d, rec, onResult)
	}
	atk := vegeta.NewAttacker(
		vegeta.Client(r.client),
		// A redirect is an answer: the login page's 303 points on into
		// the sign-in, and from there to a client that is not there.
		vegeta.Redirects(vegeta.NoFollow),
		vegeta.Workers(uint64(workers)),
		vegeta.MaxWorkers(uint64(workers)),
		// Bodies are read to the end either way; only the flood keeps
		// them (to tell 503 temporarily_unavailable from other 503s), so
		// that the load generator's cost does not grow with the body.
		vegeta.MaxBody(map[bool]int64{true: 4 << 10, false: 0}[sc.keepBody]),
	)
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	before := sampleCPU(r.cfg.PID, r.cfg.DBPID)
	start := time.Now()
	for res := range atk.Attack(sc.targeter, vegeta.Rate{}, d, sc.name) {
		rec.add(int(res.Code), res.Latency, int(res.Code) == sc.expect && res.Error == "")
		if onResult != nil {
			onResult(res)
		}
	}
	elapsed := time.Since(start)
	u, ok := before.until(sampleCPU(r.cfg.PID, r.cfg.DBPID), elapsed)
	return elapsed, u, ok
}
