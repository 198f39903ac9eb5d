package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
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
			{"authorization_code not offered yet", form, "grant_type=authorization_code&client_id=mobile&code=x", nil, 400, "unsupported_grant_type"},
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
			{"repeated grant_type", form, "grant_type=password&grant_type=refresh_token&client_id=mobile", nil, 400, ""},
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
