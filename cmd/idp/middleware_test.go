package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestRequestIDs(t *testing.T) {
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db")
	s.mobile()
	send := func(id string) string {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/oauth2/token", strings.NewReader("grant_type=password&client_id=mobile&username=x&password=y"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		return s.do(req).header.Get("X-Request-Id")
	}
	if got := send("4bf92f3577b34da6a3ce929d0e0e4736"); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("a well-formed id came back as %q", got)
	}
	generated := send("")
	forged := send(`x"} {"level":"ERROR", "msg": "forged line"}`)
	if len(generated) < 16 || len(forged) < 16 || strings.ContainsAny(forged, "\"{}\n") || generated == forged {
		t.Errorf("generated ids %q and %q", generated, forged)
	}
	// Every line about a request carries its id, access log included.
	seen := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("a log line is not JSON: %q", sc.Text())
		}
		if id, _ := l["request_id"].(string); id != "" && l["msg"] == "request" {
			seen[id]++
		}
	}
	for _, id := range []string{"4bf92f3577b34da6a3ce929d0e0e4736", generated, forged} {
		if seen[id] != 1 {
			t.Errorf("request %s has %d access-log lines, want 1", id, seen[id])
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db")
	s.mobile()
	tok := s.signupJSON(signupBody("ada", "ada@example.com")).json(t)["tokens"].(map[string]any)["access_token"].(string)
	for _, c := range []struct {
		path, bearer string
		noStore      bool
	}{
		{"/v1/profile", tok, true},
		{"/userinfo", tok, true},
		{"/.well-known/jwks.json", "", false},
		{"/password-reset", "", false},
		{"/healthz", "", false},
		{"/nowhere", "", false},
	} {
		r := s.get(c.path, c.bearer)
		if r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", c.path)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", c.path, csp)
		}
		if c.noStore && r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", c.path, r.header.Get("Cache-Control"))
		}
	}
	tokenAnswer := s.login("ada", testPassword)
	if tokenAnswer.header.Get("Cache-Control") != "no-store" {
		t.Errorf("token answer Cache-Control %q", tokenAnswer.header.Get("Cache-Control"))
	}
}

// TestStrictTransportSecurity: with an https issuer every response, errors
// and unknown paths included, tells browsers to stay on https, without
// includeSubDomains; with an http issuer none does.
func TestStrictTransportSecurity(t *testing.T) {
	for _, issuer := range []string{"https://id.example.com", ""} {
		s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db", func(c *config) {
			if issuer != "" {
				c.Issuer = issuer
			}
		})
		want := ""
		if issuer != "" {
			want = "max-age=63072000"
		}
		for _, r := range []response{
			s.get("/.well-known/openid-configuration", ""),
			s.get("/healthz", ""),
			s.get("/nowhere", ""),
			s.get("/v1/profile", ""),
			s.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {"nobody"}}, "", ""),
		} {
			if got := r.header.Get("Strict-Transport-Security"); got != want {
				t.Errorf("issuer %q: %d answer has Strict-Transport-Security %q, want %q", s.app.cfg.Issuer, r.status, got, want)
			}
		}
	}
}
