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
)

// Scopes this service knows.
const (
	ScopeOpenID        = "openid"
	ScopeProfile       = "profile"
	ScopeEmail         = "email"
	ScopeOfflineAccess = "offline_access"
	ScopeUsersStats    = "users:stats"
)

// SupportedScopes lists every scope a client may be registered for.
var SupportedScopes = []string{ScopeOpenID, ScopeProfile, ScopeEmail, ScopeOfflineAccess, ScopeUsersStats}

// SupportedGrantTypes lists the grant types a client may be registered for.
var SupportedGrantTypes = []string{"password", "refresh_token", "client_credentials"}

// ErrClientExists is returned when registering a client id that is taken.
var ErrClientExists = errors.New("oauth: client already exists")

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
	for _, g := range c.GrantTypes {
		if !slices.Contains(SupportedGrantTypes, g) {
			return fmt.Errorf("grant type %q is not supported (supported: %v)", g, SupportedGrantTypes)
		}
	}
	if c.Public && slices.Contains(c.GrantTypes, "client_credentials") {
		return errors.New("a public client cannot use client_credentials: it has no secret")
	}
	for _, s := range c.Scopes {
		if !slices.Contains(SupportedScopes, s) {
			return fmt.Errorf("scope %q is not supported (supported: %v)", s, SupportedScopes)
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
		return nil, storageError(err)
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
		var b [32]byte
		rand.Read(b[:])
		secret = base64.RawURLEncoding.EncodeToString(b[:])
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
