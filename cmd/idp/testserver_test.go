package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"idp/account"
	"idp/database/databasetest"
	"idp/fake"
	"idp/keys"
	"idp/mail"
	"idp/oauth"
	"idp/storage"
)

// Test secrets: fixed so that the log test can look for them.
var (
	testKEK           = keys.NewKEK()
	testRefreshSecret = "test-refresh-secret-0123456789abcdef-0123456789"
)

// syncBuffer collects log output from concurrent requests.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is the real server on a loopback port.
type testServer struct {
	t    testing.TB
	app  *app
	URL  string // where it listens
	logs *syncBuffer
	// stop shuts the server down as SIGTERM would; it is safe to call twice.
	stop func()
}

// fastArgon2 keeps tests quick with the smallest parameters the password
// package accepts (the OWASP floor).
func fastArgon2(c *config) {
	c.Argon2MemoryKiB = 19456
	c.Argon2Iterations = 2
}

// testConfig is a production-style configuration on dbURL.
func testConfig(t testing.TB, dbURL string) config {
	cfg := defaultConfig()
	cfg.DatabaseURL = dbURL
	cfg.DataDir = t.TempDir()
	cfg.KeyEncryptionKey = testKEK
	cfg.RefreshTokenSecrets = testRefreshSecret
	cfg.PicturesURL = t.TempDir()
	cfg.outbox = mail.Options{PollInterval: 50 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	cfg.LogLevel = slog.LevelDebug
	fastArgon2(&cfg)
	return cfg
}

// startServer runs the server on a fresh listener. Unless mutate sets one,
// the issuer is the listener's URL.
func startServer(t testing.TB, dbURL string, mutate ...func(*config)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dbURL)
	cfg.Issuer = "http://" + ln.Addr().String()
	for _, m := range mutate {
		m(&cfg)
	}
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	logs := new(syncBuffer)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, newLogger(logs, cfg.LogLevel))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx, ln) }()
	s := &testServer{t: t, app: a, URL: "http://" + ln.Addr().String(), logs: logs}
	s.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		a.Close()
	})
	t.Cleanup(s.stop)
	return s
}

// eachEngine runs fn on a fresh database of every engine under test.
func eachEngine(t *testing.T, fn func(t *testing.T, dbURL string)) {
	for _, e := range databasetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) { fn(t, e.NewURL(t)) })
	}
}

func (s *testServer) createUser(username, email, pw string) *storage.User {
	s.t.Helper()
	u, err := s.app.accounts.Create(context.Background(), account.NewUser{
		Username: username, Email: email, Password: pw,
		FirstName: "Ada", LastName: "Lovelace", Gender: "female",
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return u
}

func (s *testServer) createClient(c oauth.NewClient) string {
	s.t.Helper()
	secret, err := s.app.clients.Create(context.Background(), c)
	if err != nil {
		s.t.Fatal(err)
	}
	return secret
}

// mobile registers the public client of the embedded default.
func (s *testServer) mobile() {
	s.t.Helper()
	if err := s.app.clients.Ensure(context.Background(), mobileClient); err != nil {
		s.t.Fatal(err)
	}
}

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d, body %q: %v", r.status, r.body, err)
	}
	return m
}

// do sends a request and reads the whole answer.
func (s *testServer) do(req *http.Request) response {
	s.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if res.StatusCode >= 500 && res.StatusCode != http.StatusServiceUnavailable {
		s.t.Errorf("%s %s: status %d: %s", req.Method, req.URL.Path, res.StatusCode, body)
	}
	s.checkOpenAPI(res, body)
	return response{res.StatusCode, res.Header, body}
}

func (s *testServer) postForm(path string, form url.Values, basicUser, basicPass string) response {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	return s.do(req)
}

func (s *testServer) get(path, bearer string) response {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return s.do(req)
}

// stoppedClock is a clock that stands still: tests that count within a
// minute's window cannot then straddle two windows on a slow run.
func stoppedClock() *fake.Clock { return fake.NewClock(time.Now()) }

// newConfidential is a confidential client for client_credentials.
func newConfidential(id string) oauth.NewClient {
	return oauth.NewClient{ID: id, GrantTypes: []string{"client_credentials"}, Scopes: []string{"users:stats"}}
}

// localhostIssuer names the issuer by localhost instead of 127.0.0.1, so
// that passkeys are on (WebAuthn refuses an IP address as RP ID).
func localhostIssuer(c *config) {
	c.Issuer = strings.Replace(c.Issuer, "://127.0.0.1:", "://localhost:", 1)
}
