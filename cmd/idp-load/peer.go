package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// A peer is another OpenID provider (Dex, say) loaded side by side with idp
// by the same load generator, for figures that compare like with like. It
// speaks OpenID Connect only: its endpoints come from its discovery
// document, and its users are not signed up through idp's API but logged in
// as one existing account (-login, -password).

// idpOnlyScenarios need idp's own API or its login page: signup and the
// picture flood POST /v1/users, profile and stats are /v1 resources, and
// the browser sign-in walks idp's login form. healthz is idp's path: with
// -login it runs only when named, at <url>/healthz.
var idpOnlyScenarios = []string{"profile", "stats", "signup", "authorize", "loginpage", loginFloodScenario, pictureFloodScenario}

// peerScenarios is what "all" means with -login.
func peerScenarios() []string {
	return slices.DeleteFunc(slices.Clone(allScenarios), func(s string) bool {
		return s == "healthz" || slices.Contains(idpOnlyScenarios, s)
	})
}

// checkPeerScenarios refuses, with -login, the scenarios a peer cannot serve.
func checkPeerScenarios(scenarios []string) error {
	var bad []string
	for _, s := range scenarios {
		if slices.Contains(idpOnlyScenarios, s) && !slices.Contains(bad, s) {
			bad = append(bad, s)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	verb := "needs"
	if len(bad) > 1 {
		verb = "need"
	}
	return fmt.Errorf("-scenarios: %s %s idp's own API or login page, which a peer's account (-login) does not give; with -login name among %s",
		strings.Join(bad, ", "), verb, strings.Join(append([]string{"healthz"}, peerScenarios()...), ", "))
}

// endpoints are the absolute URLs the load sends OpenID requests to.
type endpoints struct {
	token, jwks, userinfo string
}

// idpEndpoints are idp's own paths below the base URL: the endpoints of a
// runner until discover reads the document (the bench's sweep measurement
// loads userinfo without it).
func (r *runner) idpEndpoints() endpoints {
	return endpoints{token: r.url("/oauth2/token"), jwks: r.url("/.well-known/jwks.json"), userinfo: r.url("/userinfo")}
}

// discoveryPath is where the discovery document is, below the issuer.
const discoveryPath = "/.well-known/openid-configuration"

// discover reads the endpoints from the discovery document at the base URL.
// An endpoint the document does not name is idp's path; without -login a
// document that cannot be read leaves all of them at idp's paths, as the
// load always assumed, while a peer must publish one.
func (r *runner) discover(ctx context.Context) (endpoints, error) {
	eps := r.idpEndpoints()
	resp, body, err := r.do(ctx, http.MethodGet, discoveryPath, nil, nil)
	if err != nil {
		return eps, fmt.Errorf("no server at %s: %w", r.base, err)
	}
	var doc struct {
		Issuer   string `json:"issuer"`
		Token    string `json:"token_endpoint"`
		JWKS     string `json:"jwks_uri"`
		UserInfo string `json:"userinfo_endpoint"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &doc) != nil {
		if r.cfg.Login != "" {
			return eps, fmt.Errorf("%s%s: %s %s: a peer's endpoints come from its discovery document", r.base, discoveryPath, resp.Status, bytes.TrimSpace(body))
		}
		return eps, nil
	}
	if r.cfg.Login != "" && doc.Token == "" {
		return eps, fmt.Errorf("%s%s names no token_endpoint", r.base, discoveryPath)
	}
	for _, e := range []struct {
		dst       *string
		published string
	}{{&eps.token, doc.Token}, {&eps.jwks, doc.JWKS}, {&eps.userinfo, doc.UserInfo}} {
		if e.published != "" {
			*e.dst = resolveEndpoint(r.base, doc.Issuer, e.published)
		}
	}
	return eps, nil
}

// resolveEndpoint is where the load sends a published endpoint's requests.
// An endpoint below the issuer is reached below the base URL: the load
// talks to the server at -url, whatever public name its issuer has (the
// bench's idp, or one behind a proxy, publishes the issuer's host). An
// endpoint elsewhere is used as published.
func resolveEndpoint(base *url.URL, issuer, published string) string {
	issuer = strings.TrimSuffix(issuer, "/")
	if issuer != "" {
		if rest, ok := strings.CutPrefix(published, issuer); ok && (rest == "" || strings.HasPrefix(rest, "/") || strings.HasPrefix(rest, "?")) {
			return base.String() + rest
		}
	}
	if u, err := url.Parse(published); err == nil && !u.IsAbs() {
		return base.ResolveReference(u).String()
	}
	return published
}

// prepareLogins logs the one account of -login in once per prepared user,
// four at a time as the signups are: each login is one refresh chain and
// one access token, as each signed-up user is against idp. The first login
// goes alone, so that a peer that refuses the account or the grant says so
// once.
func (r *runner) prepareLogins(ctx context.Context, n int) error {
	r.cfg.logf("  logging %s in %d times at %s with client %s", r.cfg.Login, n, r.endpoints.token, r.cfg.Client)
	r.users = make([]*user, n)
	if err := r.peerLogin(ctx, 0); err != nil {
		return fmt.Errorf("-login: %w", err)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := 1; i < n; i++ {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = r.peerLogin(ctx, i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// peerLogin logs the account of -login in as prepared user i.
func (r *runner) peerLogin(ctx context.Context, i int) error {
	u := &user{username: r.cfg.Login, password: r.cfg.Password}
	r.users[i] = u
	tok, err := r.login(ctx, u)
	if err != nil {
		return err
	}
	if tok.AccessToken == "" {
		return fmt.Errorf("login %s: no access token in the answer", u.username)
	}
	u.accessToken, u.refreshToken = tok.AccessToken, tok.RefreshToken
	return nil
}

// clientAuthorization is the HTTP Basic credential of -client with
// -login-client-secret (RFC 6749 §2.3.1: both form-encoded first), or "" for
// a public client, which names itself with client_id alone.
func (r *runner) clientAuthorization() string {
	if r.cfg.LoginClientSecret == "" {
		return ""
	}
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(url.QueryEscape(r.cfg.Client), url.QueryEscape(r.cfg.LoginClientSecret))
	return req.Header.Get("Authorization")
}

// tokenHeader is the header of -client's password grants.
func (r *runner) tokenHeader() http.Header {
	a := r.clientAuthorization()
	if a == "" {
		return formHeader
	}
	h := formHeader.Clone()
	h.Set("Authorization", a)
	return h
}
