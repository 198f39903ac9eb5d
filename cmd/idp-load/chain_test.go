package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestJSONMember: a token read straight from the body is the member's value
// wherever encoding/json puts it; anything else (absent, escaped, spaced,
// or the name inside another value) is left to the decoder.
func TestJSONMember(t *testing.T) {
	for _, c := range []struct {
		body, want string
		ok         bool
	}{
		{`{"access_token":"a.b.c","refresh_token":"r1","token_type":"bearer"}`, "r1", true},
		{`{"refresh_token":"r2"}`, "r2", true},
		{`{"refresh_token":""}`, "", true},
		{`{"access_token":"a"}`, "", false},
		{`{"refresh_token":"r\"3"}`, "", false},
		{`{"refresh_token": "r4"}`, "", false},
		{`{"x":"y\",\"refresh_token\":\"fake","refresh_token":"r5"}`, "r5", true},
		{`{"error":"invalid_grant","error_description":"x\"refresh_token\":\"y"}`, "", false},
		{`{"refresh_token":"unterminated`, "", false},
	} {
		got, ok := jsonMember([]byte(c.body), "refresh_token")
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %q, %v; want %q, %v", c.body, got, ok, c.want, c.ok)
		}
		// Whenever it answers, it agrees with the decoder.
		var m map[string]any
		if ok && json.Unmarshal([]byte(c.body), &m) == nil && m["refresh_token"] != got {
			t.Errorf("%s: %q, the decoder %q", c.body, got, m["refresh_token"])
		}
	}
}

// TestRotated: a refresh counts as done only with 200, an access token and
// a refresh token that is not the one presented, both on the first answer
// (decoded whole, which counts its signatures) and on the later ones (read
// straight from the body), and whatever the spacing of the JSON.
func TestRotated(t *testing.T) {
	p := newChainPool(nil, nil)
	const jwt = "eyJh.eyJz.c2ln"
	good := `{"access_token":"` + jwt + `","id_token":"` + jwt + `","refresh_token":"new","token_type":"bearer"}`
	if next, ok := p.rotated(http.StatusOK, []byte(good), "old"); !ok || next != "new" {
		t.Fatalf("first answer: %q, %v", next, ok)
	}
	if n := p.signatures.Load(); n != 2 {
		t.Errorf("signatures from the first answer: %d, want 2", n)
	}
	for _, c := range []struct {
		name   string
		status int
		body   string
		next   string
		ok     bool
	}{
		{"rotated", 200, good, "new", true},
		{"spaced", 200, `{"access_token": "a", "refresh_token": "new"}`, "new", true},
		{"not rotated", 200, good, "", false},
		{"no access token", 200, `{"refresh_token":"new"}`, "", false},
		{"empty refresh token", 200, `{"access_token":"a","refresh_token":""}`, "", false},
		{"no refresh token", 200, `{"access_token":"a"}`, "", false},
		{"not JSON", 200, `refresh_token`, "", false},
		{"refused", 400, `{"error":"invalid_grant"}`, "", false},
	} {
		presented := "old"
		if c.name == "not rotated" {
			presented = "new"
		}
		next, ok := p.rotated(c.status, []byte(c.body), presented)
		if next != c.next || ok != c.ok {
			t.Errorf("%s: %q, %v; want %q, %v", c.name, next, ok, c.next, c.ok)
		}
	}
}

// BenchmarkRotated is the load generator's check of one refresh answer of
// idp's size (two RS256-2048 JWTs), read straight from the body against
// decoded whole.
func BenchmarkRotated(b *testing.B) {
	jwt := func(n int) string {
		return strings.Repeat("e", n) + "." + strings.Repeat("p", 500) + "." + strings.Repeat("s", 342)
	}
	body, _ := json.Marshal(map[string]any{"access_token": jwt(60), "id_token": jwt(70), "refresh_token": strings.Repeat("r", 90),
		"expires_in": 899, "scope": "openid profile email offline_access", "token_type": "bearer"})
	b.Run("read", func(b *testing.B) {
		p := newChainPool(nil, nil)
		p.signatures.Store(2)
		for b.Loop() {
			if _, ok := p.rotated(http.StatusOK, body, "old"); !ok {
				b.Fatal("not rotated")
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			var tok tokenResponse
			if json.Unmarshal(body, &tok) != nil || tok.RefreshToken == "" {
				b.Fatal("not rotated")
			}
		}
	})
}
