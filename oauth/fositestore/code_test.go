package fositestore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/ory/fosite"

	"idp/database"
	"idp/database/databasetest"
	"idp/oauth/token"
)

// codeRequest is an authorization request of user 7 through the client of
// tokenStore, with a code that expires at exp.
func codeRequest(t *testing.T, s *Store, id string, exp time.Time) *fosite.Request {
	t.Helper()
	client, err := s.GetClient(context.Background(), "mobile")
	if err != nil {
		t.Fatal(err)
	}
	sess := &token.Session{Subject: "7", AuthTime: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	sess.SetExpiresAt(fosite.AuthorizeCode, exp)
	return &fosite.Request{ID: id, RequestedAt: time.Now().UTC().Truncate(time.Second), Client: client, Session: sess,
		RequestedScope: fosite.Arguments{"openid", "offline_access"}, GrantedScope: fosite.Arguments{"openid"},
		Form: url.Values{"code_challenge": {"abc"}, "code_challenge_method": {"S256"}}}
}

// TestAuthorizeCode: a code reads back as it was stored; once invalidated
// it reads back with ErrInvalidatedAuthorizeCode (and the request, which
// fosite needs to revoke the first redemption's tokens), and cannot be
// invalidated again; an unknown code is fosite.ErrNotFound.
func TestAuthorizeCode(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, _ := tokenStore(t, db)
		req := codeRequest(t, s, "grant-1", time.Now().UTC().Truncate(time.Second).Add(10*time.Minute))
		if err := s.CreateAuthorizeCodeSession(ctx, "code-sig", req); err != nil {
			t.Fatal(err)
		}
		row := db.Ent.AuthorizeCode.GetX(ctx, RowID("code-sig"))
		if !row.Active || row.RequestID != "grant-1" || row.ClientID != "mobile" || row.Subject != "7" ||
			!row.ExpiresAt.Equal(req.Session.GetExpiresAt(fosite.AuthorizeCode)) {
			t.Errorf("row = %+v", row)
		}

		check := func(name string, wantErr error) {
			t.Helper()
			sess := new(token.Session)
			r, err := s.GetAuthorizeCodeSession(ctx, "code-sig", sess)
			if !errors.Is(err, wantErr) && !(wantErr == nil && err == nil) {
				t.Fatalf("%s: err = %v, want %v", name, err, wantErr)
			}
			if r == nil {
				t.Fatalf("%s: no request", name)
			}
			if r.GetID() != "grant-1" || r.GetClient().GetID() != "mobile" || !r.GetRequestedAt().Equal(req.RequestedAt) ||
				strings.Join(r.GetGrantedScopes(), " ") != "openid" || strings.Join(r.GetRequestedScopes(), " ") != "openid offline_access" ||
				r.GetRequestForm().Get("code_challenge") != "abc" {
				t.Errorf("%s: request = %+v", name, r)
			}
			if r.GetSession() != sess || sess.Subject != "7" || !sess.AuthTime.Equal(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)) {
				t.Errorf("%s: session not decoded into the one passed: %+v", name, r.GetSession())
			}
		}
		check("fresh code", nil)

		if err := s.InvalidateAuthorizeCodeSession(ctx, "code-sig"); err != nil {
			t.Fatalf("invalidate: %v", err)
		}
		check("used code", fosite.ErrInvalidatedAuthorizeCode)
		if err := s.InvalidateAuthorizeCodeSession(ctx, "code-sig"); !errors.Is(err, ErrCodeUsed) {
			t.Errorf("second invalidation: %v, want ErrCodeUsed", err)
		}

		if _, err := s.GetAuthorizeCodeSession(ctx, "other", new(token.Session)); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("unknown code: %v, want ErrNotFound", err)
		}
		if err := s.InvalidateAuthorizeCodeSession(ctx, "other"); !errors.Is(err, ErrCodeUsed) {
			t.Errorf("invalidating an unknown code: %v, want ErrCodeUsed", err)
		}
	})
}

// TestCodeExpiryDefault: a session that names no code lifetime still
// gives the row an end, so the sweep removes it.
func TestCodeExpiryDefault(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, _ := tokenStore(t, db)
		req := codeRequest(t, s, "g", time.Time{})
		req.Session.(*token.Session).ExpiresAt = nil
		if err := s.CreateAuthorizeCodeSession(ctx, "c", req); err != nil {
			t.Fatal(err)
		}
		row := db.Ent.AuthorizeCode.GetX(ctx, RowID("c"))
		if want := req.RequestedAt.Add(5 * time.Minute); !row.ExpiresAt.Equal(want) {
			t.Errorf("expires_at = %v, want %v", row.ExpiresAt, want)
		}
	})
}

// TestConcurrentRedemption: two redemptions of one code, each as fosite
// runs it (the code read before, then invalidation and the access token
// in a transaction), racing: exactly one commits its token, the other gets
// ErrCodeUsed (ory/fosite#778). On MySQL and PostgreSQL both transactions
// are open before either invalidates; SQLite transactions take the write
// lock at begin, so there they run one after the other.
func TestConcurrentRedemption(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, _ := tokenStore(t, db)
		for round := range 5 {
			sig := fmt.Sprintf("code-%d", round)
			grant := fmt.Sprintf("grant-%d", round)
			if err := s.CreateAuthorizeCodeSession(ctx, sig, codeRequest(t, s, grant, time.Now().Add(time.Minute))); err != nil {
				t.Fatal(err)
			}
			var (
				opened sync.WaitGroup
				done   sync.WaitGroup
				errs   [2]error
			)
			opened.Add(2)
			for i := range 2 {
				done.Add(1)
				go func() {
					defer done.Done()
					r, err := s.GetAuthorizeCodeSession(ctx, sig, new(token.Session))
					if err != nil {
						opened.Done()
						errs[i] = err
						return
					}
					txCtx, err := s.BeginTX(ctx)
					if db.Dialect != dialect.SQLite {
						opened.Done()
						opened.Wait()
					}
					if err != nil {
						errs[i] = err
						return
					}
					errs[i] = func() error {
						if err := s.InvalidateAuthorizeCodeSession(txCtx, sig); err != nil {
							return err
						}
						if err := s.CreateAccessTokenSession(txCtx, fmt.Sprintf("at-%s-%d", sig, i), r); err != nil {
							return err
						}
						return s.Commit(txCtx)
					}()
					if errs[i] != nil {
						s.Rollback(txCtx)
					}
				}()
			}
			done.Wait()
			won := 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case errors.Is(err, ErrCodeUsed), errors.Is(err, fosite.ErrInvalidatedAuthorizeCode):
				default:
					t.Errorf("round %d: unexpected error %v", round, err)
				}
			}
			if won != 1 {
				t.Errorf("round %d: %d redemptions succeeded (%v), want exactly 1", round, won, errs)
			}
			if n := db.Ent.AccessToken.Query().CountX(ctx); n != round+1 {
				t.Errorf("round %d: %d access token rows, want %d", round, n, round+1)
			}
		}
	})
}

// TestPKCERequest: the challenge reads back by the code's signature, and
// stays until its code is used.
func TestPKCERequest(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, _ := tokenStore(t, db)
		req := codeRequest(t, s, "grant-p", time.Now().Add(time.Minute))
		if err := s.CreatePKCERequestSession(ctx, "code-sig", req); err != nil {
			t.Fatal(err)
		}
		sess := new(token.Session)
		r, err := s.GetPKCERequestSession(ctx, "code-sig", sess)
		if err != nil {
			t.Fatal(err)
		}
		if r.GetID() != "grant-p" || r.GetRequestForm().Get("code_challenge") != "abc" ||
			r.GetRequestForm().Get("code_challenge_method") != "S256" || sess.Subject != "7" {
			t.Errorf("request = %+v", r)
		}
		if _, err := s.GetPKCERequestSession(ctx, "other", new(token.Session)); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("unknown: %v, want ErrNotFound", err)
		}
		// fosite deletes the challenge before it compares the verifier:
		// the challenge stays, so that the code sent again is checked
		// against it again.
		if err := s.DeletePKCERequestSession(ctx, "code-sig"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetPKCERequestSession(ctx, "code-sig", new(token.Session)); err != nil {
			t.Errorf("after fosite's delete: %v, want the challenge", err)
		}
		// It goes with its code.
		if err := s.CreateAuthorizeCodeSession(ctx, "code-sig", req); err != nil {
			t.Fatal(err)
		}
		if err := s.InvalidateAuthorizeCodeSession(ctx, "code-sig"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetPKCERequestSession(ctx, "code-sig", new(token.Session)); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("after the code was used: %v, want ErrNotFound", err)
		}
	})
}

// TestDeleteExpiredCodes: the sweep removes code and PKCE rows past their
// end, used or not, and keeps live ones.
func TestDeleteExpiredCodes(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, _ := tokenStore(t, db)
		now := time.Now()
		for _, c := range []struct {
			sig string
			exp time.Time
		}{{"old", now.Add(-time.Hour)}, {"old-used", now.Add(-time.Minute)}, {"live", now.Add(time.Hour)}} {
			req := codeRequest(t, s, "g-"+c.sig, c.exp)
			if err := s.CreateAuthorizeCodeSession(ctx, c.sig, req); err != nil {
				t.Fatal(err)
			}
			if err := s.CreatePKCERequestSession(ctx, c.sig, req); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.InvalidateAuthorizeCodeSession(ctx, "old-used"); err != nil {
			t.Fatal(err)
		}
		// Two codes and one challenge: the used code's went with its use.
		n, err := s.DeleteExpired(ctx, now)
		if err != nil || n != 3 {
			t.Fatalf("DeleteExpired = %d, %v; want 3", n, err)
		}
		tests := []struct {
			sig  string
			gone bool
		}{{"old", true}, {"old-used", true}, {"live", false}}
		for _, tt := range tests {
			_, cerr := s.GetAuthorizeCodeSession(ctx, tt.sig, new(token.Session))
			_, perr := s.GetPKCERequestSession(ctx, tt.sig, new(token.Session))
			for kind, err := range map[string]error{"code": cerr, "pkce": perr} {
				if gone := errors.Is(err, fosite.ErrNotFound); gone != tt.gone {
					t.Errorf("%s %s: err %v, want gone=%v", kind, tt.sig, err, tt.gone)
				}
			}
		}
	})
}
