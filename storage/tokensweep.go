package storage

import (
	"context"
	"time"

	"idp/ent/accesstoken"
	"idp/ent/authorizecode"
	"idp/ent/pkcerequest"
	"idp/ent/refreshchain"
)

// DeleteExpiredTokens removes the access token, refresh chain,
// authorization code and PKCE rows that expired before t, in bounded
// batches (deleteInBatches), and reports how many. A chain's
// expiry is its newest token's, and a used code's row is kept until its
// own expiry: reuse is recognised until then.
func (s *Store) DeleteExpiredTokens(ctx context.Context, t time.Time) (int, error) {
	total := 0
	for _, sweep := range []func() (int, error){
		func() (int, error) {
			return deleteInBatches(ctx,
				func(ctx context.Context, limit int) ([]string, error) {
					return s.db.AccessToken.Query().Where(accesstoken.ExpiresAtLT(t)).Limit(limit).IDs(ctx)
				},
				func(ctx context.Context, ids []string) (int, error) {
					return s.db.AccessToken.Delete().Where(accesstoken.IDIn(ids...), accesstoken.ExpiresAtLT(t)).Exec(ctx)
				})
		},
		func() (int, error) {
			return deleteInBatches(ctx,
				func(ctx context.Context, limit int) ([]string, error) {
					return s.db.RefreshChain.Query().Where(refreshchain.ExpiresAtLT(t)).Limit(limit).IDs(ctx)
				},
				func(ctx context.Context, ids []string) (int, error) {
					return s.db.RefreshChain.Delete().Where(refreshchain.IDIn(ids...), refreshchain.ExpiresAtLT(t)).Exec(ctx)
				})
		},
		func() (int, error) {
			return deleteInBatches(ctx,
				func(ctx context.Context, limit int) ([]string, error) {
					return s.db.AuthorizeCode.Query().Where(authorizecode.ExpiresAtLT(t)).Limit(limit).IDs(ctx)
				},
				func(ctx context.Context, ids []string) (int, error) {
					return s.db.AuthorizeCode.Delete().Where(authorizecode.IDIn(ids...), authorizecode.ExpiresAtLT(t)).Exec(ctx)
				})
		},
		func() (int, error) {
			return deleteInBatches(ctx,
				func(ctx context.Context, limit int) ([]string, error) {
					return s.db.PKCERequest.Query().Where(pkcerequest.ExpiresAtLT(t)).Limit(limit).IDs(ctx)
				},
				func(ctx context.Context, ids []string) (int, error) {
					return s.db.PKCERequest.Delete().Where(pkcerequest.IDIn(ids...), pkcerequest.ExpiresAtLT(t)).Exec(ctx)
				})
		},
	} {
		n, err := sweep()
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
