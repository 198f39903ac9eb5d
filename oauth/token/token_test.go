package token

import (
	"context"
	"testing"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"
)

// TestTokenID: only a jti made by ChainJTI names a chain, the one it was
// made for; a random id never does.
func TestTokenID(t *testing.T) {
	if got := ChainOf(ChainJTI("AAAAAAAAAAAAAAAAAAAAAA")); got != "AAAAAAAAAAAAAAAAAAAAAA" {
		t.Errorf("a refresh grant's jti names chain %q", got)
	}
	for range 1000 {
		if ChainOf(RandomID()) != "" {
			t.Fatal("a random id names a chain")
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
	ctx := context.Background()
	login, loginSig, err := s.GenerateRefreshToken(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := s.ParseRefresh(ctx, login)
	if !ok || p.String() != loginSig || p.Generation != 0 {
		t.Fatalf("ParseRefresh(login token) = %+v, %v; want %q", p, ok, loginSig)
	}
	if again, _, _ := s.GenerateRefreshToken(ctx, nil); again == login {
		t.Error("two logins got the same refresh token")
	}
	a, aRef := s.Successor(p)
	a2, _ := s.Successor(p)
	b, _ := s.Successor(RefreshRef{Chain: p.Chain, Generation: 0, Signature: "sig-b"})
	if a != a2 || a == b {
		t.Errorf("successors %q, %q, %q", a, a2, b)
	}
	if aRef.Chain != p.Chain || aRef.Generation != 1 {
		t.Errorf("successor's reference %+v, want chain %s, generation 1", aRef, p.Chain)
	}
	if err := (&hmac.HMACStrategy{Config: &fosite.Config{GlobalSecret: secret}}).Validate(ctx, a); err != nil {
		t.Errorf("fosite refuses a successor: %v", err)
	}
	if ref, ok := s.ParseRefresh(ctx, a); !ok || ref != aRef {
		t.Errorf("ParseRefresh(successor) = %+v, %v; want %+v", ref, ok, aRef)
	}
	if r, ok := ParseRefreshRef(aRef.String()); !ok || r != aRef {
		t.Errorf("ParseRefreshRef(%q) = %+v, %v", aRef.String(), r, ok)
	}
	other := &fosite.Config{GlobalSecret: []byte("another-secret-0123456789abcdef-0123456789")}
	if err := (&hmac.HMACStrategy{Config: other}).Validate(ctx, a); err == nil {
		t.Error("a successor validates under another secret")
	}
}
