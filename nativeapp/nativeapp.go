// Package nativeapp signs in the way a native app does (RFC 8252): it
// sends the user to the authorization server in the system browser with
// an authorization code request (PKCE, state and nonce), receives the
// redirect on a loopback listener at a random port, redeems the code and
// verifies the ID token. `idp login` runs it; it shows a client developer
// the flow end to end.
package nativeapp

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Config is a sign-in.
type Config struct {
	// Issuer is the authorization server's issuer URL; its discovery
	// document names the endpoints.
	Issuer   string
	ClientID string
	Scopes   []string
	// Timeout bounds the whole sign-in, the user's part included.
	Timeout time.Duration
	// Open sends the system browser to the authorization URL (RFC 8252
	// §4: the app never sees the password); nil opens none. Its failure
	// is not the sign-in's: the URL is printed too.
	Open func(url string) error
	// Prompt receives what the user reads: the URL to open and what
	// happens. Never a token.
	Prompt io.Writer
	// HTTPClient talks to the authorization server; nil is
	// http.DefaultClient.
	HTTPClient *http.Client
}

// TokenResponse is the token endpoint's answer (RFC 6749 §5.1, OIDC Core
// §3.1.3.3).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

// Result is a completed sign-in.
type Result struct {
	Token TokenResponse
	// IDToken is the verified ID token (signature, issuer, audience,
	// expiry and nonce); nil when openid was not granted.
	IDToken *oidc.IDToken
}

// ErrAuthorization is an error response of the authorization endpoint
// (RFC 6749 §4.1.2.1), such as access_denied.
type ErrAuthorization struct {
	Code, Description string
}

func (e *ErrAuthorization) Error() string {
	if e.Description == "" {
		return "the authorization server answered " + e.Code
	}
	return fmt.Sprintf("the authorization server answered %s: %s", e.Code, e.Description)
}

// ErrTimeout is a sign-in that took longer than Config.Timeout.
var ErrTimeout = errors.New("timed out")

// callbackPath is the path of the loopback redirect URI.
const callbackPath = "/callback"

// Login signs in: it discovers the issuer's endpoints, listens on
// 127.0.0.1 at a port the system picks, sends the browser to the
// authorization endpoint, waits for the redirect, checks it (state, and
// iss per RFC 9207), redeems the code with the PKCE verifier and verifies
// the ID token with its nonce.
func Login(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, cfg.Timeout, ErrTimeout)
		defer cancel()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Prompt == nil {
		cfg.Prompt = io.Discard
	}
	// The loopback handler writes to it too.
	cfg.Prompt = &lockedWriter{w: cfg.Prompt}
	res, err := login(ctx, cfg)
	if err != nil && errors.Is(context.Cause(ctx), ErrTimeout) {
		return nil, fmt.Errorf("%w: the sign-in did not finish within %v", ErrTimeout, cfg.Timeout)
	}
	return res, err
}

func login(ctx context.Context, cfg Config) (*Result, error) {
	ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	ctx = context.WithValue(ctx, oauth2.HTTPClient, cfg.HTTPClient)
	provider, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var meta struct {
		// RFC 9207: a server that says it sends iss must send it.
		IssParameter bool     `json:"authorization_response_iss_parameter_supported"`
		PKCEMethods  []string `json:"code_challenge_methods_supported"`
	}
	if err := provider.Claims(&meta); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if len(meta.PKCEMethods) > 0 && !slices.Contains(meta.PKCEMethods, "S256") {
		return nil, fmt.Errorf("discovery: the server does not support PKCE with S256 (code_challenge_methods_supported %v)", meta.PKCEMethods)
	}

	// RFC 8252 §7.3 and §8.3: the loopback IP literal, not "localhost",
	// which may resolve elsewhere; any port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loopback listener: %w", err)
	}
	redirectURI := "http://127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) + callbackPath

	endpoint := provider.Endpoint()
	// A public client identifies itself in the body; Basic with an empty
	// secret would be an authentication attempt.
	endpoint.AuthStyle = oauth2.AuthStyleInParams
	oc := &oauth2.Config{ClientID: cfg.ClientID, Endpoint: endpoint, RedirectURL: redirectURI, Scopes: cfg.Scopes}
	state, nonce, verifier := randomString(), randomString(), oauth2.GenerateVerifier()
	authURL := oc.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))

	cb := &callback{issuer: cfg.Issuer, requireIss: meta.IssParameter, state: state, prompt: cfg.Prompt, done: make(chan callbackResult, 1)}
	srv := &http.Server{Handler: cb, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	go srv.Serve(ln)
	defer func() {
		// Let the browser have its page, then stop.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()

	fmt.Fprintf(cfg.Prompt, "Open this URL in a browser to sign in:\n\n  %s\n\nWaiting for the redirect to %s ...\n", authURL, redirectURI)
	if cfg.Open != nil {
		cfg.Open(authURL) // the URL is printed for when this fails
	}

	var code string
	select {
	case r := <-cb.done:
		if r.err != nil {
			return nil, r.err
		}
		code = r.code
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the browser's redirect: %w", ctx.Err())
	}

	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("redeeming the code: %w", err)
	}
	res := &Result{Token: TokenResponse{
		AccessToken:  tok.AccessToken,
		TokenType:    tok.TokenType,
		ExpiresIn:    tok.ExpiresIn,
		RefreshToken: tok.RefreshToken,
	}}
	res.Token.Scope, _ = tok.Extra("scope").(string)
	res.Token.IDToken, _ = tok.Extra("id_token").(string)
	if res.Token.IDToken == "" {
		if slices.Contains(cfg.Scopes, oidc.ScopeOpenID) && (res.Token.Scope == "" || slices.Contains(strings.Fields(res.Token.Scope), oidc.ScopeOpenID)) {
			return nil, errors.New("the token response has no id_token, though openid was asked for")
		}
		return res, nil
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}).Verify(ctx, res.Token.IDToken)
	if err != nil {
		return nil, fmt.Errorf("the ID token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, errors.New("the ID token: its nonce is not the one sent (a replayed or substituted token)")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(res.Token.AccessToken); err != nil {
			return nil, fmt.Errorf("the ID token: %w", err)
		}
	}
	res.IDToken = idt
	return res, nil
}

// randomString is 256 random bits, for state and nonce.
func randomString() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// callback receives the authorization response on the loopback listener.
// The first response with the right state ends the wait, whatever it
// says; one with another state is refused and changes nothing, so that a
// page that finds the port cannot end (or steer) the sign-in.
type callback struct {
	issuer     string
	requireIss bool
	state      string
	prompt     io.Writer

	mu   sync.Mutex
	over bool
	done chan callbackResult
}

type callbackResult struct {
	code string
	err  error
}

func (c *callback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != callbackPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.over:
		page(w, http.StatusGone, "Already done", "This sign-in is over. You can close this window.")
	case subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(c.state)) != 1:
		fmt.Fprintln(c.prompt, "Refused a redirect whose state is not the one sent (a forged or stale redirect); still waiting.")
		page(w, http.StatusBadRequest, "Sign-in refused", "This redirect does not belong to the sign-in in progress. You can close this window.")
	default:
		c.over = true
		code, err := c.check(q)
		c.done <- callbackResult{code: code, err: err}
		if err != nil {
			page(w, http.StatusBadRequest, "Sign-in failed", err.Error()+". You can close this window; the terminal says more.")
			return
		}
		page(w, http.StatusOK, "Signed in", "You can close this window and return to the terminal.")
	}
}

// check reads an authorization response whose state is right: the issuer
// first (RFC 9207, against mix-up), then error or code.
func (c *callback) check(q url.Values) (string, error) {
	switch iss := q.Get("iss"); {
	case iss == "" && c.requireIss:
		return "", errors.New("the redirect has no iss, though the server says it sends one (RFC 9207): refused")
	case iss != "" && iss != c.issuer:
		return "", fmt.Errorf("the redirect comes from issuer %q, not %q (RFC 9207): refused", iss, c.issuer)
	}
	if e := q.Get("error"); e != "" {
		return "", &ErrAuthorization{Code: e, Description: q.Get("error_description")}
	}
	code := q.Get("code")
	if code == "" {
		return "", errors.New("the redirect has neither code nor error")
	}
	return code, nil
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Text}}</p></body></html>
`))

// page answers the browser. Nothing of it is cached, and it runs nothing.
func page(w http.ResponseWriter, status int, title, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	pageTemplate.Execute(w, struct{ Title, Text string }{title, text})
}

// OpenBrowser asks the desktop to open url in the default browser,
// without waiting for it. The browser outlives the sign-in, so nothing
// stops it when the sign-in ends.
func OpenBrowser(target string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", target)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", target)
	default:
		cmd = exec.Command("xdg-open", target)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait() // reap it; its exit status says nothing we act on
	return nil
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
