package token

import (
	"context"
	"testing"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"
)

// TestTokenID: only a jti with RefreshRowPrefix says that the access
// token's record is on a refresh token's row; a random id never does.
func TestTokenID(t *testing.T) {
	if !OnRefreshRow(RefreshRowPrefix + RandomID()) {
		t.Error("a refresh grant's jti does not read as one")
	}
	for range 1000 {
		if OnRefreshRow(RandomID()) {
			t.Fatal("a random id reads as a refresh grant's")
		}
	}
}

// TestRefreshSuccessor: a successor is a refresh token as fosite's HMAC
// strategy makes them (its Validate accepts it, under the first secret),
// the same for every rotation of one token, different for different ones,
// and in the canonical spelling.
func TestRefreshSuccessor(t *testing.T) {
	secret := []byte("refresh-secret-0123456789abcdef-0123456789")
	fc := &fosite.Config{GlobalSecret: secret, TokenEntropy: 32}
	s, err := NewStrategy(nil, "http://idp.test", secret, oauth2.NewHMACSHAStrategyUnPrefixed(&hmac.HMACStrategy{Config: fc}, fc), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, aSig := s.Successor("sig-a")
	a2, _ := s.Successor("sig-a")
	b, _ := s.Successor("sig-b")
	if a != a2 || a == b {
		t.Errorf("successors %q, %q, %q", a, a2, b)
	}
	ctx := context.Background()
	if err := (&hmac.HMACStrategy{Config: &fosite.Config{GlobalSecret: secret}}).Validate(ctx, a); err != nil {
		t.Errorf("fosite refuses a successor: %v", err)
	}
	if sig, ok := s.ParseRefreshToken(ctx, a); !ok || sig != aSig {
		t.Errorf("ParseRefreshToken(successor) = %q, %v; want %q", sig, ok, aSig)
	}
	other := &fosite.Config{GlobalSecret: []byte("another-secret-0123456789abcdef-0123456789")}
	if err := (&hmac.HMACStrategy{Config: other}).Validate(ctx, a); err == nil {
		t.Error("a successor validates under another secret")
	}
}
