package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"

	"idp/database"
	"idp/database/databasetest"
	"idp/storage"
)

// TestClientURIRules: redirect and post-logout redirect URIs follow RFC
// 8252 and RFC 9700: absolute, no fragment, https anywhere, plain http on
// loopback only, private-use schemes (reverse domain names) for public
// clients only, and never a scheme that runs in the browser. The rules do
// not depend on the grant registry.
func TestClientURIRules(t *testing.T) {
	for _, c := range []struct {
		uri    string
		public bool
		// want is "" for accepted, else a word the error must hold.
		want string
	}{
		{"https://app.example.com/callback", false, ""},
		{"https://app.example.com/callback?x=1", true, ""},
		{"HTTPS://app.example.com/cb", false, ""},
		{"http://127.0.0.1/callback", true, ""},
		{"http://127.0.0.1:8123/callback", false, ""},
		{"http://[::1]/callback", true, ""},
		{"http://[::1]:9000/cb", false, ""},
		{"http://localhost:3000/callback", false, ""},
		{"http://LocalHost/callback", true, ""},
		{"com.example.idp:/callback", true, ""},
		{"com.example.app://oauth/cb", true, ""},

		{"http://app.example.com/callback", false, "loopback"},
		{"http://app.example.com/callback", true, "loopback"},
		{"http://127.0.0.2/callback", true, "loopback"},
		{"http://localhost.example.com/cb", true, "loopback"},
		{"http://10.0.0.1/cb", true, "loopback"},
		{"http://user:pw@127.0.0.1/cb", true, "password"},
		{"https://user@app.example.com/cb", false, "password"},
		{"https:/callback", false, "host"},
		{"https:app.example.com", false, "host"},
		{"https://app.example.com/cb#frag", false, "fragment"},
		{"https://app.example.com/cb#", false, "fragment"},
		{"com.example.app:/cb#x", true, "fragment"},
		{"/callback", true, "absolute"},
		{"app.example.com/callback", false, "absolute"},
		{"", true, "absolute"},
		{"https://app.example.com/a b", false, "spaces"},
		{"https://app.example.com/\ncb", false, "control"},
		{"com.example.app:/callback", false, "public clients"},
		{"myapp:/callback", true, "reverse domain name"},
		{"javascript:alert(1)", true, "never"},
		{"JavaScript:alert(1)", true, "never"},
		{"data:text/html,hi", true, "never"},
		{"file:///etc/passwd", true, "never"},
		{"vbscript:msgbox", true, "never"},
		{"blob:https://app.example.com/x", true, "never"},
		{"about:blank", true, "never"},
		{"javascript:alert(1)", false, "never"},
		{"https://app.example.com/" + strings.Repeat("a", maxClientURILen), false, "longer"},
	} {
		for _, field := range []string{"redirect URI", "post-logout redirect URI"} {
			nc := NewClient{ID: "c", Public: c.public, GrantTypes: []string{GrantPassword}}
			if field == "redirect URI" {
				nc.RedirectURIs = []string{c.uri}
			} else {
				nc.PostLogoutRedirectURIs = []string{c.uri}
			}
			err := nc.validateURIs()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("%s %q (public %v) refused: %v", field, c.uri, c.public, err)
			case c.want != "" && err == nil:
				t.Errorf("%s %q (public %v) accepted, want an error about %q", field, c.uri, c.public, c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Errorf("%s %q (public %v): %v, want it to say %q", field, c.uri, c.public, err, c.want)
			case err != nil && !strings.HasPrefix(err.Error(), field+" "):
				t.Errorf("%s %q: the error %q does not name the field", field, c.uri, err)
			}
		}
	}
	// The full Validate applies the same rules.
	if err := (NewClient{ID: "c", Public: true, GrantTypes: []string{GrantPassword}, RedirectURIs: []string{"javascript:x"}}).Validate(); err == nil {
		t.Error("Validate accepts a javascript: redirect URI")
	}
	if err := (NewClient{ID: "c", GrantTypes: []string{GrantPassword}, PostLogoutRedirectURIs: []string{"http://evil.example/"}}).Validate(); err == nil {
		t.Error("Validate accepts a plain http post-logout redirect URI")
	}
	many := make([]string, maxClientURIs+1)
	for i := range many {
		many[i] = "https://app.example.com/" + strings.Repeat("x", i)
	}
	if err := (NewClient{ID: "c", GrantTypes: []string{GrantPassword}, RedirectURIs: many}).validateURIs(); err == nil {
		t.Errorf("%d redirect URIs accepted", len(many))
	}
}

// TestAuthorizationCodeNeedsRedirectURI: a client of the authorization
// code grant has somewhere to receive its code.
func TestAuthorizationCodeNeedsRedirectURI(t *testing.T) {
	nc := NewClient{ID: "web", GrantTypes: []string{GrantAuthorizationCode, GrantRefreshToken}}
	if err := nc.validateURIs(); err == nil || !strings.Contains(err.Error(), "redirect URI") {
		t.Errorf("no redirect URI: %v", err)
	}
	nc.PostLogoutRedirectURIs = []string{"https://app.example.com/"}
	if err := nc.validateURIs(); err == nil {
		t.Error("a post-logout redirect URI stands in for a redirect URI")
	}
	nc.RedirectURIs = []string{"https://app.example.com/cb"}
	if err := nc.validateURIs(); err != nil {
		t.Errorf("with a redirect URI: %v", err)
	}
	if err := (NewClient{ID: "cli", GrantTypes: []string{GrantPassword}}).validateURIs(); err != nil {
		t.Errorf("a password client needs no redirect URI: %v", err)
	}
}

// browserClient is what the browser sign-in asks of a client beyond
// fosite's interface.
type browserClient interface {
	fosite.Client
	IsFirstParty() bool
	GetPostLogoutRedirectURIs() []string
}

// TestClientRegistration: what Create stores, Get returns (as a *Client,
// with first-party status and post-logout redirect URIs), and List shows.
func TestClientRegistration(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		clients := NewClients(storage.New(db), time.Minute)
		if _, err := clients.Create(ctx, NewClient{ID: "app", Public: true, FirstParty: true, GrantTypes: []string{GrantPassword},
			Scopes: []string{ScopeOpenID}, RedirectURIs: []string{"com.example.app:/cb", "http://127.0.0.1/cb"},
			PostLogoutRedirectURIs: []string{"com.example.app:/bye"}}); err != nil {
			t.Fatal(err)
		}
		secret, err := clients.Create(ctx, NewClient{ID: "web", GrantTypes: []string{GrantPassword}, RedirectURIs: []string{"https://web.example/cb"}})
		if err != nil || secret == "" {
			t.Fatal(secret, err)
		}

		got, err := clients.Get(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		c, ok := got.(*Client)
		if !ok {
			t.Fatalf("Get returned a %T", got)
		}
		var bc browserClient = c
		if !bc.IsFirstParty() || !slices.Equal(bc.GetPostLogoutRedirectURIs(), []string{"com.example.app:/bye"}) ||
			!bc.IsPublic() || !slices.Equal(bc.GetRedirectURIs(), []string{"com.example.app:/cb", "http://127.0.0.1/cb"}) ||
			!slices.Equal(bc.GetResponseTypes(), fosite.Arguments{"code"}) {
			t.Errorf("app: %+v", c)
		}
		got, err = clients.Get(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if bc := got.(browserClient); bc.IsFirstParty() || len(bc.GetPostLogoutRedirectURIs()) != 0 || bc.IsPublic() {
			t.Errorf("web: %+v", got)
		}
		if _, err := clients.Get(ctx, "nobody"); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("unknown client: %v", err)
		}

		list, err := clients.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(list)
		var rows []map[string]any
		if err := json.Unmarshal(b, &rows); err != nil || len(rows) != 2 {
			t.Fatalf("list: %s", b)
		}
		if rows[0]["first_party"] != true || rows[1]["first_party"] != false {
			t.Errorf("first_party in the list: %s", b)
		}
		if pl, _ := rows[0]["post_logout_redirect_uris"].([]any); len(pl) != 1 || pl[0] != "com.example.app:/bye" {
			t.Errorf("post_logout_redirect_uris of app: %s", b)
		}
		if pl, ok := rows[1]["post_logout_redirect_uris"].([]any); !ok || len(pl) != 0 {
			t.Errorf("post_logout_redirect_uris of web is not an empty list: %s", b)
		}
	})
}

// TestEnsure: Ensure creates a client, and brings an existing one up to at
// least the registration (grants, scopes, redirect URIs, first-party
// status) without taking anything away, without touching its audience or
// secret, and without changing whether it is public. Get sees the change
// at once.
func TestEnsure(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		clients := NewClients(storage.New(db), time.Hour)
		want := NewClient{ID: "mobile", Public: true, FirstParty: true, GrantTypes: []string{GrantPassword, GrantRefreshToken},
			Scopes: []string{ScopeOpenID, ScopeOfflineAccess}, RedirectURIs: []string{"http://127.0.0.1/callback", "com.example.idp:/callback"}}

		// A new one.
		if err := clients.Ensure(ctx, want); err != nil {
			t.Fatal(err)
		}
		got := mustClient(t, clients, "mobile")
		if !got.Public || !got.FirstParty || !slices.Equal(got.RedirectURIs, want.RedirectURIs) ||
			!slices.Equal([]string(got.GrantTypes), want.GrantTypes) || got.Secret != nil {
			t.Errorf("created: %+v", got)
		}
		// Again: nothing changes.
		if err := clients.Ensure(ctx, want); err != nil {
			t.Fatal(err)
		}
		if again := mustClient(t, clients, "mobile"); !slices.Equal(again.RedirectURIs, want.RedirectURIs) || !slices.Equal([]string(again.Scopes), want.Scopes) {
			t.Errorf("second Ensure: %+v", again)
		}

		// An old one, with something an operator added, and read (cached)
		// before the upgrade.
		if _, err := clients.Create(ctx, NewClient{ID: "old", Public: true, GrantTypes: []string{GrantPassword},
			Scopes: []string{ScopeOpenID, ScopeUsersStats}, Audience: []string{"https://api.example"},
			RedirectURIs: []string{"com.example.own:/cb"}}); err != nil {
			t.Fatal(err)
		}
		mustClient(t, clients, "old")
		old := want
		old.ID = "old"
		if err := clients.Ensure(ctx, old); err != nil {
			t.Fatal(err)
		}
		got = mustClient(t, clients, "old")
		if !got.FirstParty || !got.Public ||
			!slices.Equal([]string(got.GrantTypes), []string{GrantPassword, GrantRefreshToken}) ||
			!slices.Equal([]string(got.Scopes), []string{ScopeOpenID, ScopeUsersStats, ScopeOfflineAccess}) ||
			!slices.Equal([]string(got.Audience), []string{"https://api.example"}) ||
			!slices.Equal(got.RedirectURIs, []string{"com.example.own:/cb", "http://127.0.0.1/callback", "com.example.idp:/callback"}) {
			t.Errorf("upgraded: %+v", got)
		}

		// A confidential client stays confidential, with its secret; what
		// it may not hold (a custom scheme) is refused, not forced on it.
		secret, err := clients.Create(ctx, NewClient{ID: "svc", GrantTypes: []string{GrantClientCredentials}})
		if err != nil {
			t.Fatal(err)
		}
		svc := NewClient{ID: "svc", Public: true, FirstParty: true, GrantTypes: []string{GrantPassword}, RedirectURIs: []string{"https://svc.example/cb"}}
		if err := clients.Ensure(ctx, svc); err != nil {
			t.Fatal(err)
		}
		got = mustClient(t, clients, "svc")
		if got.Public || !secretMatches(got, secret) || !got.FirstParty || !slices.Equal([]string(got.GrantTypes), []string{GrantClientCredentials, GrantPassword}) {
			t.Errorf("confidential after Ensure: %+v", got)
		}
		svc.RedirectURIs = []string{"com.example.svc:/cb"}
		if err := clients.Ensure(ctx, svc); err == nil || !strings.Contains(err.Error(), "public clients") {
			t.Errorf("a custom scheme for a confidential client: %v", err)
		}
		if got := mustClient(t, clients, "svc"); slices.Contains(got.RedirectURIs, "com.example.svc:/cb") {
			t.Errorf("a refused Ensure changed the client: %+v", got)
		}
	})
}

func mustClient(t *testing.T, clients *Clients, id string) *Client {
	t.Helper()
	c, err := clients.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*Client)
}
