package nativeapp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer is an authorization server of the smallest kind: discovery,
// an authorization endpoint that issues a code at once to a PKCE request
// of the client "mobile" redirecting to the loopback, a token endpoint
// that redeems it once against the verifier, and the JWKS of the key that
// signs its ID tokens. Its hooks let a test make it misbehave.
type fakeServer struct {
	t   *testing.T
	srv *httptest.Server
	key *rsa.PrivateKey

	// advertiseIss is the discovery document's
	// authorization_response_iss_parameter_supported.
	advertiseIss bool
	// redirect changes the authorization response before it is sent.
	redirect func(q url.Values)
	// claims changes the ID token's claims before it is signed.
	claims func(c map[string]any)
	// signer signs the ID token (default: key).
	signer *rsa.PrivateKey

	mu          sync.Mutex
	codes       map[string]authorization
	tokenCalls  int
	lastRequest url.Values // the authorization request's query
}

type authorization struct {
	challenge, redirectURI, nonce, scope string
}

func newFakeServer(t *testing.T) *fakeServer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{t: t, key: key, advertiseIss: true, codes: map[string]authorization{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", f.discovery)
	mux.HandleFunc("GET /authorize", f.authorize)
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("GET /jwks", f.jwks)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServer) issuer() string { return f.srv.URL }

func (f *fakeServer) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                         f.issuer(),
		"authorization_endpoint":                         f.issuer() + "/authorize",
		"token_endpoint":                                 f.issuer() + "/token",
		"jwks_uri":                                       f.issuer() + "/jwks",
		"response_types_supported":                       []string{"code"},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          []string{"RS256"},
		"code_challenge_methods_supported":               []string{"S256"},
		"authorization_response_iss_parameter_supported": f.advertiseIss,
	})
}

var loopbackRedirect = regexp.MustCompile(`^http://127\.0\.0\.1:[1-9][0-9]*/callback$`)

func (f *fakeServer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	f.lastRequest = q
	f.mu.Unlock()
	redirectURI := q.Get("redirect_uri")
	if q.Get("client_id") != "mobile" || !loopbackRedirect.MatchString(redirectURI) {
		http.Error(w, "unknown client or redirect URI", http.StatusBadRequest)
		return
	}
	resp := url.Values{"state": {q.Get("state")}, "iss": {f.issuer()}}
	switch {
	case q.Get("response_type") != "code", q.Get("code_challenge_method") != "S256", len(q.Get("code_challenge")) != 43,
		q.Get("state") == "", q.Get("nonce") == "":
		resp.Set("error", "invalid_request")
	default:
		code := randomString()
		f.mu.Lock()
		f.codes[code] = authorization{challenge: q.Get("code_challenge"), redirectURI: redirectURI, nonce: q.Get("nonce"), scope: q.Get("scope")}
		f.mu.Unlock()
		resp.Set("code", code)
	}
	if f.redirect != nil {
		f.redirect(resp)
	}
	http.Redirect(w, r, redirectURI+"?"+resp.Encode(), http.StatusFound)
}

func (f *fakeServer) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.tokenCalls++
	a, ok := f.codes[r.PostFormValue("code")]
	delete(f.codes, r.PostFormValue("code"))
	f.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
	switch {
	case r.PostFormValue("grant_type") != "authorization_code" || r.PostFormValue("client_id") != "mobile":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	case r.Header.Get("Authorization") != "":
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "a public client has no secret"})
		return
	case !ok || r.PostFormValue("redirect_uri") != a.redirectURI || base64.RawURLEncoding.EncodeToString(sum[:]) != a.challenge:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "code, redirect_uri or code_verifier"})
		return
	}
	access := "at-" + randomString()
	claims := map[string]any{
		"iss": f.issuer(), "sub": "7", "aud": "mobile", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
		"auth_time": time.Now().Unix(), "nonce": a.nonce, "at_hash": halfHash(access),
	}
	if f.claims != nil {
		f.claims(claims)
	}
	signer := f.key
	if f.signer != nil {
		signer = f.signer
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access, "token_type": "Bearer", "expires_in": 900, "refresh_token": "rt-" + randomString(),
		"scope": a.scope, "id_token": signJWT(f.t, signer, claims),
	})
}

func (f *fakeServer) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(f.key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(f.key.E)).Bytes()),
	}}})
}

func (f *fakeServer) tokenRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenCalls
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// signJWT signs claims with RS256 under kid k1.
func signJWT(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(map[string]string{"alg": "RS256", "kid": "k1", "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// halfHash is an at_hash (OIDC Core §3.1.3.6).
func halfHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// browser follows the authorization URL as a browser would, and keeps
// the answer of the page it lands on.
type browser struct {
	t *testing.T
	// before runs first with the URL, as a stray visit would.
	before func(authURL string)

	mu     sync.Mutex
	status int
	header http.Header
	body   string
	done   chan struct{}
}

func newBrowser(t *testing.T) *browser { return &browser{t: t, done: make(chan struct{})} }

func (b *browser) open(authURL string) error {
	go func() {
		defer close(b.done)
		if b.before != nil {
			b.before(authURL)
		}
		res, err := http.Get(authURL)
		if err != nil {
			b.t.Errorf("browser: %v", err)
			return
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		b.mu.Lock()
		b.status, b.header, b.body = res.StatusCode, res.Header, string(body)
		b.mu.Unlock()
	}()
	return nil
}

// landed waits for the browser and returns its page.
func (b *browser) landed() (int, http.Header, string) {
	b.t.Helper()
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		b.t.Fatal("the browser never landed")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status, b.header, b.body
}

func testConfig(f *fakeServer, b *browser, prompt io.Writer) Config {
	return Config{
		Issuer: f.issuer(), ClientID: "mobile", Scopes: []string{"openid", "profile", "offline_access"},
		Timeout: 10 * time.Second, Open: b.open, Prompt: prompt,
	}
}

// TestLogin: the whole flow against a well-behaved server: the request
// carries PKCE (S256), state and nonce and redirects to the loopback; the
// code is redeemed with the verifier; the ID token is verified; the
// browser is told to close its window, on a page nothing caches; the
// prompt shows the URL and no token.
func TestLogin(t *testing.T) {
	f := newFakeServer(t)
	b := newBrowser(t)
	var prompt bytes.Buffer
	res, err := Login(context.Background(), testConfig(f, b, &prompt))
	if err != nil {
		t.Fatalf("Login: %v\nprompt: %s", err, prompt.String())
	}
	tok := res.Token
	if !strings.HasPrefix(tok.AccessToken, "at-") || !strings.HasPrefix(tok.RefreshToken, "rt-") || tok.TokenType != "Bearer" ||
		tok.ExpiresIn != 900 || tok.Scope != "openid profile offline_access" || tok.IDToken == "" {
		t.Errorf("token response: %+v", tok)
	}
	if res.IDToken == nil || res.IDToken.Subject != "7" || res.IDToken.Issuer != f.issuer() {
		t.Errorf("ID token: %+v", res.IDToken)
	}
	f.mu.Lock()
	req := f.lastRequest
	f.mu.Unlock()
	if req.Get("scope") != "openid profile offline_access" || req.Get("nonce") == "" || len(req.Get("state")) < 40 {
		t.Errorf("authorization request: %v", req)
	}
	status, header, body := b.landed()
	if status != 200 || header.Get("Cache-Control") != "no-store" || !strings.Contains(body, "close this window") ||
		!strings.Contains(header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("the browser's page: %d %v %q", status, header, body)
	}
	out := prompt.String()
	if !strings.Contains(out, f.issuer()+"/authorize?") || !strings.Contains(out, "http://127.0.0.1:") {
		t.Errorf("the prompt does not show the URL and the redirect: %q", out)
	}
	for _, secret := range []string{tok.AccessToken, tok.RefreshToken, tok.IDToken} {
		if strings.Contains(out, secret) {
			t.Errorf("the prompt shows a token: %q", out)
		}
	}
	// The listener is gone: the redirect URI answers no more.
	port := regexp.MustCompile(`http://127\.0\.0\.1:([0-9]+)/callback`).FindStringSubmatch(out)
	if port == nil {
		t.Fatalf("no redirect URI in the prompt: %q", out)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port[1], time.Second); err == nil {
		c.Close()
		t.Error("the loopback listener still accepts connections after Login")
	}
}

// TestLoginRefuses: a redirect or token that is not what was asked for
// ends the sign-in with an error that says why, before any code is
// redeemed where the redirect is at fault.
func TestLoginRefuses(t *testing.T) {
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		setup func(f *fakeServer)
		want  string
		// redeemed: the code reached the token endpoint.
		redeemed bool
	}{
		{"access denied", func(f *fakeServer) {
			f.redirect = func(q url.Values) {
				q.Del("code")
				q.Set("error", "access_denied")
				q.Set("error_description", "The user said no.")
			}
		}, "access_denied: The user said no.", false},
		{"another issuer", func(f *fakeServer) {
			f.redirect = func(q url.Values) { q.Set("iss", "https://evil.example") }
		}, `issuer "https://evil.example"`, false},
		{"another issuer's error", func(f *fakeServer) {
			f.redirect = func(q url.Values) {
				q.Del("code")
				q.Set("error", "server_error")
				q.Set("iss", "https://evil.example")
			}
		}, "RFC 9207", false},
		{"no iss though advertised", func(f *fakeServer) {
			f.redirect = func(q url.Values) { q.Del("iss") }
		}, "no iss", false},
		{"neither code nor error", func(f *fakeServer) {
			f.redirect = func(q url.Values) { q.Del("code") }
		}, "neither code nor error", false},
		{"code refused", func(f *fakeServer) {
			f.redirect = func(q url.Values) { q.Set("code", "made-up") }
		}, "invalid_grant", true},
		{"another nonce", func(f *fakeServer) {
			f.claims = func(c map[string]any) { c["nonce"] = "replayed" }
		}, "nonce", true},
		{"no nonce", func(f *fakeServer) {
			f.claims = func(c map[string]any) { delete(c, "nonce") }
		}, "nonce", true},
		{"signed by another key", func(f *fakeServer) { f.signer = otherKey }, "signature", true},
		{"for another client", func(f *fakeServer) {
			f.claims = func(c map[string]any) { c["aud"] = "other" }
		}, "audience", true},
		{"another access token", func(f *fakeServer) {
			f.claims = func(c map[string]any) { c["at_hash"] = halfHash("something else") }
		}, "access token hash", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeServer(t)
			c.setup(f)
			b := newBrowser(t)
			var prompt bytes.Buffer
			res, err := Login(context.Background(), testConfig(f, b, &prompt))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Login: %+v, %v; want an error saying %q", res, err, c.want)
			}
			if c.name == "access denied" {
				var ae *ErrAuthorization
				if !errors.As(err, &ae) || ae.Code != "access_denied" {
					t.Errorf("%v is not an ErrAuthorization of access_denied", err)
				}
			}
			if got := f.tokenRequests() > 0; got != c.redeemed {
				t.Errorf("token endpoint asked: %v, want %v", got, c.redeemed)
			}
			if !c.redeemed {
				if status, header, body := b.landed(); status != http.StatusBadRequest || header.Get("Cache-Control") != "no-store" ||
					!strings.Contains(body, "Sign-in failed") {
					t.Errorf("the browser's page: %d %q", status, body)
				}
			}
		})
	}
}

// TestLoginIssNotAdvertised: a server that does not say it sends iss
// (RFC 9207 §2.4) may leave it out.
func TestLoginIssNotAdvertised(t *testing.T) {
	f := newFakeServer(t)
	f.advertiseIss = false
	f.redirect = func(q url.Values) { q.Del("iss") }
	if _, err := Login(context.Background(), testConfig(f, newBrowser(t), io.Discard)); err != nil {
		t.Fatal(err)
	}
}

// TestLoginWrongState: a redirect with another state (a stale tab, or a
// page that found the port) is refused and changes nothing: the sign-in
// goes on and completes with the right one, whose code alone is redeemed.
func TestLoginWrongState(t *testing.T) {
	f := newFakeServer(t)
	b := newBrowser(t)
	var strayStatus int
	var strayBody string
	b.before = func(authURL string) {
		u, _ := url.Parse(authURL)
		stray := u.Query().Get("redirect_uri") + "?" + url.Values{"code": {"stolen"}, "state": {"forged"}, "iss": {f.issuer()}}.Encode()
		res, err := http.Get(stray)
		if err != nil {
			t.Errorf("stray redirect: %v", err)
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		strayStatus, strayBody = res.StatusCode, string(body)
	}
	var prompt bytes.Buffer
	if _, err := Login(context.Background(), testConfig(f, b, &prompt)); err != nil {
		t.Fatalf("Login after a stray redirect: %v", err)
	}
	b.landed()
	if strayStatus != http.StatusBadRequest || !strings.Contains(strayBody, "does not belong") {
		t.Errorf("the stray redirect got %d %q", strayStatus, strayBody)
	}
	if !strings.Contains(prompt.String(), "Refused a redirect") {
		t.Errorf("the prompt does not say a redirect was refused: %q", prompt.String())
	}
	if n := f.tokenRequests(); n != 1 {
		t.Errorf("%d token requests, want the right code's only", n)
	}
}

// TestLoginTimeout: without a redirect the sign-in ends at the timeout,
// with ErrTimeout, and a redirect that only has a wrong state does not
// end it sooner.
func TestLoginTimeout(t *testing.T) {
	f := newFakeServer(t)
	f.redirect = func(q url.Values) { q.Set("state", "wrong") }
	cfg := testConfig(f, newBrowser(t), io.Discard)
	cfg.Timeout = 500 * time.Millisecond
	start := time.Now()
	_, err := Login(context.Background(), cfg)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "500ms") {
		t.Fatalf("Login: %v, want ErrTimeout naming the timeout", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 5*time.Second {
		t.Errorf("Login returned after %v", d)
	}
	if f.tokenRequests() != 0 {
		t.Error("a code was redeemed")
	}

	// No browser at all: the same.
	cfg.Open = nil
	if _, err := Login(context.Background(), cfg); !errors.Is(err, ErrTimeout) {
		t.Errorf("no browser: %v", err)
	}
	// Cancelled (Ctrl-C) is not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Login(ctx, cfg); err == nil || errors.Is(err, ErrTimeout) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestLoginDiscovery: an issuer whose discovery document names another
// issuer is refused before anything else happens.
func TestLoginDiscovery(t *testing.T) {
	f := newFakeServer(t)
	cfg := testConfig(f, newBrowser(t), io.Discard)
	cfg.Issuer = strings.Replace(f.issuer(), "127.0.0.1", "localhost", 1)
	opened := false
	cfg.Open = func(string) error { opened = true; return nil }
	if _, err := Login(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "discovery") {
		t.Errorf("Login: %v", err)
	}
	if opened {
		t.Error("the browser was opened")
	}
}
