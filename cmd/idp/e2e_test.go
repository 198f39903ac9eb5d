package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"idp/fake"
	"idp/oauth"
)

const testPassword = "correct horse battery staple"

// mobileConfig is how a mobile app talks to the token endpoint.
func mobileConfig(s *testServer, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: "mobile",
		Endpoint: oauth2.Endpoint{TokenURL: s.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
		Scopes:   scopes,
	}
}

var allUserScopes = []string{"openid", "profile", "email", "offline_access"}

// accessTokenHeader parses the JOSE header of a token without verifying it.
func accessTokenHeader(t *testing.T, token string) jose.Header {
	t.Helper()
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	return jws.Signatures[0].Header
}

// oauthError is the RFC 6749 error code of a failed x/oauth2 call.
func oauthError(t *testing.T, err error) string {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("want an OAuth error, got %v", err)
	}
	if re.Response.StatusCode >= 500 && re.Response.StatusCode != 503 {
		t.Errorf("status %d", re.Response.StatusCode)
	}
	return re.ErrorCode
}

func TestTokenFlow(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		s := startServer(t, dbURL)
		s.mobile()
		u := s.createUser("Ada", "Ada@Example.com", testPassword)
		sub := strconv.FormatInt(u.ID, 10)

		// Discovery, as an OIDC client library reads it.
		provider, err := oidc.NewProvider(ctx, s.URL)
		if err != nil {
			t.Fatalf("discovery: %v", err)
		}
		var meta map[string]any
		if err := provider.Claims(&meta); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"token_endpoint", "userinfo_endpoint", "jwks_uri", "revocation_endpoint", "introspection_endpoint"} {
			if v, _ := meta[k].(string); !strings.HasPrefix(v, s.URL+"/") {
				t.Errorf("%s = %v", k, meta[k])
			}
		}
		rfc8414 := s.get("/.well-known/oauth-authorization-server", "")
		if rfc8414.status != 200 || rfc8414.json(t)["issuer"] != s.URL {
			t.Errorf("RFC 8414 metadata: %d %s", rfc8414.status, rfc8414.body)
		}
		// Prepared documents answer a poll with their ETag by 304.
		for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/jwks.json"} {
			first := s.get(path, "")
			req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
			req.Header.Set("If-None-Match", first.header.Get("ETag"))
			if r := s.do(req); first.header.Get("ETag") == "" || r.status != http.StatusNotModified || len(r.body) != 0 {
				t.Errorf("%s with If-None-Match: %d (ETag %q)", path, r.status, first.header.Get("ETag"))
			}
		}

		conf := mobileConfig(s, allUserScopes...)
		idVerifier := provider.Verifier(&oidc.Config{ClientID: "mobile"})
		keySet := oidc.NewRemoteKeySet(ctx, s.URL+"/.well-known/jwks.json")

		// Password grant by username and by email, in other letter cases.
		var tok *oauth2.Token
		for _, login := range []string{"ada", "ADA", "ada@example.COM"} {
			tok, err = conf.PasswordCredentialsToken(ctx, login, testPassword)
			if err != nil {
				t.Fatalf("password grant as %q: %v", login, err)
			}
		}
		if tok.TokenType != "Bearer" || tok.RefreshToken == "" || tok.Expiry.IsZero() {
			t.Errorf("token response: %+v", tok)
		}
		if got := tok.Extra("scope"); got != strings.Join(allUserScopes, " ") {
			t.Errorf("scope = %v", got)
		}

		// The ID token verifies against the published keys.
		rawID, _ := tok.Extra("id_token").(string)
		idTok, err := idVerifier.Verify(ctx, rawID)
		if err != nil {
			t.Fatalf("ID token: %v", err)
		}
		var idClaims map[string]any
		idTok.Claims(&idClaims)
		if idTok.Subject != sub || idClaims["preferred_username"] != "ada" || idClaims["email"] != "ada@example.com" ||
			idClaims["auth_time"] == nil || idClaims["at_hash"] == nil || idClaims["given_name"] != "Ada" {
			t.Errorf("ID token claims: %v", idClaims)
		}
		if err := idTok.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Errorf("at_hash: %v", err)
		}

		// The access token is an RFC 9068 JWT that a third party verifies
		// offline with the JWKS.
		h := accessTokenHeader(t, tok.AccessToken)
		if h.ExtraHeaders["typ"] != "at+jwt" || h.KeyID == "" || h.Algorithm != "RS256" {
			t.Errorf("access token header: %+v", h)
		}
		payload, err := keySet.VerifySignature(ctx, tok.AccessToken)
		if err != nil {
			t.Fatalf("access token signature: %v", err)
		}
		var at map[string]any
		json.Unmarshal(payload, &at)
		aud, _ := at["aud"].([]any)
		if at["iss"] != s.URL || at["sub"] != sub || at["client_id"] != "mobile" || at["jti"] == nil ||
			at["scope"] != strings.Join(allUserScopes, " ") || !slices.Contains(aud, any(s.URL)) || at["iat"] == nil || at["exp"] == nil {
			t.Errorf("access token claims: %v", at)
		}

		// userinfo: claims by scope.
		ui := s.get("/userinfo", tok.AccessToken)
		if ui.status != 200 {
			t.Fatalf("userinfo: %d %s", ui.status, ui.body)
		}
		claims := ui.json(t)
		if claims["sub"] != sub || claims["preferred_username"] != "ada" || claims["email"] != "ada@example.com" ||
			claims["name"] != "Ada Lovelace" || claims["gender"] != "female" || claims["email_verified"] != false {
			t.Errorf("userinfo: %v", claims)
		}
		if ui.header.Get("Cache-Control") != "no-store" {
			t.Errorf("userinfo Cache-Control = %q", ui.header.Get("Cache-Control"))
		}
		onlyOpenID, err := mobileConfig(s, "openid").PasswordCredentialsToken(ctx, "ada", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		if onlyOpenID.RefreshToken != "" {
			t.Error("refresh token without offline_access")
		}
		if c := s.get("/userinfo", onlyOpenID.AccessToken).json(t); c["email"] != nil || c["preferred_username"] != nil || c["sub"] != sub {
			t.Errorf("userinfo with only openid: %v", c)
		}
		noOpenID, err := mobileConfig(s, "profile").PasswordCredentialsToken(ctx, "ada", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		if r := s.get("/userinfo", noOpenID.AccessToken); r.status != 403 || !strings.Contains(r.header.Get("WWW-Authenticate"), "insufficient_scope") {
			t.Errorf("userinfo without openid: %d %q", r.status, r.header.Get("WWW-Authenticate"))
		}
		if noOpenID.Extra("id_token") != nil {
			t.Error("ID token without openid")
		}

		// Refresh rotates the refresh token and issues a new ID token,
		// which carries the user's profile as it is now.
		if r := s.send(http.MethodPatch, "/v1/profile", tok.AccessToken, "application/json", strings.NewReader(`{"first_name":"Augusta"}`)); r.status != 200 {
			t.Fatalf("PATCH profile: %d %s", r.status, r.body)
		}
		refreshed, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if refreshed.RefreshToken == "" || refreshed.RefreshToken == tok.RefreshToken || refreshed.AccessToken == tok.AccessToken {
			t.Errorf("refresh did not rotate: %+v", refreshed)
		}
		refreshedID, err := idVerifier.Verify(ctx, refreshed.Extra("id_token").(string))
		if err != nil {
			t.Fatalf("refreshed ID token: %v", err)
		}
		clear(idClaims)
		refreshedID.Claims(&idClaims)
		if refreshedID.Subject != sub || idClaims["given_name"] != "Augusta" || idClaims["family_name"] != "Lovelace" ||
			idClaims["preferred_username"] != "ada" || idClaims["email"] != "ada@example.com" {
			t.Errorf("refreshed ID token claims: %v", idClaims)
		}
		if err := refreshedID.VerifyAccessToken(refreshed.AccessToken); err != nil {
			t.Errorf("refreshed at_hash: %v", err)
		}
		if s.get("/userinfo", refreshed.AccessToken).status != 200 {
			t.Error("refreshed access token refused")
		}

		// A narrower scope on refresh narrows the access token only.
		narrow, err := s.refresh(refreshed.RefreshToken, "openid email")
		if err != nil {
			t.Fatal(err)
		}
		if narrow["scope"] != "openid email" {
			t.Errorf("narrowed scope = %v", narrow["scope"])
		}
		if c := s.get("/userinfo", narrow["access_token"].(string)).json(t); c["preferred_username"] != nil || c["email"] == nil {
			t.Errorf("narrowed userinfo: %v", c)
		}
		wide, err := s.refresh(narrow["refresh_token"].(string), "")
		if err != nil {
			t.Fatal(err)
		}
		if wide["scope"] != strings.Join(allUserScopes, " ") {
			t.Errorf("refresh after a narrowed one: scope = %v, want the full grant", wide["scope"])
		}
		if _, err := s.refresh(wide["refresh_token"].(string), "openid users:stats"); err == nil || !strings.Contains(err.Error(), "invalid_scope") {
			t.Errorf("widening refresh: %v", err)
		}

		// Replaying a used refresh token fails and kills the newest one of
		// its chain, and the chain's access tokens at this service.
		_, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if code := oauthError(t, err); code != "invalid_grant" {
			t.Errorf("reuse: %s", code)
		}
		latest, _ := s.refresh(wide["refresh_token"].(string), "")
		if latest != nil {
			t.Error("the newest refresh token of a replayed chain still works")
		}
		if r := s.get("/userinfo", wide["access_token"].(string)); r.status != 401 {
			t.Errorf("access token of a revoked chain: %d", r.status)
		}
		// Another login of the same user is untouched.
		if r := s.get("/userinfo", onlyOpenID.AccessToken); r.status != 200 {
			t.Errorf("other login after reuse detection: %d", r.status)
		}
	})
}

// refresh runs a refresh grant for the mobile client with an optional scope
// and returns the JSON answer, or an error holding the error code.
func (s *testServer) refresh(refreshToken, scope string) (map[string]any, error) {
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {"mobile"}, "refresh_token": {refreshToken}}
	if scope != "" {
		form.Set("scope", scope)
	}
	r := s.postForm("/oauth2/token", form, "", "")
	m := r.json(s.t)
	if r.status != 200 {
		return nil, errors.New(m["error"].(string))
	}
	return m, nil
}

func TestRevocationAndIntrospection(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		s := startServer(t, dbURL)
		s.mobile()
		u := s.createUser("grace", "grace@example.com", testPassword)
		rsSecret := s.createClient(oauth.NewClient{ID: "resource-server", GrantTypes: []string{"client_credentials"}, Scopes: []string{"users:stats"}})
		conf := mobileConfig(s, allUserScopes...)

		login1, err := conf.PasswordCredentialsToken(ctx, "grace", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		login2, err := conf.PasswordCredentialsToken(ctx, "grace", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		introspect := func(token, hint string) map[string]any {
			form := url.Values{"token": {token}}
			if hint != "" {
				form.Set("token_type_hint", hint)
			}
			r := s.postForm("/oauth2/introspect", form, "resource-server", rsSecret)
			if r.status != 200 {
				t.Fatalf("introspect: %d %s", r.status, r.body)
			}
			return r.json(t)
		}

		// RFC 7662: an active access token and refresh token.
		ai := introspect(login1.AccessToken, "")
		if ai["active"] != true || ai["sub"] != strconv.FormatInt(u.ID, 10) || ai["client_id"] != "mobile" ||
			ai["username"] != "grace" || ai["token_type"] != "Bearer" || ai["iss"] != s.URL ||
			ai["scope"] != strings.Join(allUserScopes, " ") || ai["exp"] == nil || ai["iat"] == nil {
			t.Errorf("access token introspection: %v", ai)
		}
		if ri := introspect(login1.RefreshToken, "refresh_token"); ri["active"] != true || ri["client_id"] != "mobile" {
			t.Errorf("refresh token introspection: %v", ri)
		}
		if gi := introspect("not-a-token", ""); len(gi) != 1 || gi["active"] != false {
			t.Errorf("garbage introspection: %v", gi)
		}
		// Only confidential clients may introspect.
		for _, c := range []struct{ user, pass string }{{"", ""}, {"resource-server", "wrong"}, {"mobile", ""}} {
			form := url.Values{"token": {login1.AccessToken}}
			if c.user == "mobile" {
				form.Set("client_id", "mobile")
			}
			if r := s.postForm("/oauth2/introspect", form, c.user, c.pass); r.status != 401 || r.json(t)["error"] != "invalid_client" {
				t.Errorf("introspection as %q: %d %s", c.user, r.status, r.body)
			}
		}
		// A user's access token is not an introspection credential.
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/oauth2/introspect", strings.NewReader(url.Values{"token": {login2.AccessToken}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+login1.AccessToken)
		if r := s.do(req); r.status != 401 {
			t.Errorf("introspection with a bearer token: %d", r.status)
		}

		// RFC 7009: revoking a refresh token ends its chain, access tokens
		// included, and nothing else.
		revoke := func(token string) response {
			return s.postForm("/oauth2/revoke", url.Values{"token": {token}, "client_id": {"mobile"}}, "", "")
		}
		if r := revoke(login1.RefreshToken); r.status != 200 {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
		if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: login1.RefreshToken}).Token(); oauthError(t, err) != "invalid_grant" {
			t.Error("revoked refresh token still refreshes")
		}
		if introspect(login1.AccessToken, "")["active"] != false || introspect(login1.RefreshToken, "")["active"] != false {
			t.Error("revoked chain still introspects active")
		}
		if r := s.get("/userinfo", login1.AccessToken); r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("userinfo with a revoked chain: %d %q", r.status, r.header.Get("WWW-Authenticate"))
		}
		if introspect(login2.AccessToken, "")["active"] != true || s.get("/userinfo", login2.AccessToken).status != 200 {
			t.Error("revoking one login ended another")
		}
		// An access token from a refresh (recorded on its refresh token's
		// row) introspects like any other.
		refreshed, err := s.refresh(login2.RefreshToken, "")
		if err != nil {
			t.Fatal(err)
		}
		refreshedAccess := refreshed["access_token"].(string)
		if ai := introspect(refreshedAccess, ""); ai["active"] != true || ai["sub"] != strconv.FormatInt(u.ID, 10) || ai["client_id"] != "mobile" {
			t.Errorf("refreshed access token introspection: %v", ai)
		}
		// Revoking an access token ends its chain's access tokens, those
		// from refreshes included; an unknown token is answered 200 (RFC
		// 7009 §2.2).
		if r := revoke(refreshedAccess); r.status != 200 || s.get("/userinfo", refreshedAccess).status != 401 ||
			s.get("/userinfo", login2.AccessToken).status != 401 || introspect(refreshedAccess, "")["active"] != false {
			t.Errorf("access token revocation: %d", r.status)
		}
		if r := revoke("unknown-token"); r.status != 200 {
			t.Errorf("unknown token revocation: %d", r.status)
		}
		// token is REQUIRED (RFC 7009 §2.1): without it nothing is
		// revoked, and a 200 would say otherwise.
		for name, form := range map[string]url.Values{"no token": {"client_id": {"mobile"}}, "empty token": {"client_id": {"mobile"}, "token": {""}}} {
			if r := s.postForm("/oauth2/revoke", form, "", ""); r.status != 400 || r.json(t)["error"] != "invalid_request" {
				t.Errorf("revocation with %s: %d %s", name, r.status, r.body)
			}
		}
		// Another client cannot revoke the mobile client's tokens.
		login3, _ := conf.PasswordCredentialsToken(ctx, "grace", testPassword)
		if r := s.postForm("/oauth2/revoke", url.Values{"token": {login3.RefreshToken}}, "resource-server", rsSecret); r.status != 400 || r.json(t)["error"] != "unauthorized_client" {
			t.Errorf("revoking another client's token: %d %s", r.status, r.body)
		}
		if r := s.postForm("/oauth2/revoke", url.Values{"token": {login3.RefreshToken}}, "resource-server", "wrong"); r.status != 401 {
			t.Errorf("revoking with a wrong secret: %d %s", r.status, r.body)
		}
		if introspect(login3.RefreshToken, "")["active"] != true {
			t.Error("a client revoked another client's token")
		}
	})
}

func TestClientCredentials(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		s := startServer(t, dbURL)
		s.mobile()
		secret := s.createClient(oauth.NewClient{ID: "stats-job", GrantTypes: []string{"client_credentials"}, Scopes: []string{"users:stats"}, Audience: []string{"https://reports.example"}})
		cc := clientcredentials.Config{ClientID: "stats-job", ClientSecret: secret, TokenURL: s.URL + "/oauth2/token", Scopes: []string{"users:stats"},
			EndpointParams: url.Values{"audience": {"https://reports.example"}}}
		for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
			cc.AuthStyle = style
			tok, err := cc.Token(ctx)
			if err != nil {
				t.Fatalf("client_credentials (style %d): %v", style, err)
			}
			if tok.RefreshToken != "" || tok.Extra("id_token") != nil {
				t.Error("client_credentials issued a refresh or ID token")
			}
			payload, err := oidc.NewRemoteKeySet(ctx, s.URL+"/.well-known/jwks.json").VerifySignature(ctx, tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			var c map[string]any
			json.Unmarshal(payload, &c)
			if c["sub"] != "stats-job" || c["client_id"] != "stats-job" || c["scope"] != "users:stats" ||
				!slices.Equal(c["aud"].([]any), []any{s.URL, "https://reports.example"}) {
				t.Errorf("client_credentials claims: %v", c)
			}
		}
		// A wrong secret, an unregistered scope or audience, a public client.
		bad := cc
		bad.ClientSecret = "wrong"
		if _, err := bad.Token(ctx); oauthError(t, err) != "invalid_client" {
			t.Error("wrong secret accepted")
		}
		bad = cc
		bad.Scopes = []string{"openid"}
		if _, err := bad.Token(ctx); oauthError(t, err) != "invalid_scope" {
			t.Error("unregistered scope granted")
		}
		bad = cc
		bad.EndpointParams = url.Values{"audience": {"https://reports.example.evil"}}
		if _, err := bad.Token(ctx); err == nil {
			t.Error("unregistered audience granted")
		}
		r := s.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"mobile"}}, "", "")
		if r.status != 400 || r.json(t)["error"] != "unauthorized_client" {
			t.Errorf("public client_credentials: %d %s", r.status, r.body)
		}
		// The password grant is refused for a client not registered for it.
		r = s.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"x"}, "password": {"y"}}, "stats-job", secret)
		if r.status != 400 || r.json(t)["error"] != "unauthorized_client" {
			t.Errorf("password grant for a client_credentials client: %d %s", r.status, r.body)
		}
	})
}

func TestAccessTokenExpiresAndPasswordChange(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		clock := fake.NewRunningClock()
		s := startServer(t, dbURL, func(c *config) { c.clock = clock.Now })
		s.mobile()
		u := s.createUser("linus", "linus@example.com", testPassword)
		tok, err := mobileConfig(s, allUserScopes...).PasswordCredentialsToken(ctx, "linus", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		if s.get("/userinfo", tok.AccessToken).status != 200 {
			t.Fatal("fresh token refused")
		}
		// A password change refuses tokens issued before it.
		if err := s.app.db.Ent.User.UpdateOneID(u.ID).SetPasswordChangedAt(time.Now().Add(2 * time.Second)).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if r := s.get("/userinfo", tok.AccessToken); r.status != 401 {
			t.Errorf("token older than the password: %d", r.status)
		}
		s.app.db.Ent.User.UpdateOneID(u.ID).SetPasswordChangedAt(time.Now().Add(-time.Hour)).ExecX(ctx)
		// Past its lifetime the token is refused and introspects inactive.
		clock.Advance(16 * time.Minute)
		if r := s.get("/userinfo", tok.AccessToken); r.status != 401 {
			t.Errorf("expired token: %d", r.status)
		}
		// A minute past its grace, the sweep deletes the expired access
		// token's row and keeps the live refresh token's.
		clock.Advance(2 * time.Minute)
		if n, err := s.app.oauth.DeleteExpiredTokens(ctx); err != nil || n != 1 {
			t.Errorf("DeleteExpiredTokens = %d, %v; want the one access token", n, err)
		}
		if _, err := mobileConfig(s, allUserScopes...).TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
			t.Errorf("the refresh token after the sweep: %v", err)
		}
	})
}

// TestConcurrentRefresh presents one refresh token many times at once, as
// an app's parallel requests do: within the reuse leeway every exchange
// succeeds with the same new refresh token, every access token works, and
// the chain goes on from that one token.
func TestConcurrentRefresh(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		s := startServer(t, dbURL)
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		tok, err := mobileConfig(s, allUserScopes...).PasswordCredentialsToken(ctx, "ada", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		const n = 8
		results := make(chan response, n)
		for range n {
			go func() {
				results <- s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"mobile"}, "refresh_token": {tok.RefreshToken}}, "", "")
			}()
		}
		next := map[string]bool{}
		for range n {
			r := <-results
			if r.status != 200 {
				t.Errorf("status %d: %s", r.status, r.body)
				continue
			}
			m := r.json(t)
			next[m["refresh_token"].(string)] = true
			if u := s.get("/userinfo", m["access_token"].(string)); u.status != 200 {
				t.Errorf("a concurrent refresh's access token: %d", u.status)
			}
		}
		if len(next) != 1 {
			t.Fatalf("%d different refresh tokens from one, want 1", len(next))
		}
		for rt := range next {
			if _, err := s.refresh(rt, ""); err != nil {
				t.Errorf("the chain's refresh token after the concurrent refreshes: %v", err)
			}
		}
	})
}

// TestRefreshRetryAfterLostAnswer: an app that never received the answer
// to its refresh presents the used token again. Within the reuse leeway
// (5 s by default) it gets the same new refresh token and a fresh access
// token, and both answers' access tokens work; past it, the replay revokes
// the chain. On a clock that moves only when told.
func TestRefreshRetryAfterLostAnswer(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		clock := stoppedClock()
		s := startServer(t, dbURL, func(c *config) { c.clock = clock.Now })
		s.mobile()
		u := s.createUser("ada", "ada@example.com", testPassword)
		s.app.db.Ent.User.UpdateOneID(u.ID).SetPasswordChangedAt(clock.Now().Add(-time.Hour)).ExecX(ctx)
		login := func() string {
			t.Helper()
			tok, err := mobileConfig(s, allUserScopes...).PasswordCredentialsToken(ctx, "ada", testPassword)
			if err != nil {
				t.Fatal(err)
			}
			return tok.RefreshToken
		}
		mustRefresh := func(rt string) map[string]any {
			t.Helper()
			m, err := s.refresh(rt, "")
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			return m
		}

		// Just inside the leeway.
		p := login()
		first := mustRefresh(p)
		clock.Advance(5 * time.Second)
		retry, err := s.refresh(p, "")
		if err != nil {
			t.Fatalf("the retry within the leeway: %v", err)
		}
		if retry["refresh_token"] != first["refresh_token"] || retry["access_token"] == first["access_token"] || retry["id_token"] == nil {
			t.Errorf("the retry's answer %v, the first %v", retry, first)
		}
		for name, m := range map[string]map[string]any{"first": first, "retry": retry} {
			if r := s.get("/userinfo", m["access_token"].(string)); r.status != 200 {
				t.Errorf("the %s answer's access token at /userinfo: %d %s", name, r.status, r.body)
			}
		}
		mustRefresh(first["refresh_token"].(string))

		// Just outside.
		p = login()
		first = mustRefresh(p)
		clock.Advance(5*time.Second + time.Millisecond)
		if _, err := s.refresh(p, ""); err == nil || err.Error() != "invalid_grant" {
			t.Errorf("the replay past the leeway: %v, want invalid_grant", err)
		}
		if _, err := s.refresh(first["refresh_token"].(string), ""); err == nil || err.Error() != "invalid_grant" {
			t.Errorf("the chain's newest token after the replay: %v, want invalid_grant", err)
		}
		if r := s.get("/userinfo", first["access_token"].(string)); r.status != 401 {
			t.Errorf("the revoked chain's access token: %d", r.status)
		}
	})
}
