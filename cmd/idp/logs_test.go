package main

import (
	"context"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// TestLogsHoldNoSecrets runs every flow at debug level, failures included,
// and looks for each secret the server saw in what it logged.
func TestLogsHoldNoSecrets(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db")
	s.mobile()
	s.createUser("ada", "ada@example.com", testPassword)
	secret := s.createClient(newConfidential("backend"))
	wrongPassword := "Wrong-Password-Never-Logged-42"

	var secrets []string
	conf := mobileConfig(s, allUserScopes...)
	tok, err := conf.PasswordCredentialsToken(ctx, "ada", testPassword)
	if err != nil {
		t.Fatal(err)
	}
	refreshed, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token() // reuse: fails
	conf.PasswordCredentialsToken(ctx, "ada", wrongPassword)
	conf.PasswordCredentialsToken(ctx, "nobody", wrongPassword)
	cc, err := (&clientcredentials.Config{ClientID: "backend", ClientSecret: secret, TokenURL: s.URL + "/oauth2/token"}).Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, "backend", secret+"x")
	s.postForm("/oauth2/introspect", url.Values{"token": {refreshed.AccessToken}}, "backend", secret)
	s.postForm("/oauth2/revoke", url.Values{"token": {refreshed.RefreshToken}, "client_id": {"mobile"}}, "", "")
	s.get("/userinfo", refreshed.AccessToken)
	s.get("/userinfo?access_token="+url.QueryEscape(tok.AccessToken), "")
	s.get("/userinfo", tok.AccessToken+"x")

	secrets = append(secrets, testPassword, wrongPassword, secret, testKEK, testRefreshSecret,
		tok.AccessToken, tok.RefreshToken, tok.Extra("id_token").(string),
		refreshed.AccessToken, refreshed.RefreshToken, cc.AccessToken)
	kek, _ := keyEncryptionKey(s.app.cfg)
	secrets = append(secrets, base64.StdEncoding.EncodeToString(kek), base64.RawURLEncoding.EncodeToString(kek))

	logs := s.logs.String()
	if !strings.Contains(logs, `"path":"/oauth2/token"`) {
		t.Fatalf("the access log is missing: %s", logs)
	}
	for _, secret := range secrets {
		// Each token's signature or random half alone is a secret too.
		pieces := []string{secret}
		if i := strings.LastIndexAny(secret, "."); i > 0 && len(secret)-i > 16 {
			pieces = append(pieces, secret[i+1:])
		}
		for _, p := range pieces {
			if strings.Contains(logs, p) {
				t.Errorf("the logs contain a secret (%.12s…)", p)
			}
		}
	}
	for _, marker := range []string{"PRIVATE KEY", `"d":`, `"p":`, `"q":`} {
		if strings.Contains(logs, marker) {
			t.Errorf("the logs contain key material (%s)", marker)
		}
	}
}
