package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"

	"idp/oauth/fositestore"
	"idp/storage"
)

// Scopes this service knows.
const (
	ScopeOpenID        = "openid"
	ScopeProfile       = "profile"
	ScopeEmail         = "email"
	ScopeOfflineAccess = "offline_access"
	ScopeUsersStats    = "users:stats"
)

// ErrClientExists is returned when registering a client id that is taken.
var ErrClientExists = errors.New("oauth: client already exists")

// ErrNoSuchClient is returned when a client to change does not exist.
var ErrNoSuchClient = errors.New("oauth: no such client")

// ErrPublicClient is returned when asked for the secret of a public client,
// which has none.
var ErrPublicClient = errors.New("oauth: a public client has no secret")

// clientIDPattern keeps client ids readable and never numeric, so that a
// token's subject tells a user (decimal id) from a client at a glance.
var clientIDPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]{0,127}$`)

// NewClient is a client registration.
type NewClient struct {
	ID           string
	Public       bool
	GrantTypes   []string
	Scopes       []string
	Audience     []string
	RedirectURIs []string
	// FirstParty marks one of this service's own apps: the browser sign-in
	// never asks its users for consent.
	FirstParty bool
	// PostLogoutRedirectURIs are where RP-initiated logout may send the
	// browser back to.
	PostLogoutRedirectURIs []string
}

// Validate checks a registration.
func (c NewClient) Validate() error {
	if !clientIDPattern.MatchString(c.ID) {
		return fmt.Errorf("client id %q: want a letter then up to 127 letters, digits, '.', '_' or '-'", c.ID)
	}
	if len(c.GrantTypes) == 0 {
		return errors.New("at least one grant type is required")
	}
	for _, name := range c.GrantTypes {
		g, ok := lookupGrant(name)
		if !ok {
			return fmt.Errorf("grant type %q is not supported (supported: %v)", name, SupportedGrantTypes())
		}
		if c.Public && g.confidential {
			return fmt.Errorf("a public client cannot use %s: it has no secret", name)
		}
	}
	for _, s := range c.Scopes {
		if !slices.Contains(scopes, s) {
			return fmt.Errorf("scope %q is not supported (supported: %v)", s, scopes)
		}
	}
	for _, a := range c.Audience {
		if a == "" || len(a) > 255 || strings.ContainsAny(a, " \t\r\n") {
			return fmt.Errorf("audience %q is not valid: want 1 to 255 characters without spaces", a)
		}
	}
	return c.validateURIs()
}

// validateURIs checks the redirect and post-logout redirect URIs, apart
// from the grant registry: a client of the authorization code grant needs
// somewhere to receive its code.
func (c NewClient) validateURIs() error {
	if slices.Contains(c.GrantTypes, GrantAuthorizationCode) && len(c.RedirectURIs) == 0 {
		return fmt.Errorf("a client of the %s grant needs at least one redirect URI (--redirect-uri)", GrantAuthorizationCode)
	}
	for _, list := range []struct {
		what string
		uris []string
	}{{"redirect URI", c.RedirectURIs}, {"post-logout redirect URI", c.PostLogoutRedirectURIs}} {
		if len(list.uris) > maxClientURIs {
			return fmt.Errorf("at most %d %ss", maxClientURIs, list.what)
		}
		for _, u := range list.uris {
			if err := checkClientURI(u, c.Public); err != nil {
				return fmt.Errorf("%s %q: %w", list.what, u, err)
			}
		}
	}
	return nil
}

// Bounds of a client's URIs: far above any real registration, low enough
// that a registration stays a small row.
const (
	maxClientURIs   = 32
	maxClientURILen = 2000
)

// forbiddenSchemes run or reveal something in the browser itself rather
// than reach an app: never a place to send a code or a signed-out user.
var forbiddenSchemes = []string{"javascript", "data", "file", "vbscript", "blob", "about"}

// checkClientURI checks one redirect (or post-logout redirect) URI of a
// client, per RFC 6749 §3.1.2, RFC 8252 §7 and §8 and RFC 9700 §2.1: an
// absolute URI without a fragment; https anywhere; plain http only to the
// device itself (loopback), where nothing travels over a network; a
// private-use scheme (a native app's, RFC 8252 §7.1) only for a public
// client, since such a scheme proves nothing about who receives it, and
// only in the reverse domain name form that keeps apps' schemes apart.
func checkClientURI(raw string, public bool) error {
	if len(raw) > maxClientURILen {
		return fmt.Errorf("longer than %d characters", maxClientURILen)
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errors.New("contains spaces or control characters")
	}
	if strings.Contains(raw, "#") {
		return errors.New("must not have a fragment (#...)")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return errors.New("must be an absolute URI (scheme://host/path, or a native app's com.example.app:/path)")
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme == "https":
		if u.Host == "" || u.Opaque != "" {
			return errors.New("an https URI needs a host: https://host/path")
		}
		if u.User != nil {
			return errors.New("must not hold a user name or password")
		}
	case scheme == "http":
		if u.Opaque != "" || !isLoopbackHost(u.Hostname()) {
			return errors.New("plain http is allowed only for loopback addresses (http://127.0.0.1, http://[::1], http://localhost); use https")
		}
		if u.User != nil {
			return errors.New("must not hold a user name or password")
		}
	case slices.Contains(forbiddenSchemes, scheme):
		return fmt.Errorf("the scheme %s: is never allowed", scheme)
	case !public:
		return fmt.Errorf("the custom scheme %s: is allowed only for public clients (native apps); a confidential client uses https", scheme)
	case !strings.Contains(scheme, "."):
		return fmt.Errorf("the custom scheme %s: must be a reverse domain name under the app's control, such as com.example.app (RFC 8252 §7.1)", scheme)
	}
	return nil
}

// isLoopbackHost reports whether host (without port or brackets) names
// the device itself.
func isLoopbackHost(host string) bool {
	return host == "127.0.0.1" || host == "::1" || strings.EqualFold(host, "localhost")
}

// ClientStorage is what the client registry needs of package storage;
// *storage.Store implements it.
type ClientStorage interface {
	CreateClient(ctx context.Context, c storage.Client) error
	ClientByID(ctx context.Context, id string) (*storage.Client, error)
	Clients(ctx context.Context) ([]storage.Client, error)
	UpdateClient(ctx context.Context, c storage.Client) error
	SetClientSecret(ctx context.Context, id string, secretHash []byte) (bool, error)
	DeleteClient(ctx context.Context, id string) error
}

var _ ClientStorage = (*storage.Store)(nil)

// Clients is the client registry, with a short-lived cache in front of the
// database: clients are read on every token request and change rarely, and
// a change (or a deletion) reaches every process within cacheTTL.
type Clients struct {
	db  ClientStorage
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	cache map[string]cachedClient
}

type cachedClient struct {
	client  *Client // nil: known not to exist
	expires time.Time
}

// maxCachedClients bounds the cache, which also remembers unknown ids so
// that a flood of made-up client ids does not reach the database each time.
const maxCachedClients = 10_000

// NewClients returns the registry. ttl is how long a lookup is reused.
func NewClients(db ClientStorage, ttl time.Duration) *Clients {
	return &Clients{db: db, ttl: ttl, now: time.Now, cache: make(map[string]cachedClient)}
}

// Client is a registered client: what fosite reads, and what the browser
// sign-in asks of it besides.
type Client struct {
	fosite.DefaultClient
	FirstParty             bool
	PostLogoutRedirectURIs []string
}

// IsFirstParty reports whether the client is one of this service's own
// apps, whose users are never asked for consent.
func (c *Client) IsFirstParty() bool { return c.FirstParty }

// GetPostLogoutRedirectURIs returns where RP-initiated logout may send the
// browser back to.
func (c *Client) GetPostLogoutRedirectURIs() []string { return c.PostLogoutRedirectURIs }

// GetResponseModes lets every client choose query or form_post (fosite
// refuses response_mode for a client without this).
func (c *Client) GetResponseModes() []fosite.ResponseModeType {
	return []fosite.ResponseModeType{fosite.ResponseModeDefault, fosite.ResponseModeQuery, fosite.ResponseModeFormPost}
}

var _ fositestore.Clients = (*Clients)(nil)

// Get returns a client, or an error wrapping fosite.ErrNotFound. The
// client is always a *Client; its type is fosite's interface because the
// token storage (fositestore, which cannot import this package) hands it
// on to fosite. It is shared with other callers: never change it.
func (c *Clients) Get(ctx context.Context, id string) (fosite.Client, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.cache[id]
	c.mu.Unlock()
	if !ok || now.After(e.expires) {
		cl, err := c.load(ctx, id)
		if err != nil && !errors.Is(err, fosite.ErrNotFound) {
			return nil, err
		}
		e = cachedClient{client: cl, expires: now.Add(c.ttl)}
		c.mu.Lock()
		if len(c.cache) >= maxCachedClients {
			clear(c.cache)
		}
		c.cache[id] = e
		c.mu.Unlock()
	}
	if e.client == nil {
		return nil, fmt.Errorf("oauth: client %q: %w", id, fosite.ErrNotFound)
	}
	return e.client, nil
}

func (c *Clients) load(ctx context.Context, id string) (*Client, error) {
	row, err := c.db.ClientByID(ctx, id)
	if err != nil {
		return nil, fositestore.MapError(err)
	}
	return &Client{
		DefaultClient: fosite.DefaultClient{
			ID:            row.ID,
			Secret:        row.SecretHash,
			RedirectURIs:  row.RedirectURIs,
			GrantTypes:    row.GrantTypes,
			ResponseTypes: []string{"code"},
			Scopes:        row.Scopes,
			Audience:      row.Audience,
			Public:        row.Public,
		},
		FirstParty:             row.FirstParty,
		PostLogoutRedirectURIs: row.PostLogoutRedirectURIs,
	}, nil
}

// Create registers a client. For a confidential client it returns the
// generated secret, which is stored only as a digest and cannot be shown
// again.
func (c *Clients) Create(ctx context.Context, nc NewClient) (secret string, err error) {
	if err := nc.Validate(); err != nil {
		return "", err
	}
	row := storage.Client{
		ID:                     nc.ID,
		Public:                 nc.Public,
		GrantTypes:             nc.GrantTypes,
		Scopes:                 nonNil(nc.Scopes),
		Audience:               nonNil(nc.Audience),
		RedirectURIs:           nonNil(nc.RedirectURIs),
		FirstParty:             nc.FirstParty,
		PostLogoutRedirectURIs: nonNil(nc.PostLogoutRedirectURIs),
	}
	if !nc.Public {
		secret = newSecret()
		row.SecretHash = hashSecret(secret)
	}
	if err := c.db.CreateClient(ctx, row); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return "", fmt.Errorf("%w: %q", ErrClientExists, nc.ID)
		}
		return "", err
	}
	return secret, nil
}

// newSecret makes a client secret: 256 random bits.
func newSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ClientInfo describes a registered client, for `idp client list`. It holds
// no secret.
type ClientInfo struct {
	ID           string   `json:"client_id"`
	Public       bool     `json:"public"`
	GrantTypes   []string `json:"grant_types"`
	Scopes       []string `json:"scopes"`
	Audience     []string `json:"audience"`
	RedirectURIs []string `json:"redirect_uris"`
	FirstParty   bool     `json:"first_party"`
	// PostLogoutRedirectURIs is named as in OpenID Connect RP-Initiated
	// Logout's client metadata.
	PostLogoutRedirectURIs []string  `json:"post_logout_redirect_uris"`
	CreatedAt              time.Time `json:"created_at"`
}

// List describes every client, by id.
func (c *Clients) List(ctx context.Context) ([]ClientInfo, error) {
	rows, err := c.db.Clients(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ClientInfo, 0, len(rows))
	for _, r := range rows {
		out = append(out, ClientInfo{
			ID: r.ID, Public: r.Public, GrantTypes: r.GrantTypes, Scopes: nonNil(r.Scopes),
			Audience: nonNil(r.Audience), RedirectURIs: nonNil(r.RedirectURIs), FirstParty: r.FirstParty,
			PostLogoutRedirectURIs: nonNil(r.PostLogoutRedirectURIs), CreatedAt: r.CreatedAt.UTC(),
		})
	}
	return out, nil
}

// exactly reads the client row with exactly this id: some MySQL collations
// compare case-insensitively, and "Reports" must not change "reports"
// (storage.Store.ClientByID).
func (c *Clients) exactly(ctx context.Context, id string) (*storage.Client, error) {
	row, err := c.db.ClientByID(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchClient, id)
	}
	return row, err
}

// Delete removes a client. Other processes refuse it once their cached copy
// expires (the ttl of NewClients). Its refresh tokens then fail at the
// client lookup; access tokens already issued stay valid until they expire
// (bearer tokens are checked against their grant, not their client).
func (c *Clients) Delete(ctx context.Context, id string) error {
	row, err := c.exactly(ctx, id)
	if err != nil {
		return err
	}
	if err := c.db.DeleteClient(ctx, row.ID); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: %q", ErrNoSuchClient, id)
		}
		return err
	}
	c.forget(id)
	return nil
}

// RotateSecret gives a confidential client a new secret and returns it; the
// old one stops working (in other processes once their cached copy
// expires). Only its digest is stored, as at Create.
func (c *Clients) RotateSecret(ctx context.Context, id string) (string, error) {
	row, err := c.exactly(ctx, id)
	if err != nil {
		return "", err
	}
	if row.Public {
		return "", fmt.Errorf("%w: %q is public", ErrPublicClient, id)
	}
	secret := newSecret()
	ok, err := c.db.SetClientSecret(ctx, row.ID, hashSecret(secret))
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrNoSuchClient, id)
	}
	c.forget(id)
	return secret, nil
}

// forget drops a client from this process's cache.
func (c *Clients) forget(id string) {
	c.mu.Lock()
	delete(c.cache, id)
	c.mu.Unlock()
}

// Ensure makes a client hold at least what nc registers: it creates the
// client, or adds to an existing one the grants, scopes, redirect URIs and
// post-logout redirect URIs it lacks, and first-party status. It never
// takes anything away, never touches the audience or the secret, and never
// changes whether the client is public, so that what an operator changed
// by hand survives. The embedded default keeps its "mobile" client current
// with it, in new and old data directories alike.
func (c *Clients) Ensure(ctx context.Context, nc NewClient) error {
	row, err := c.exactly(ctx, nc.ID)
	if errors.Is(err, ErrNoSuchClient) {
		_, err = c.Create(ctx, nc)
		if !errors.Is(err, ErrClientExists) {
			return err
		}
		// Created meanwhile by another process: bring that one up to date.
		row, err = c.exactly(ctx, nc.ID)
	}
	if err != nil {
		return err
	}
	want := NewClient{
		ID:                     row.ID,
		Public:                 row.Public,
		GrantTypes:             union(row.GrantTypes, nc.GrantTypes),
		Scopes:                 union(row.Scopes, nc.Scopes),
		Audience:               row.Audience,
		RedirectURIs:           union(row.RedirectURIs, nc.RedirectURIs),
		FirstParty:             row.FirstParty || nc.FirstParty,
		PostLogoutRedirectURIs: union(row.PostLogoutRedirectURIs, nc.PostLogoutRedirectURIs),
	}
	if slices.Equal(want.GrantTypes, row.GrantTypes) && slices.Equal(want.Scopes, row.Scopes) &&
		slices.Equal(want.RedirectURIs, row.RedirectURIs) && want.FirstParty == row.FirstParty &&
		slices.Equal(want.PostLogoutRedirectURIs, row.PostLogoutRedirectURIs) {
		return nil
	}
	if err := want.Validate(); err != nil {
		return fmt.Errorf("oauth: update client %q: %w", nc.ID, err)
	}
	err = c.db.UpdateClient(ctx, storage.Client{ID: row.ID, GrantTypes: want.GrantTypes, Scopes: want.Scopes,
		RedirectURIs: want.RedirectURIs, FirstParty: want.FirstParty, PostLogoutRedirectURIs: want.PostLogoutRedirectURIs})
	if err != nil {
		return fmt.Errorf("oauth: update client %q: %w", nc.ID, err)
	}
	c.forget(nc.ID)
	return nil
}

// union is have followed by what of add it lacks, in a new non-nil slice.
func union(have, add []string) []string {
	out := append([]string{}, have...)
	for _, s := range add {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// hashSecret digests a generated client secret. The secret is 256 random
// bits, so a fast hash is as good as a slow one and keeps every confidential
// client request cheap.
func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// secretMatches compares a presented secret with the stored digest in
// constant time.
func secretMatches(c fosite.Client, secret string) bool {
	stored := c.GetHashedSecret()
	return len(stored) == sha256.Size && subtle.ConstantTimeCompare(stored, hashSecret(secret)) == 1
}
