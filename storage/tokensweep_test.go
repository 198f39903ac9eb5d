package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"idp/database"
	"idp/ent"
	"idp/ent/accesstoken"
	"idp/ent/authorizecode"
	"idp/ent/pkcerequest"
	"idp/ent/refreshchain"
)

// TestDeleteExpiredTokensInBatches: a sweep over more expired access-token
// rows than one batch holds deletes all of them, in several statements,
// and none of the live ones. On every engine.
func TestDeleteExpiredTokensInBatches(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Second)
		const expired, live = 2*database.SweepBatch + 17, 5
		for first := 0; first < expired+live; first += 500 {
			var rows []*ent.AccessTokenCreate
			for i := first; i < min(first+500, expired+live); i++ {
				exp := now.Add(-time.Minute)
				if i >= expired {
					exp = now.Add(time.Hour)
				}
				rows = append(rows, s.db.AccessToken.Create().SetID(fmt.Sprint("at-", i)).SetRequestID(fmt.Sprint("r-", i)).
					SetClientID("mobile").SetSubject("7").SetRequestedAt(now.Add(-time.Hour)).SetExpiresAt(exp).SetRequest([]byte("{}")))
			}
			s.db.AccessToken.CreateBulk(rows...).ExecX(ctx)
		}
		n, err := s.DeleteExpiredTokens(ctx, now)
		if err != nil || n != expired {
			t.Fatalf("DeleteExpiredTokens = %d, %v; want the %d expired rows", n, err, expired)
		}
		if left := s.db.AccessToken.Query().CountX(ctx); left != live {
			t.Errorf("%d access-token rows left, want the %d live ones", left, live)
		}
	})
}

// TestDeleteExpiredTokens: the sweep removes access token, chain, code and
// PKCE rows past their end, revoked or used or not, and keeps live ones.
// On every engine.
func TestDeleteExpiredTokens(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		newTestUserWithID(t, s, 7, "ada")
		now := time.Now().UTC().Truncate(time.Second)
		for _, e := range []struct {
			id  string
			exp time.Time
		}{{"old", now.Add(-time.Hour)}, {"live", now.Add(time.Hour)}} {
			rec := tokenRecord(e.id, "g-"+e.id, e.exp)
			for _, create := range []func(context.Context, TokenRecord) error{s.CreateAccessToken, s.CreateAuthorizeCode, s.CreatePKCERequest} {
				if err := create(ctx, rec); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.CreateRefreshChain(ctx, rec, "h-"+e.id, now); err != nil {
				t.Fatal(err)
			}
			// Revoked and used rows are swept by their expiry alone.
			if err := s.RevokeRefreshChains(ctx, rec.RequestID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.InvalidateAuthorizeCode(ctx, e.id); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.DeleteExpiredTokens(ctx, now)
		if err != nil || n != 4 {
			t.Fatalf("DeleteExpiredTokens = %d, %v; want 4", n, err)
		}
		for kind, left := range map[string]bool{
			"access token": s.db.AccessToken.Query().Where(accesstoken.ID("old")).ExistX(ctx),
			"chain":        s.db.RefreshChain.Query().Where(refreshchain.ID("old")).ExistX(ctx),
			"code":         s.db.AuthorizeCode.Query().Where(authorizecode.ID("old")).ExistX(ctx),
			"pkce":         s.db.PKCERequest.Query().Where(pkcerequest.ID("old")).ExistX(ctx),
		} {
			if left {
				t.Errorf("the expired %s row is still there", kind)
			}
		}
		for kind, n := range map[string]int{
			"access token": s.db.AccessToken.Query().CountX(ctx),
			"chain":        s.db.RefreshChain.Query().CountX(ctx),
			"code":         s.db.AuthorizeCode.Query().CountX(ctx),
			"pkce":         s.db.PKCERequest.Query().CountX(ctx),
		} {
			if n != 1 {
				t.Errorf("%d %s rows left, want the live one", n, kind)
			}
		}
	})
}

// TestDeleteExpiredTokensOldestFirst: each batch of the sweep takes the
// rows that expired first, whatever order they were written in, so that a
// batch reads its rows at the front of the expiry index instead of
// wherever the engine's scan of the table finds them. The rows are
// written newest expiry first; the sweep is stopped after its first batch.
// On every engine.
func TestDeleteExpiredTokensOldestFirst(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		const extra = 200
		bg := context.Background()
		now := time.Now().UTC().Truncate(time.Second)
		for first := 0; first < database.SweepBatch+extra; first += 500 {
			var rows []*ent.AccessTokenCreate
			for i := first; i < min(first+500, database.SweepBatch+extra); i++ {
				rows = append(rows, s.db.AccessToken.Create().SetID(fmt.Sprintf("at-%05d", i)).SetRequestID(fmt.Sprint("r-", i)).
					SetClientID("mobile").SetSubject("7").SetRequestedAt(now.Add(-time.Hour)).
					SetExpiresAt(now.Add(-time.Duration(i+1)*time.Second)).SetRequest([]byte("{}")))
			}
			s.db.AccessToken.CreateBulk(rows...).ExecX(bg)
		}
		ctx, cancel := context.WithCancel(bg)
		defer cancel()
		counted := sweepFirstBatchOnly(s, accesstoken.Table, cancel)
		n, err := counted.DeleteExpiredTokens(ctx, now)
		if n != database.SweepBatch || !errors.Is(err, context.Canceled) {
			t.Fatalf("DeleteExpiredTokens stopped after its first batch = %d, %v; want %d, context.Canceled", n, err, database.SweepBatch)
		}
		left := s.db.AccessToken.Query().Order(accesstoken.ByID()).IDsX(bg)
		want := make([]string, extra)
		for i := range want {
			want[i] = fmt.Sprintf("at-%05d", i)
		}
		if !slices.Equal(left, want) {
			t.Errorf("after one batch %d rows are left (from %v), want the %d that expired last", len(left), left[:min(3, len(left))], extra)
		}
	})
}
