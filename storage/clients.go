package storage

import (
	"context"
	"fmt"
	"time"

	"idp/ent"
	"idp/ent/oauthclient"
)

// Client is a registered OAuth 2.0 client.
type Client struct {
	ID string
	// SecretHash is the digest of a confidential client's secret; nil for
	// a public client.
	SecretHash   []byte
	Public       bool
	GrantTypes   []string
	Scopes       []string
	Audience     []string
	RedirectURIs []string
	FirstParty   bool
	// PostLogoutRedirectURIs are where RP-initiated logout may send the
	// browser back to.
	PostLogoutRedirectURIs []string
	CreatedAt              time.Time
}

func clientOf(row *ent.OAuthClient) *Client {
	var secretHash []byte
	if row.SecretHash != nil {
		secretHash = *row.SecretHash
	}
	return &Client{
		ID: row.ID, SecretHash: secretHash, Public: row.Public, GrantTypes: row.GrantTypes, Scopes: row.Scopes,
		Audience: row.Audience, RedirectURIs: row.RedirectUris, FirstParty: row.FirstParty,
		PostLogoutRedirectURIs: row.PostLogoutRedirectUris, CreatedAt: row.CreatedAt,
	}
}

// CreateClient registers c (its CreatedAt is set by the database); a
// *ConflictError when the id is taken.
func (s *Store) CreateClient(ctx context.Context, c Client) error {
	create := s.client(ctx).OAuthClient.Create().
		SetID(c.ID).
		SetPublic(c.Public).
		SetGrantTypes(c.GrantTypes).
		SetScopes(c.Scopes).
		SetAudience(c.Audience).
		SetRedirectUris(c.RedirectURIs).
		SetFirstParty(c.FirstParty).
		SetPostLogoutRedirectUris(c.PostLogoutRedirectURIs)
	if c.SecretHash != nil {
		create.SetSecretHash(c.SecretHash)
	}
	return wrap(create.Exec(ctx))
}

// ClientByID returns the client with exactly this id; ErrNotFound if there
// is none. Some MySQL collations compare case-insensitively; client ids do
// not, and "Reports" is not "reports".
func (s *Store) ClientByID(ctx context.Context, id string) (*Client, error) {
	row, err := s.client(ctx).OAuthClient.Get(ctx, id)
	if err != nil {
		return nil, wrap(err)
	}
	if row.ID != id {
		return nil, fmt.Errorf("%w: client %q", ErrNotFound, id)
	}
	return clientOf(row), nil
}

// Clients returns every client, by id.
func (s *Store) Clients(ctx context.Context) ([]Client, error) {
	rows, err := s.client(ctx).OAuthClient.Query().Order(ent.Asc(oauthclient.FieldID)).All(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]Client, 0, len(rows))
	for _, r := range rows {
		out = append(out, *clientOf(r))
	}
	return out, nil
}

// UpdateClient changes what an update of a registration may change of the
// client c.ID: its grant types, scopes, redirect URIs, first-party status
// and post-logout redirect URIs (never its secret, audience or whether it
// is public). ErrNotFound if it is gone. id must be one ClientByID
// returned (see there).
func (s *Store) UpdateClient(ctx context.Context, c Client) error {
	return wrap(s.client(ctx).OAuthClient.UpdateOneID(c.ID).
		SetGrantTypes(c.GrantTypes).
		SetScopes(c.Scopes).
		SetRedirectUris(c.RedirectURIs).
		SetFirstParty(c.FirstParty).
		SetPostLogoutRedirectUris(c.PostLogoutRedirectURIs).
		Exec(ctx))
}

// SetClientSecret replaces the secret digest of the confidential client
// id, and reports whether there was one to change (a public client has no
// secret). id must be one ClientByID returned.
func (s *Store) SetClientSecret(ctx context.Context, id string, secretHash []byte) (bool, error) {
	n, err := s.client(ctx).OAuthClient.Update().
		Where(oauthclient.ID(id), oauthclient.Public(false)).
		SetSecretHash(secretHash).
		Save(ctx)
	if err != nil {
		return false, wrap(err)
	}
	return n == 1, nil
}

// DeleteClient removes the client id; ErrNotFound if it is gone. id must
// be one ClientByID returned.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return wrap(s.client(ctx).OAuthClient.DeleteOneID(id).Exec(ctx))
}
