package storage

import (
	"context"
	"time"

	"idp/ent/authorizecode"
	"idp/ent/pkcerequest"
)

// CreateAuthorizeCode records an authorization code, active (unused).
func (s *Store) CreateAuthorizeCode(ctx context.Context, rec TokenRecord) error {
	return s.tokensForUser(ctx, rec.UserID, func(ctx context.Context) error {
		return s.client(ctx).AuthorizeCode.Create().
			SetID(rec.ID).
			SetRequestID(rec.RequestID).
			SetClientID(rec.ClientID).
			SetSubject(rec.Subject).
			SetRequestedAt(rec.RequestedAt).
			SetExpiresAt(rec.ExpiresAt).
			SetRequest(rec.Request).
			SetActive(true).
			Exec(ctx)
	})
}

// AuthorizeCode is a stored authorization code.
type AuthorizeCode struct {
	Request   []byte
	ExpiresAt time.Time
	// Active is false once the code was redeemed.
	Active bool
}

// AuthorizeCodeByID reads the code whose key is id; ErrNotFound if there
// is none.
func (s *Store) AuthorizeCodeByID(ctx context.Context, id string) (*AuthorizeCode, error) {
	row, err := s.client(ctx).AuthorizeCode.Get(ctx, id)
	if err != nil {
		return nil, wrap(err)
	}
	return &AuthorizeCode{Request: row.Request, ExpiresAt: row.ExpiresAt, Active: row.Active}, nil
}

// InvalidateAuthorizeCode marks the code used with one conditional update,
// and reports whether it did: of two concurrent redemptions of a code
// (each in its own transaction) the database lets exactly one change the
// row. An unknown code reports false.
func (s *Store) InvalidateAuthorizeCode(ctx context.Context, id string) (bool, error) {
	n, err := s.client(ctx).AuthorizeCode.Update().
		Where(authorizecode.ID(id), authorizecode.Active(true)).
		SetActive(false).
		Save(ctx)
	if err != nil {
		return false, wrap(err)
	}
	return n > 0, nil
}

// CreatePKCERequest records the PKCE request of an authorization code;
// rec.ID is the code's key.
func (s *Store) CreatePKCERequest(ctx context.Context, rec TokenRecord) error {
	return s.tokensForUser(ctx, rec.UserID, func(ctx context.Context) error {
		return s.client(ctx).PKCERequest.Create().
			SetID(rec.ID).
			SetRequestID(rec.RequestID).
			SetClientID(rec.ClientID).
			SetSubject(rec.Subject).
			SetRequestedAt(rec.RequestedAt).
			SetExpiresAt(rec.ExpiresAt).
			SetRequest(rec.Request).
			Exec(ctx)
	})
}

// PKCERequest returns the stored request of the PKCE request whose key is
// id; ErrNotFound if there is none.
func (s *Store) PKCERequest(ctx context.Context, id string) ([]byte, error) {
	row, err := s.client(ctx).PKCERequest.Get(ctx, id)
	if err != nil {
		return nil, wrap(err)
	}
	return row.Request, nil
}

// DeletePKCERequest deletes the PKCE request whose key is id; a row that
// is gone is not an error.
func (s *Store) DeletePKCERequest(ctx context.Context, id string) error {
	_, err := s.client(ctx).PKCERequest.Delete().Where(pkcerequest.ID(id)).Exec(ctx)
	return wrap(err)
}
