package main

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"idp/fake"
)

func jwksKids(t *testing.T, s *testServer) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(s.get("/.well-known/jwks.json", "").body, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	slices.Sort(kids)
	return kids
}

// TestRotationAcrossInstances runs two servers on one database, as two
// replicas behind a load balancer.
func TestRotationAcrossInstances(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		const issuer = "http://idp.test"
		keyClock := fake.NewRunningClock()
		replica := func(c *config) { c.Issuer, c.keyClock = issuer, keyClock.Now }
		a := startServer(t, dbURL, replica)
		b := startServer(t, dbURL, replica)
		a.mobile()
		a.createUser("ada", "ada@example.com", testPassword)

		if ka, kb := jwksKids(t, a), jwksKids(t, b); len(ka) != 1 || !slices.Equal(ka, kb) {
			t.Fatalf("the instances publish %v and %v", ka, kb)
		}
		old, err := mobileConfig(a, allUserScopes...).PasswordCredentialsToken(ctx, "ada", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		oldKid := accessTokenHeader(t, old.AccessToken).KeyID

		// A scheduled rotation publishes the next key first; it does not sign yet.
		next, err := a.app.keys.Rotate(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.app.keys.Load(ctx); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*testServer{a, b} {
			if kids := jwksKids(t, s); !slices.Contains(kids, next.ID) || !slices.Contains(kids, oldKid) {
				t.Errorf("JWKS %v lacks the next key %s or the active %s", kids, next.ID, oldKid)
			}
		}
		tok, _ := mobileConfig(b, allUserScopes...).PasswordCredentialsToken(ctx, "ada", testPassword)
		if kid := accessTokenHeader(t, tok.AccessToken).KeyID; kid != oldKid {
			t.Errorf("a published next key signed (%s)", kid)
		}

		// When the next key is due, both instances run their rotation step
		// at once: exactly one switches, both follow.
		keyClock.Advance(a.app.cfg.KeyPublishLead + time.Minute)
		changed := make(chan bool, 2)
		for _, s := range []*testServer{a, b} {
			go func() {
				ok, err := s.app.keys.Step(ctx)
				if err != nil {
					t.Error(err)
				}
				changed <- ok
			}()
		}
		if n := btoi(<-changed) + btoi(<-changed); n != 1 {
			t.Errorf("%d instances performed the rotation, want 1", n)
		}
		a.app.keys.Load(ctx)
		b.app.keys.Load(ctx)
		list, _ := a.app.keys.List(ctx)
		var active []string
		for _, k := range list {
			if k.State == "active" {
				active = append(active, k.ID)
			}
		}
		if len(active) != 1 || active[0] != next.ID {
			t.Fatalf("active keys after concurrent rotation: %v, want [%s]", active, next.ID)
		}
		for _, s := range []*testServer{a, b} {
			tok, err := mobileConfig(s, allUserScopes...).PasswordCredentialsToken(ctx, "ada", testPassword)
			if err != nil {
				t.Fatal(err)
			}
			if kid := accessTokenHeader(t, tok.AccessToken).KeyID; kid != next.ID {
				t.Errorf("signed with %s after the rotation, want %s", kid, next.ID)
			}
		}

		// Tokens signed before the rotation still verify: at either
		// instance, and offline against the JWKS.
		for _, s := range []*testServer{a, b} {
			if r := s.get("/userinfo", old.AccessToken); r.status != 200 {
				t.Errorf("old token at an instance: %d", r.status)
			}
			if _, err := oidc.NewRemoteKeySet(ctx, s.URL+"/.well-known/jwks.json").VerifySignature(ctx, old.AccessToken); err != nil {
				t.Errorf("old token against the JWKS: %v", err)
			}
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
