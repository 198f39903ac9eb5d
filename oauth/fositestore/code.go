package fositestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
)

var (
	_ oauth2.AuthorizeCodeStorage = (*Store)(nil)
	_ pkce.PKCERequestStorage     = (*Store)(nil)
)

// ErrCodeUsed is InvalidateAuthorizeCodeSession's error for a code that is
// unknown or was already invalidated: a concurrent redemption of the same
// code won.
var ErrCodeUsed = errors.New("oauth: authorization code already used")

// defaultCodeLifespan is the lifetime of a code whose session names none.
// fosite sets one (AuthorizeCodeLifespan) before storing a code; this only
// keeps a row from living forever should it not.
const defaultCodeLifespan = 5 * time.Minute

// codeExpiry is when the code of r expires.
func codeExpiry(r fosite.Requester) time.Time {
	if exp := r.GetSession().GetExpiresAt(fosite.AuthorizeCode); !exp.IsZero() {
		return exp
	}
	return r.GetRequestedAt().Add(defaultCodeLifespan)
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, signature string, r fosite.Requester) error {
	data, err := EncodeRequest(r)
	if err != nil {
		return err
	}
	return MapError(s.db.CreateAuthorizeCode(ctx, record(RowID(signature), r, codeExpiry(r), data)))
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage. A used
// code's request comes back together with an error wrapping
// fosite.ErrInvalidatedAuthorizeCode: fosite needs the request to revoke
// the tokens the first redemption issued. Expiry is fosite's to check.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	code, err := s.db.AuthorizeCodeByID(ctx, RowID(signature))
	if err != nil {
		return nil, MapError(err)
	}
	r, err := s.decodeRequest(ctx, code.Request, session)
	if err != nil {
		return nil, err
	}
	if !code.Active {
		return r, fmt.Errorf("oauth: authorization code used: %w", fosite.ErrInvalidatedAuthorizeCode)
	}
	return r, nil
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage
// with one conditional update: of two concurrent redemptions of a code
// (each in its own transaction) the database lets exactly one change the
// row, and the other gets ErrCodeUsed, so a code buys one set of tokens
// (ory/fosite#778).
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	ok, err := s.db.InvalidateAuthorizeCode(ctx, RowID(signature))
	if err != nil {
		return MapError(err)
	}
	if !ok {
		return ErrCodeUsed
	}
	// The code's challenge has served (DeletePKCERequestSession).
	return MapError(s.db.DeletePKCERequest(ctx, RowID(signature)))
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage; signature
// is the authorization code's.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	data, err := EncodeRequest(r)
	if err != nil {
		return err
	}
	return MapError(s.db.CreatePKCERequest(ctx, record(RowID(signature), r, codeExpiry(r), data)))
}

// GetPKCERequestSession implements pkce.PKCERequestStorage; an unknown
// signature gives an error wrapping fosite.ErrNotFound.
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	data, err := s.db.PKCERequest(ctx, RowID(signature))
	if err != nil {
		return nil, MapError(err)
	}
	return s.decodeRequest(ctx, data, session)
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage by keeping
// the challenge. fosite calls it before it compares the verifier, and a
// failed comparison leaves the code active: were the challenge gone, the
// same code sent again without a verifier would find none, and fosite lets
// a confidential client without a challenge through. The challenge goes
// with its code instead: when the code is used
// (InvalidateAuthorizeCodeSession), or by the sweep at the code's expiry.
func (s *Store) DeletePKCERequestSession(context.Context, string) error { return nil }
