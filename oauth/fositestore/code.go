package fositestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"

	"idp/database"
	"idp/ent/authorizecode"
	"idp/ent/pkcerequest"
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
	return s.forUser(ctx, r.GetSession().GetSubject(), func(ctx context.Context) error {
		return MapError(s.client(ctx).AuthorizeCode.Create().
			SetID(RowID(signature)).
			SetRequestID(r.GetID()).
			SetClientID(r.GetClient().GetID()).
			SetSubject(r.GetSession().GetSubject()).
			SetRequestedAt(r.GetRequestedAt()).
			SetExpiresAt(codeExpiry(r)).
			SetRequest(data).
			SetActive(true).
			Exec(ctx))
	})
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage. A used
// code's request comes back together with an error wrapping
// fosite.ErrInvalidatedAuthorizeCode: fosite needs the request to revoke
// the tokens the first redemption issued. Expiry is fosite's to check.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	row, err := s.client(ctx).AuthorizeCode.Get(ctx, RowID(signature))
	if err != nil {
		return nil, MapError(err)
	}
	r, err := s.decodeRequest(ctx, row.Request, session)
	if err != nil {
		return nil, err
	}
	if !row.Active {
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
	n, err := s.client(ctx).AuthorizeCode.Update().
		Where(authorizecode.ID(RowID(signature)), authorizecode.Active(true)).
		SetActive(false).
		Save(ctx)
	if err != nil {
		return MapError(err)
	}
	if n == 0 {
		return ErrCodeUsed
	}
	return nil
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage; signature
// is the authorization code's.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	data, err := EncodeRequest(r)
	if err != nil {
		return err
	}
	return s.forUser(ctx, r.GetSession().GetSubject(), func(ctx context.Context) error {
		return MapError(s.client(ctx).PKCERequest.Create().
			SetID(RowID(signature)).
			SetRequestID(r.GetID()).
			SetClientID(r.GetClient().GetID()).
			SetSubject(r.GetSession().GetSubject()).
			SetRequestedAt(r.GetRequestedAt()).
			SetExpiresAt(codeExpiry(r)).
			SetRequest(data).
			Exec(ctx))
	})
}

// GetPKCERequestSession implements pkce.PKCERequestStorage; an unknown
// signature gives an error wrapping fosite.ErrNotFound.
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	row, err := s.client(ctx).PKCERequest.Get(ctx, RowID(signature))
	if err != nil {
		return nil, MapError(err)
	}
	return s.decodeRequest(ctx, row.Request, session)
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage. Deleting
// a row that is gone is not an error: the challenge is spent either way.
func (s *Store) DeletePKCERequestSession(ctx context.Context, signature string) error {
	_, err := s.client(ctx).PKCERequest.Delete().Where(pkcerequest.ID(RowID(signature))).Exec(ctx)
	return MapError(err)
}

// deleteExpiredCodes removes the code and PKCE rows that expired before t.
func (s *Store) deleteExpiredCodes(ctx context.Context, t time.Time) (int, error) {
	c, err := database.DeleteBatches(ctx, func(ctx context.Context, limit int) (int, error) {
		ids, err := s.db.AuthorizeCode.Query().Where(authorizecode.ExpiresAtLT(t)).Limit(limit).IDs(ctx)
		if err != nil || len(ids) == 0 {
			return 0, err
		}
		return s.db.AuthorizeCode.Delete().Where(authorizecode.IDIn(ids...), authorizecode.ExpiresAtLT(t)).Exec(ctx)
	})
	if err != nil {
		return c, MapError(err)
	}
	p, err := database.DeleteBatches(ctx, func(ctx context.Context, limit int) (int, error) {
		ids, err := s.db.PKCERequest.Query().Where(pkcerequest.ExpiresAtLT(t)).Limit(limit).IDs(ctx)
		if err != nil || len(ids) == 0 {
			return 0, err
		}
		return s.db.PKCERequest.Delete().Where(pkcerequest.IDIn(ids...), pkcerequest.ExpiresAtLT(t)).Exec(ctx)
	})
	return c + p, MapError(err)
}
