package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakePeer answers as Dex does with a static password and a static client:
// everything below /dex, endpoints only as the discovery document names
// them, one existing account, no signup, refresh tokens single use, and the
// client authenticated by its secret when it has one (HTTP Basic, its id and
// secret form-encoded).
type fakePeer struct {
	login, password string
	client, secret  string // secret "": a public client

	mu       sync.Mutex
	n        int
	live     map[string]bool // refresh tokens not yet used
	issued   map[string]bool // access tokens
	reused   int
	badAuth  int            // token requests whose client did not authenticate
	requests map[string]int // by method and path
}

func newFakePeer(t *testing.T, secret string) (*fakePeer, *httptest.Server) {
	p := &fakePeer{login: "admin@example.com", password: "pw-of-admin", client: "mobile", secret: secret,
		live: map[string]bool{}, issued: map[string]bool{}, requests: map[string]int{}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv
}

func (p *fakePeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.requests[r.Method+" "+r.URL.Path]++
	p.mu.Unlock()
	issuer := "http://" + r.Host + "/dex"
	switch r.Method + " " + r.URL.Path {
	case "GET /dex/.well-known/openid-configuration":
		writeJSONStatus(w, http.StatusOK, map[string]string{
			"issuer": issuer, "authorization_endpoint": issuer + "/auth", "token_endpoint": issuer + "/token",
			"jwks_uri": issuer + "/keys", "userinfo_endpoint": issuer + "/userinfo",
		})
	case "GET /dex/keys":
		writeJSONStatus(w, http.StatusOK, map[string]any{"keys": []any{}})
	case "POST /dex/token":
		p.token(w, r)
	case "GET /dex/userinfo":
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		p.mu.Lock()
		ok := p.issued[tok]
		p.mu.Unlock()
		if !ok {
			writeJSONStatus(w, http.StatusUnauthorized, map[string]string{"error": "access_denied"})
			return
		}
		writeJSONStatus(w, http.StatusOK, map[string]string{"sub": "1", "email": p.login})
	default:
		http.NotFound(w, r)
	}
}

// clientOK is Dex's client check: Basic credentials when present, else the
// form's client_id and client_secret.
func (p *fakePeer) clientOK(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		ok = err1 == nil && err2 == nil
	} else {
		id, secret, ok = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), true
	}
	return ok && id == p.client && secret == p.secret
}

func (p *fakePeer) tokens() map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	at := fmt.Sprintf("eyJ.at%d.sig", p.n)
	rt := fmt.Sprintf("rt-%d", p.n)
	p.issued[at], p.live[rt] = true, true
	return map[string]any{"access_token": at, "id_token": fmt.Sprintf("eyJ.id%d.sig", p.n), "refresh_token": rt, "token_type": "bearer"}
}

func (p *fakePeer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSONStatus(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	if !p.clientOK(r) {
		p.mu.Lock()
		p.badAuth++
		p.mu.Unlock()
		writeJSONStatus(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "password":
		if r.PostForm.Get("username") != p.login || r.PostForm.Get("password") != p.password {
			writeJSONStatus(w, http.StatusUnauthorized, map[string]string{"error": "access_denied"})
			return
		}
		writeJSONStatus(w, http.StatusOK, p.tokens())
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		p.mu.Lock()
		live := p.live[rt]
		delete(p.live, rt)
		if !live {
			p.reused++
		}
		p.mu.Unlock()
		if !live {
			writeJSONStatus(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
			return
		}
		writeJSONStatus(w, http.StatusOK, p.tokens())
	default:
		writeJSONStatus(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
	}
}

// TestRunAgainstPeer loads a Dex-like peer through run as the command line
// does, with its account (-login, -password) and with a public or a
// confidential client: every scenario succeeds at the endpoints the
// discovery document names, nobody is signed up, each refresh chain
// rotates in order, and the server's memory at the start and its peak are
// reported.
func TestRunAgainstPeer(t *testing.T) {
	for _, tt := range []struct {
		name   string
		secret string // of the peer's client
		args   []string
	}{
		{"public client", "", nil},
		{"confidential client", "s3/cr+t", []string{"-login-client-secret", "s3/cr+t"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, srv := newFakePeer(t, tt.secret)
			jsonPath := filepath.Join(t.TempDir(), "peer.json")
			var stdout, stderr bytes.Buffer
			args := append([]string{"-url", srv.URL + "/dex", "-login", p.login, "-password", p.password,
				"-scenarios", "discovery,jwks,password,refresh,userinfo", "-duration", "150ms", "-concurrency", "3",
				"-login-concurrency", "2", "-rounds", "2", "-pid", strconv.Itoa(os.Getpid()), "-json", jsonPath}, tt.args...)
			if err := run(context.Background(), args, noEnv, &stdout, &stderr); err != nil {
				t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
			}
			b, err := os.ReadFile(jsonPath)
			if err != nil {
				t.Fatal(err)
			}
			var rep standaloneReport
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatalf("JSON report: %v\n%s", err, b)
			}
			if got := scenarioNames(rep.Scenarios); !slices.Equal(got, []string{"discovery", "jwks", "userinfo", "refresh", "password"}) {
				t.Errorf("scenarios %q", got)
			}
			for _, s := range rep.Scenarios {
				if s.Skipped != "" || s.OK == 0 || s.OK != s.Requests || len(s.Errors) > 0 {
					t.Errorf("%s: %d requests, %d ok, errors %v, skipped %q; want all ok", s.Name, s.Requests, s.OK, s.Errors, s.Skipped)
				}
			}
			if rep.Users != 3 || rep.SignaturesPerRefresh != 2 {
				t.Errorf("users %d, signatures per refresh %d; want 3 logins and 2", rep.Users, rep.SignaturesPerRefresh)
			}
			m := rep.ServerRSS
			if m == nil || m.StartMiB <= 0 || m.PeakMiB < m.StartMiB || m.PeakSource == "" {
				t.Errorf("server RSS %+v; want the test process's own, peak at least the start", m)
			}
			if !strings.Contains(stdout.String(), "server RSS: ") {
				t.Errorf("table lacks the server's RSS:\n%s", stdout.String())
			}

			p.mu.Lock()
			defer p.mu.Unlock()
			for req, n := range p.requests {
				if !strings.HasPrefix(req, "GET /dex/") && !strings.HasPrefix(req, "POST /dex/") {
					t.Errorf("%d× %s: outside the peer's endpoints", n, req)
				}
			}
			if p.reused != 0 || p.badAuth != 0 {
				t.Errorf("the peer saw %d refresh tokens used twice and %d token requests without its client's credentials", p.reused, p.badAuth)
			}
			if n := p.requests["POST /dex/token"]; n < 3+rep.Scenario("password").OK+rep.Scenario("refresh").OK {
				t.Errorf("%d token requests; want the 3 preparation logins and every password and refresh grant", n)
			}
		})
	}
}

func scenarioNames(ss []ScenarioResult) []string {
	var names []string
	for _, s := range ss {
		names = append(names, s.Name)
	}
	return names
}

// TestPeerArgs: -login refuses what a peer cannot serve, with a reason,
// and "all" is what it can.
func TestPeerArgs(t *testing.T) {
	peer := []string{"-login", "admin", "-password", "pw"}
	for _, tt := range []struct {
		args []string
		want string // error; "" for none
	}{
		{[]string{"-scenarios", "signup"}, "signup needs idp's own API"},
		{[]string{"-scenarios", "jwks,profile,stats"}, "profile, stats need idp's own API"},
		{[]string{"-scenarios", "authorize"}, "authorize needs"},
		{[]string{"-scenarios", "loginpage"}, "loginpage needs"},
		{[]string{"-scenarios", "loginflood"}, "loginflood needs"},
		{[]string{"-scenarios", "pictureflood"}, "pictureflood needs"},
		{[]string{"-scenarios", "discovery,jwks,password,refresh,userinfo,flood"}, ""},
		{[]string{"-scenarios", "healthz"}, ""},
		{[]string{"-scenarios", "all", "-login-client-secret", "x"}, ""},
	} {
		_, err := parseLoadArgs(append(slices.Clone(peer), tt.args...), noEnv, io.Discard)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "-login")):
			t.Errorf("%q: %v; want an error with %q naming -login", tt.args, err, tt.want)
		}
	}
	cfg, err := parseLoadArgs(append(slices.Clone(peer), "-scenarios", "all"), noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"discovery", "jwks", "userinfo", "refresh", "refresh2", "password", "client_credentials"}; !slices.Equal(cfg.Scenarios, want) {
		t.Errorf("-login -scenarios all = %q, want %q", cfg.Scenarios, want)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-login", "admin"}, "-login and -password go together"},
		{[]string{"-password", "pw"}, "-login and -password go together"},
		{[]string{"-login-client-secret", "x"}, "-login-client-secret needs -login"},
	} {
		if _, err := parseLoadArgs(tt.args, noEnv, io.Discard); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.args, err, tt.want)
		}
	}
}

// TestPeerFailures: a peer that publishes no discovery document, or refuses
// the account, stops the run with the reason before any load.
func TestPeerFailures(t *testing.T) {
	p, srv := newFakePeer(t, "")
	for _, tt := range []struct {
		url, password string
		want          string
	}{
		{srv.URL, p.password, "a peer's endpoints come from its discovery document"},
		{srv.URL + "/dex", "wrong", "-login: login admin@example.com: 401"},
	} {
		cfg, err := parseLoadArgs([]string{"-url", tt.url, "-login", p.login, "-password", tt.password, "-scenarios", "password", "-duration", "50ms"}, noEnv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		_, err = runLoad(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("-url %s -password %s: %v, want %q", tt.url, tt.password, err, tt.want)
		} else if strings.Count(err.Error(), "\n") > 0 {
			t.Errorf("-url %s -password %s: the error is repeated:\n%v", tt.url, tt.password, err)
		}
	}
}

func TestResolveEndpoint(t *testing.T) {
	base, _ := url.Parse("http://127.0.0.1:5556/dex")
	idp, _ := url.Parse("http://127.0.0.1:8080")
	for _, tt := range []struct {
		base              *url.URL
		issuer, published string
		want              string
	}{
		// Below the issuer: below the base URL.
		{base, "http://127.0.0.1:5556/dex", "http://127.0.0.1:5556/dex/token", "http://127.0.0.1:5556/dex/token"},
		{base, "http://127.0.0.1:5556/dex/", "http://127.0.0.1:5556/dex/keys", "http://127.0.0.1:5556/dex/keys"},
		// idp behind a public name: the load still goes to -url.
		{idp, "https://id.example.com", "https://id.example.com/oauth2/token", "http://127.0.0.1:8080/oauth2/token"},
		{idp, "https://example.com/idp", "https://example.com/idp/.well-known/jwks.json", "http://127.0.0.1:8080/.well-known/jwks.json"},
		// Not below the issuer (another host, or a sibling path): as published.
		{base, "http://127.0.0.1:5556/dex", "https://keys.example.com/dex/keys", "https://keys.example.com/dex/keys"},
		{base, "http://127.0.0.1:5556/dex", "http://127.0.0.1:5556/dexter/token", "http://127.0.0.1:5556/dexter/token"},
		// A relative reference: against the base URL.
		{base, "", "/dex/userinfo", "http://127.0.0.1:5556/dex/userinfo"},
	} {
		if got := resolveEndpoint(tt.base, tt.issuer, tt.published); got != tt.want {
			t.Errorf("resolveEndpoint(%s, %q, %q) = %q, want %q", tt.base, tt.issuer, tt.published, got, tt.want)
		}
	}
}
