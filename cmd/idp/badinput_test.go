package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"idp/database/databasetest"
	"idp/fake"
)

func TestTokenEndpointBadInput(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := startServer(t, dbURL)
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		post := func(contentType, body string, basic ...string) response {
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/oauth2/token", strings.NewReader(body))
			req.Header.Set("Content-Type", contentType)
			if len(basic) == 2 {
				req.SetBasicAuth(basic[0], basic[1])
			}
			return s.do(req)
		}
		form := "application/x-www-form-urlencoded"
		pw := "grant_type=password&client_id=mobile&username=ada&password=" + url.QueryEscape(testPassword)
		tests := []struct {
			name, contentType, body string
			basic                   []string
			status                  int
			code                    string
		}{
			{"empty body", form, "", nil, 400, "invalid_request"},
			{"malformed form", form, "grant_type=password&%zz", nil, 400, "invalid_request"},
			{"JSON body", "application/json", `{"grant_type":"password"}`, nil, 400, "invalid_request"},
			{"no grant_type", form, "client_id=mobile", nil, 400, "invalid_request"},
			{"unknown grant_type", form, "grant_type=urn:example:magic&client_id=mobile", nil, 400, "unsupported_grant_type"},
			{"unknown authorization code", form, "grant_type=authorization_code&client_id=mobile&code=x&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback", nil, 400, "invalid_grant"},
			{"no client", form, "grant_type=password&username=ada&password=x", nil, 401, "invalid_client"},
			{"unknown client", form, "grant_type=password&client_id=nobody&username=ada&password=x", nil, 401, "invalid_client"},
			{"secret for a public client", form, pw + "&client_secret=guess", nil, 401, "invalid_client"},
			{"client assertion", form, pw + "&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=x.y.z", nil, 401, "invalid_client"},
			{"no username", form, "grant_type=password&client_id=mobile&password=x", nil, 400, "invalid_request"},
			{"no password", form, "grant_type=password&client_id=mobile&username=ada", nil, 400, "invalid_request"},
			{"wrong password", form, "grant_type=password&client_id=mobile&username=ada&password=wrong-password-1", nil, 400, "invalid_grant"},
			{"unknown user", form, "grant_type=password&client_id=mobile&username=nobody&password=wrong-password-1", nil, 400, "invalid_grant"},
			{"unregistered scope", form, pw + "&scope=users:stats", nil, 400, "invalid_scope"},
			{"unknown scope", form, pw + "&scope=admin", nil, 400, "invalid_scope"},
			{"no refresh_token", form, "grant_type=refresh_token&client_id=mobile", nil, 400, "invalid_grant"},
			{"made-up refresh_token", form, "grant_type=refresh_token&client_id=mobile&refresh_token=abc.def", nil, 400, "invalid_grant"},
			{"repeated grant_type", form, "grant_type=password&grant_type=refresh_token&client_id=mobile", nil, 400, "invalid_request"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := post(tc.contentType, tc.body, tc.basic...)
				if r.status != tc.status {
					t.Errorf("status %d, want %d: %s", r.status, tc.status, r.body)
				}
				m := r.json(t)
				if tc.code != "" && m["error"] != tc.code {
					t.Errorf("error %v, want %s", m["error"], tc.code)
				}
				if r.header.Get("Cache-Control") != "no-store" {
					t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
				}
			})
		}

		// Unknown login and wrong password give the very same answer.
		a := post(form, "grant_type=password&client_id=mobile&username=ada&password=wrong-password-1")
		b := post(form, "grant_type=password&client_id=mobile&username=nobody@example.com&password=wrong-password-1")
		if a.status != b.status || string(a.body) != string(b.body) {
			t.Errorf("wrong password %d %s vs unknown login %d %s", a.status, a.body, b.status, b.body)
		}

		// Bodies are bounded: a declared or streamed oversize body is 413.
		big := pw + "&pad=" + strings.Repeat("a", 70<<10)
		if r := post(form, big); r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized body: %d", r.status)
		}
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/oauth2/token", struct{ *strings.Reader }{strings.NewReader(big)})
		req.Header.Set("Content-Type", form)
		req.ContentLength = -1 // chunked
		if r := s.do(req); r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized chunked body: %d", r.status)
		}
		if r := s.get("/oauth2/token", ""); r.status != http.StatusMethodNotAllowed {
			t.Errorf("GET /oauth2/token: %d", r.status)
		}

		// Confidential client with a wrong secret over Basic.
		secret := s.createClient(newConfidential("backend"))
		if r := post(form, "grant_type=client_credentials", "backend", secret+"x"); r.status != 401 || r.json(t)["error"] != "invalid_client" ||
			!strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("wrong secret: %d %s", r.status, r.body)
		}
		if r := post(form, "grant_type=client_credentials&client_secret="+secret, "backend", secret); r.status != 400 {
			t.Errorf("two authentication methods: %d %s", r.status, r.body)
		}
	})
}

func TestBearerTokenForgeries(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		s := startServer(t, dbURL)
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		tok, err := mobileConfig(s, allUserScopes...).PasswordCredentialsToken(ctx, "ada", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		real := accessTokenHeader(t, tok.AccessToken)
		parts := strings.Split(tok.AccessToken, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])

		foreign, _ := rsa.GenerateKey(rand.Reader, 2048)
		sign := func(alg jose.SignatureAlgorithm, key any, extra map[jose.HeaderKey]any) string {
			opts := &jose.SignerOptions{ExtraHeaders: extra}
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts.WithType("at+jwt"))
			if err != nil {
				t.Fatal(err)
			}
			jws, _ := signer.Sign(payload)
			out, _ := jws.CompactSerialize()
			return out
		}
		b64 := base64.RawURLEncoding.EncodeToString
		jwks := s.get("/.well-known/jwks.json", "")
		var set jose.JSONWebKeySet
		json.Unmarshal(jwks.body, &set)
		pubDER, _ := json.Marshal(set.Keys[0])

		forgeries := map[string]string{
			"foreign key with a known kid":    sign(jose.RS256, jose.JSONWebKey{Key: foreign, KeyID: real.KeyID}, nil),
			"alg none":                        b64([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+real.KeyID+`"}`)) + "." + parts[1] + ".",
			"HS256 keyed with the public key": sign(jose.HS256, pubDER, map[jose.HeaderKey]any{"kid": real.KeyID}),
			"payload swapped":                 parts[0] + "." + b64([]byte(strings.Replace(string(payload), `"sub":"`, `"sub":"9`, 1))) + "." + parts[2],
			"garbage":                         "not.a.token",
			"empty segments":                  "..",
			"ID token as access token":        tok.Extra("id_token").(string),
		}
		for name, forged := range forgeries {
			t.Run(name, func(t *testing.T) {
				r := s.get("/userinfo", forged)
				if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`) {
					t.Errorf("userinfo: %d %q %s", r.status, r.header.Get("WWW-Authenticate"), r.body)
				}
			})
		}
		if r := s.get("/userinfo", ""); r.status != 401 {
			t.Errorf("no token: %d", r.status)
		}
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/userinfo", nil)
		req.Header.Set("Authorization", "Basic "+tok.AccessToken)
		if r := s.do(req); r.status != 401 {
			t.Errorf("wrong scheme: %d", r.status)
		}
		if r := s.get("/userinfo", tok.AccessToken); r.status != 200 {
			t.Errorf("the real token: %d", r.status)
		}
	})
}

func TestLoginFloodGets503(t *testing.T) {
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db", func(c *config) {
		c.HashConcurrency = 1
		c.HashQueueTimeout = time.Millisecond
	})
	s.mobile()
	s.createUser("ada", "ada@example.com", testPassword)
	var wg sync.WaitGroup
	results := make(chan response, 24)
	for range cap(results) {
		wg.Go(func() {
			results <- s.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {"mobile"},
				"username": {"ada"}, "password": {testPassword}}, "", "")
		})
	}
	wg.Wait()
	close(results)
	var ok, busy int
	for r := range results {
		switch r.status {
		case 200:
			ok++
		case 503:
			busy++
			if r.json(t)["error"] != "temporarily_unavailable" || r.header.Get("Retry-After") == "" {
				t.Errorf("503 answer: %s %v", r.body, r.header)
			}
		default:
			t.Errorf("status %d: %s", r.status, r.body)
		}
	}
	if ok == 0 || busy == 0 {
		t.Errorf("%d succeeded and %d were told to retry; want some of each", ok, busy)
	}
}

// TestRepeatedParameters: RFC 6749 §3.1 and §3.2 say request parameters
// must not be included more than once. The token, revocation and
// introspection endpoints refuse any parameter given twice, in the body,
// the query, or one in each, with invalid_request.
func TestRepeatedParameters(t *testing.T) {
	s := startServer(t, databasetest.SQLiteURL(t))
	s.mobile()
	s.createUser("ada", "ada@example.com", testPassword)
	secret := s.createClient(newConfidential("backend"))
	tok, err := mobileConfig(s, allUserScopes...).PasswordCredentialsToken(context.Background(), "ada", testPassword)
	if err != nil {
		t.Fatal(err)
	}
	pw := "client_id=mobile&username=ada&password=" + url.QueryEscape(testPassword)
	rt := "client_id=mobile&refresh_token=" + tok.RefreshToken
	tests := []struct {
		name, path, query, body string
		basic                   bool
	}{
		{"grant_type twice", "/oauth2/token", "", "grant_type=password&grant_type=password&" + pw, false},
		{"grant_type twice, two values", "/oauth2/token", "", "grant_type=password&grant_type=refresh_token&" + pw, false},
		{"username twice", "/oauth2/token", "", "grant_type=password&" + pw + "&username=eve", false},
		{"password twice", "/oauth2/token", "", "grant_type=password&" + pw + "&password=guess", false},
		{"scope twice", "/oauth2/token", "", "grant_type=password&" + pw + "&scope=openid&scope=offline_access", false},
		{"client_id twice", "/oauth2/token", "", "grant_type=password&client_id=other&" + pw, false},
		{"refresh_token twice", "/oauth2/token", "", "grant_type=refresh_token&" + rt + "&refresh_token=" + tok.RefreshToken, false},
		{"refresh_token in query and body", "/oauth2/token", "refresh_token=x", "grant_type=refresh_token&" + rt, false},
		{"grant_type twice in the query", "/oauth2/token", "grant_type=password&grant_type=password", pw, false},
		{"client_secret twice", "/oauth2/token", "", "grant_type=client_credentials&client_id=backend&client_secret=" + secret + "&client_secret=" + secret, false},
		{"revocation token twice", "/oauth2/revoke", "", "client_id=mobile&token=" + tok.RefreshToken + "&token=" + tok.AccessToken, false},
		{"revocation client_id twice", "/oauth2/revoke", "", "client_id=mobile&client_id=mobile&token=" + tok.RefreshToken, false},
		{"introspection token twice", "/oauth2/introspect", "", "token=" + tok.AccessToken + "&token=x", true},
		{"introspection hint in query and body", "/oauth2/introspect", "token_type_hint=access_token", "token=" + tok.AccessToken + "&token_type_hint=refresh_token", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := s.URL + tc.path
			if tc.query != "" {
				u += "?" + tc.query
			}
			req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.basic {
				req.SetBasicAuth("backend", secret)
			}
			r := s.do(req)
			if r.status != 400 || r.json(t)["error"] != "invalid_request" || r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("%d %s %q", r.status, r.body, r.header.Get("Cache-Control"))
			}
		})
	}
	// Nothing above used the tokens up or revoked them.
	if _, err := s.refresh(tok.RefreshToken, ""); err != nil {
		t.Errorf("the refresh token after the refused requests: %v", err)
	}
}

// TestRefreshTokenSpellings: base64 leaves the low two bits of a 32-byte
// value's last character unused, so each part of a refresh token has three
// other spellings that a lenient decoder reads as the same bytes (and line
// breaks are skipped). Only the spelling issued is a token: the others are
// refused at the token endpoint, inactive at introspection, and revoke
// nothing.
func TestRefreshTokenSpellings(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := startServer(t, dbURL)
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		secret := s.createClient(newConfidential("backend"))
		tok, err := mobileConfig(s, allUserScopes...).PasswordCredentialsToken(context.Background(), "ada", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		introspect := func(token string) any {
			r := s.postForm("/oauth2/introspect", url.Values{"token": {token}}, "backend", secret)
			return r.json(t)["active"]
		}
		for _, variant := range fake.Respellings(t, tok.RefreshToken) {
			if _, err := s.refresh(variant, ""); err == nil || err.Error() != "invalid_grant" {
				t.Errorf("refresh with %q: %v, want invalid_grant", variant, err)
			}
			if active := introspect(variant); active != false {
				t.Errorf("introspection of %q: active %v", variant, active)
			}
			if r := s.postForm("/oauth2/revoke", url.Values{"token": {variant}, "client_id": {"mobile"}}, "", ""); r.status != 200 {
				t.Errorf("revocation of %q: %d %s", variant, r.status, r.body)
			}
		}
		if active := introspect(tok.RefreshToken); active != true {
			t.Fatalf("a respelling revoked the token: active %v", active)
		}
		if _, err := s.refresh(tok.RefreshToken, ""); err != nil {
			t.Errorf("the token as issued: %v", err)
		}
	})
}

// TestAccessTokenRecords: an access token signed with the server's own key
// and on record is still refused at idp's endpoints and inactive at
// introspection when its nbf is in the future, its iat is in the future by
// more than a minute, or its record is another subject's. Each token here
// has a record (inserted as the token endpoint would), so that nothing else
// refuses it: the control within the clock skew is accepted.
func TestAccessTokenRecords(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		s := startServer(t, dbURL)
		s.mobile()
		ada := s.createUser("ada", "ada@example.com", testPassword)
		bob := s.createUser("bob", "bob@example.com", testPassword)
		s.app.db.Ent.User.Update().SetPasswordChangedAt(time.Now().Add(-time.Hour)).ExecX(ctx)
		secret := s.createClient(newConfidential("backend"))
		adaSub, bobSub := strconv.FormatInt(ada.ID, 10), strconv.FormatInt(bob.ID, 10)

		// recorded signs claims with the server's key and records the
		// token for recordSubject.
		recorded := func(claims map[string]any, recordSubject string) string {
			t.Helper()
			now := time.Now()
			c := map[string]any{"iss": s.URL, "sub": adaSub, "aud": []string{s.URL}, "exp": now.Add(10 * time.Minute).Unix(),
				"iat": now.Unix(), "jti": "forged-" + strconv.FormatInt(now.UnixNano(), 36), "client_id": "mobile",
				"scope": "openid profile email"}
			maps.Copy(c, claims)
			payload, _ := json.Marshal(c)
			token, err := s.app.keys.Sign(payload, "at+jwt")
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(token[strings.LastIndexByte(token, '.')+1:]))
			request, _ := json.Marshal(map[string]any{"id": c["jti"], "requested_at": now, "client_id": "mobile",
				"granted_scope": []string{"openid", "profile", "email"}, "session": map[string]any{"sub": recordSubject}})
			s.app.db.Ent.AccessToken.Create().SetID(hex.EncodeToString(sum[:])).SetRequestID(c["jti"].(string)).
				SetClientID("mobile").SetSubject(recordSubject).SetRequestedAt(now).SetExpiresAt(now.Add(10 * time.Minute)).
				SetRequest(request).ExecX(ctx)
			return token
		}
		introspect := func(token string) any {
			return s.postForm("/oauth2/introspect", url.Values{"token": {token}}, "backend", secret).json(t)["active"]
		}
		now := time.Now().Unix()
		tests := []struct {
			name     string
			claims   map[string]any
			record   string
			accepted bool
		}{
			{"control", nil, adaSub, true},
			{"iat within the skew", map[string]any{"iat": now + 30}, adaSub, true},
			{"nbf in the past", map[string]any{"nbf": now - 30}, adaSub, true},
			{"nbf in the future", map[string]any{"nbf": now + 30}, adaSub, false},
			{"iat in the future", map[string]any{"iat": now + 120}, adaSub, false},
			{"record of another user", map[string]any{"sub": bobSub}, adaSub, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				token := recorded(tc.claims, tc.record)
				want := map[bool]int{true: 200, false: 401}[tc.accepted]
				if r := s.get("/userinfo", token); r.status != want {
					t.Errorf("userinfo: %d %s, want %d", r.status, r.body, want)
				}
				if active := introspect(token); active != tc.accepted {
					t.Errorf("introspection: active %v, want %v", active, tc.accepted)
				}
			})
		}
	})
}

// TestUnroutedRequests: a path or method no route takes is answered in the
// format of the surface it is under (problem+json under /v1, CONTRACT §3),
// and a 405 names the methods the path takes.
func TestUnroutedRequests(t *testing.T) {
	s := startServer(t, databasetest.SQLiteURL(t))
	tests := []struct {
		method, path string
		status       int
		problem      bool
		allow        []string
	}{
		{http.MethodGet, "/v1/nowhere", 404, true, nil},
		{http.MethodGet, "/v1", 404, true, nil},
		{http.MethodDelete, "/v1/sessions/", 404, true, nil},
		{http.MethodGet, "/v1/users", 405, true, []string{"POST"}},
		{http.MethodPut, "/v1/profile", 405, true, []string{"GET", "PATCH", "DELETE"}},
		{http.MethodGet, "/nowhere", 404, false, nil},
		{http.MethodGet, "/oauth2/token", 405, false, []string{"POST"}},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, s.URL+tc.path, nil)
			r := s.do(req)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d", r.status, tc.status)
			}
			if got := r.header.Values("Allow"); strings.Join(got, ",") != strings.Join(tc.allow, ",") {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
			if !tc.problem {
				return
			}
			var p struct {
				Type   string `json:"type"`
				Status int    `json:"status"`
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q, want application/problem+json", ct)
			}
			if err := json.Unmarshal([]byte(r.body), &p); err != nil || p.Status != tc.status || p.Type == "" {
				t.Errorf("problem %+v (%v) from %s", p, err, r.body)
			}
		})
	}
}
