package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"

	"github.com/ory/fosite"

	"idp/database/databasetest"
)

// TestGrantRegistry: discovery, client validation and the token endpoint's
// dispatch agree, because they read one list: every registered grant is
// advertised, may be registered and reaches its handler; a grant not in the
// list is refused by all three. The same for scopes (advertised and
// registrable). The exported lists are copies.
func TestGrantRegistry(t *testing.T) {
	e := newRefreshEnv(t, databasetest.Open(t, databasetest.SQLiteURL(t)), 0)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/openid-configuration", nil))
	var doc struct {
		Grants []string `json:"grant_types_supported"`
		Scopes []string `json:"scopes_supported"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != 200 {
		t.Fatalf("discovery: %d %q: %v", rec.Code, rec.Body, err)
	}
	if !slices.Equal(doc.Grants, SupportedGrantTypes()) || !slices.Equal(doc.Scopes, SupportedScopes()) {
		t.Errorf("discovery advertises grants %v and scopes %v, the registry has %v and %v",
			doc.Grants, doc.Scopes, SupportedGrantTypes(), SupportedScopes())
	}
	if len(doc.Grants) != len(grantTypes) || len(doc.Scopes) == 0 {
		t.Fatalf("discovery lists %d grants of %d, %d scopes", len(doc.Grants), len(grantTypes), len(doc.Scopes))
	}

	dispatch := func(grant string) map[string]any {
		t.Helper()
		_, m := e.token(url.Values{"grant_type": {grant}, "client_id": {"mobile"}})
		return m
	}
	for _, g := range grantTypes {
		if err := (NewClient{ID: "c", Public: !g.confidential, GrantTypes: []string{g.name}, RedirectURIs: []string{"http://127.0.0.1/cb"}}).Validate(); err != nil {
			t.Errorf("%s: Validate refuses a registered grant: %v", g.name, err)
		}
		if g.confidential {
			if err := (NewClient{ID: "c", Public: true, GrantTypes: []string{g.name}}).Validate(); err == nil {
				t.Errorf("%s: a public client may register a grant that needs a secret", g.name)
			}
		}
		if m := dispatch(g.name); m["error"] == "unsupported_grant_type" || m["error"] == nil {
			t.Errorf("%s: the token endpoint does not dispatch a registered grant: %v", g.name, m)
		}
	}
	for _, g := range []string{"implicit", "token", "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer", "PASSWORD"} {
		if slices.Contains(doc.Grants, g) {
			t.Errorf("%s: advertised though not registered", g)
		}
		if err := (NewClient{ID: "c", GrantTypes: []string{g}}).Validate(); err == nil {
			t.Errorf("%s: Validate accepts an unregistered grant", g)
		}
		if m := dispatch(g); m["error"] != "unsupported_grant_type" {
			t.Errorf("%s: the token endpoint answers %v, want unsupported_grant_type", g, m)
		}
	}
	for _, s := range SupportedScopes() {
		if err := (NewClient{ID: "c", Public: true, GrantTypes: []string{GrantPassword}, Scopes: []string{s}}).Validate(); err != nil {
			t.Errorf("scope %s: Validate refuses a registered scope: %v", s, err)
		}
	}
	if err := (NewClient{ID: "c", Public: true, GrantTypes: []string{GrantPassword}, Scopes: []string{"admin"}}).Validate(); err == nil || slices.Contains(doc.Scopes, "admin") {
		t.Errorf("an unregistered scope is accepted (%v) or advertised", err)
	}

	// A caller that edits what it was given changes nothing.
	g, s := SupportedGrantTypes(), SupportedScopes()
	g[0], s[0] = "implicit", "admin"
	if SupportedGrantTypes()[0] == "implicit" || SupportedScopes()[0] == "admin" {
		t.Error("the exported lists share the registry's memory")
	}
	if err := (NewClient{ID: "c", GrantTypes: []string{"implicit"}}).Validate(); err == nil {
		t.Error("editing the exported list widened client validation")
	}
}

// grantHandler is a token endpoint handler of one grant that counts the
// times it is asked to populate an answer.
type grantHandler struct {
	grant     string
	populated *int
}

func (h grantHandler) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(h.grant)
}
func (h grantHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }
func (h grantHandler) HandleTokenEndpointRequest(context.Context, fosite.AccessRequester) error {
	return nil
}
func (h grantHandler) PopulateTokenEndpointResponse(context.Context, fosite.AccessRequester, fosite.AccessResponder) error {
	*h.populated++
	return errors.New("populated")
}

// TestOwnGrantOnly: a wrapped handler is asked to populate the answers of
// its own grant only; another grant is turned down with fosite's
// ErrUnknownRequest, which fosite's loop skips. Every handler of the token
// endpoint is wrapped.
func TestOwnGrantOnly(t *testing.T) {
	ctx := context.Background()
	var n int
	h := ownGrantOnly{grantHandler{grant: GrantPassword, populated: &n}}
	other := fosite.NewAccessRequest(nil)
	other.GrantTypes = fosite.Arguments{GrantRefreshToken}
	if err := h.PopulateTokenEndpointResponse(ctx, other, fosite.NewAccessResponse()); !errors.Is(err, fosite.ErrUnknownRequest) || n != 0 {
		t.Errorf("another grant: %v after %d calls, want ErrUnknownRequest without asking the handler", err, n)
	}
	own := fosite.NewAccessRequest(nil)
	own.GrantTypes = fosite.Arguments{GrantPassword}
	if err := h.PopulateTokenEndpointResponse(ctx, own, fosite.NewAccessResponse()); err == nil || err.Error() != "populated" || n != 1 {
		t.Errorf("its grant: %v after %d calls, want the handler's answer", err, n)
	}

	e := newRefreshEnv(t, databasetest.Open(t, databasetest.SQLiteURL(t)), 0)
	f, ok := e.srv.provider.(*fosite.Fosite)
	if !ok {
		t.Fatalf("provider is a %T", e.srv.provider)
	}
	handlers := f.Config.GetTokenEndpointHandlers(ctx)
	if len(handlers) < len(grantTypes)+1 {
		t.Fatalf("%d token endpoint handlers for %d grants and the ID token", len(handlers), len(grantTypes))
	}
	for i, h := range handlers {
		if _, ok := h.(ownGrantOnly); !ok {
			t.Errorf("token endpoint handler %d is a %T, not wrapped", i, h)
		}
	}
	// The grants still work through the wrappers.
	if m := e.login(); m["refresh_token"] == nil || m["id_token"] == nil {
		t.Fatalf("login: %v", m)
	}
}
