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

	"idp/ent"
	"idp/ent/oauthclient"
	"idp/oauth/fositestore"
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
	for _, r := range c.RedirectURIs {
		if u, err := url.Parse(r); err != nil || !u.IsAbs() || u.Fragment != "" {
			return fmt.Errorf("redirect URI %q must be absolute and have no fragment", r)
		}
	}
	return nil
}

// Clients is the client registry, with a short-lived cache in front of the
// database: clients are read on every token request and change rarely, and
// a change (or a deletion) reaches every process within cacheTTL.
type Clients struct {
	db  *ent.Client
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	cache map[string]cachedClient
}

type cachedClient struct {
	client  *fosite.DefaultClient // nil: known not to exist
	expires time.Time
}

// maxCachedClients bounds the cache, which also remembers unknown ids so
// that a flood of made-up client ids does not reach the database each time.
const maxCachedClients = 10_000

// NewClients returns the registry. ttl is how long a lookup is reused.
func NewClients(db *ent.Client, ttl time.Duration) *Clients {
	return &Clients{db: db, ttl: ttl, now: time.Now, cache: make(map[string]cachedClient)}
}

// Get returns a client, or an error wrapping fosite.ErrNotFound.
func (c *Clients) Get(ctx context.Context, id string) (*fosite.DefaultClient, error) {
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

func (c *Clients) load(ctx context.Context, id string) (*fosite.DefaultClient, error) {
	row, err := c.db.OAuthClient.Get(ctx, id)
	if err != nil {
		return nil, fositestore.MapError(err)
	}
	// Some MySQL collations compare case-insensitively; client ids do not.
	if row.ID != id {
		return nil, fosite.ErrNotFound
	}
	var secretHash []byte
	if row.SecretHash != nil {
		secretHash = *row.SecretHash
	}
	return &fosite.DefaultClient{
		ID:            row.ID,
		Secret:        secretHash,
		RedirectURIs:  row.RedirectUris,
		GrantTypes:    row.GrantTypes,
		ResponseTypes: []string{"code"},
		Scopes:        row.Scopes,
		Audience:      row.Audience,
		Public:        row.Public,
	}, nil
}

// Create registers a client. For a confidential client it returns the
// generated secret, which is stored only as a digest and cannot be shown
// again.
func (c *Clients) Create(ctx context.Context, nc NewClient) (secret string, err error) {
	if err := nc.Validate(); err != nil {
		return "", err
	}
	create := c.db.OAuthClient.Create().
		SetID(nc.ID).
		SetPublic(nc.Public).
		SetGrantTypes(nc.GrantTypes).
		SetScopes(nonNil(nc.Scopes)).
		SetAudience(nonNil(nc.Audience)).
		SetRedirectUris(nonNil(nc.RedirectURIs))
	if !nc.Public {
		secret = newSecret()
		create.SetSecretHash(hashSecret(secret))
	}
	if err := create.Exec(ctx); err != nil {
		if ent.IsConstraintError(err) {
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
	ID           string    `json:"client_id"`
	Public       bool      `json:"public"`
	GrantTypes   []string  `json:"grant_types"`
	Scopes       []string  `json:"scopes"`
	Audience     []string  `json:"audience"`
	RedirectURIs []string  `json:"redirect_uris"`
	CreatedAt    time.Time `json:"created_at"`
}

// List describes every client, by id.
func (c *Clients) List(ctx context.Context) ([]ClientInfo, error) {
	rows, err := c.db.OAuthClient.Query().Order(ent.Asc(oauthclient.FieldID)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ClientInfo, 0, len(rows))
	for _, r := range rows {
		out = append(out, ClientInfo{
			ID: r.ID, Public: r.Public, GrantTypes: r.GrantTypes, Scopes: nonNil(r.Scopes),
			Audience: nonNil(r.Audience), RedirectURIs: nonNil(r.RedirectUris), CreatedAt: r.CreatedAt.UTC(),
		})
	}
	return out, nil
}

// exactly reads the client row with exactly this id: some MySQL collations
// compare case-insensitively, and "Reports" must not change "reports".
func (c *Clients) exactly(ctx context.Context, id string) (*ent.OAuthClient, error) {
	row, err := c.db.OAuthClient.Get(ctx, id)
	if ent.IsNotFound(err) || err == nil && row.ID != id {
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
	if err := c.db.OAuthClient.DeleteOne(row).Exec(ctx); err != nil {
		if ent.IsNotFound(err) {
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
	n, err := c.db.OAuthClient.Update().
		Where(oauthclient.ID(row.ID), oauthclient.Public(false)).
		SetSecretHash(hashSecret(secret)).
		Save(ctx)
	if err != nil {
		return "", err
	}
	if n != 1 {
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

// EnsurePublic registers a public client unless one with that id exists; the
// embedded default uses it for its "mobile" client.
func (c *Clients) EnsurePublic(ctx context.Context, nc NewClient) error {
	nc.Public = true
	_, err := c.Create(ctx, nc)
	if errors.Is(err, ErrClientExists) {
		return nil
	}
	return err
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
