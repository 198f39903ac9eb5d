package fositestore

import (
	"context"
	"testing"
	"time"

	"github.com/ory/fosite"

	"idp/database"
	"idp/database/databasetest"
	"idp/oauth/token"
)

// TestLogins: a subject's live refresh-token chains, one per grant however
// often it was rotated, with when it began (its first token), when it was
// last used (its newest token) and the user agent its session carries;
// revoked, expired and other subjects' chains are left out. On every
// engine.
func TestLogins(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, request := tokenStore(t, db)
		rotatedAt := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
		s.now = func() time.Time { return rotatedAt }
		began := map[string]time.Time{}
		login := func(grant, sig, subject, ua string) {
			t.Helper()
			req := request(grant)
			req.Session.(*token.Session).Subject = subject
			req.Session.(*token.Session).UserAgent = ua
			began[grant] = req.RequestedAt
			if err := s.CreateRefreshTokenSession(ctx, sig, "at-"+sig, req); err != nil {
				t.Fatal(err)
			}
		}
		rotate := func(grant, presented, next, ua string) {
			t.Helper()
			req := request(grant)
			req.Session.(*token.Session).UserAgent = ua // as a refresh copies it
			data, err := EncodeRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Rotate(ctx, RowID(presented), next, "at-"+next, req, data); err != nil {
				t.Fatal(err)
			}
		}
		logins := func(subject string) map[string]Login {
			t.Helper()
			list, err := s.Logins(ctx, subject, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]Login{}
			for _, l := range list {
				if _, twice := out[l.RequestID]; twice {
					t.Errorf("grant %s listed twice", l.RequestID)
				}
				out[l.RequestID] = l
			}
			return out
		}

		login("g1", "rt-1", "7", "App/1 (phone)")
		rotate("g1", "rt-1", "rt-2", "App/1 (phone)")
		rotate("g1", "rt-2", "rt-3", "App/1 (phone)")
		login("g2", "rt-g2", "7", "")
		login("revoked", "rt-revoked", "7", "")
		if err := s.RevokeGrant(ctx, "revoked"); err != nil {
			t.Fatal(err)
		}
		expired := request("expired")
		expired.Session.(*token.Session).SetExpiresAt(fosite.RefreshToken, time.Now().Add(-time.Minute))
		if err := s.CreateRefreshTokenSession(ctx, "rt-expired", "", expired); err != nil {
			t.Fatal(err)
		}
		db.Ent.User.Create().SetID(8).SetUsername("other").SetEmail("other@example.com").SetPasswordHash("h").
			SetFirstName("O").SetLastName("O").ExecX(ctx)
		login("other", "rt-other", "8", "")

		got := logins("7")
		if len(got) != 2 {
			t.Fatalf("logins of 7: %v, want g1 and g2", got)
		}
		g1 := got["g1"]
		if g1.ClientID != "mobile" || g1.UserAgent != "App/1 (phone)" || !g1.LastUsedAt.Equal(rotatedAt) ||
			!near(g1.CreatedAt, began["g1"]) {
			t.Errorf("g1: %+v; want begun %v, last used %v", g1, began["g1"], rotatedAt)
		}
		if g2 := got["g2"]; g2.UserAgent != "" || !near(g2.CreatedAt, began["g2"]) || g2.LastUsedAt.IsZero() {
			t.Errorf("g2: %+v", g2)
		}
		if got := logins("8"); len(got) != 1 || got["other"].RequestID != "other" {
			t.Errorf("logins of 8: %v", got)
		}
		if got := logins("9"); len(got) != 0 {
			t.Errorf("logins of 9: %v", got)
		}

		// The chain's first row gone (swept once expired, while the chain
		// lives on): it began at the login's auth_time.
		authTime := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
		req := request("long")
		req.Session.(*token.Session).AuthTime = authTime
		if err := s.CreateRefreshTokenSession(ctx, "rt-long", "", req); err != nil {
			t.Fatal(err)
		}
		data, _ := EncodeRequest(req)
		if err := s.Rotate(ctx, RowID("rt-long"), "rt-long-2", "at-long-2", req, data); err != nil {
			t.Fatal(err)
		}
		db.Ent.RefreshToken.DeleteOneID(RowID("rt-long")).ExecX(ctx)
		if l := logins("7")["long"]; !l.CreatedAt.Equal(authTime) {
			t.Errorf("a chain without its first row: %+v, want begun at %v", l, authTime)
		}
	})
}

// TestGrantOfAccessToken: the grant of an access token, by its own row or
// by the refresh row that records it, only for its own subject.
func TestGrantOfAccessToken(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, request := tokenStore(t, db)
		if err := s.CreateAccessTokenSession(ctx, "at-login", request("g1")); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRefreshTokenSession(ctx, "rt-1", "at-refreshed", request("g2")); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, sig, subject string
			onRefreshRow       bool
			want               string
		}{
			{"own row", "at-login", "7", false, "g1"},
			{"on a refresh row", "at-refreshed", "7", true, "g2"},
			{"own row, looked for on refresh rows", "at-login", "7", true, ""},
			{"another subject", "at-login", "8", false, ""},
			{"another subject, refresh row", "at-refreshed", "8", true, ""},
			{"unknown", "at-unknown", "7", false, ""},
		}
		for _, tt := range tests {
			got, err := s.GrantOfAccessToken(ctx, tt.sig, tt.subject, tt.onRefreshRow)
			if err != nil || got != tt.want {
				t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
			}
		}
	})
}

// TestEndLogin: a subject ends its own grant (refresh tokens refused,
// access tokens off the record), never another subject's; ending one that
// is gone reports false.
func TestEndLogin(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, request := tokenStore(t, db)
		if err := s.CreateAccessTokenSession(ctx, "at-1", request("g1")); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRefreshTokenSession(ctx, "rt-1", "", request("g1")); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRefreshTokenSession(ctx, "rt-2", "at-2", request("g2")); err != nil {
			t.Fatal(err)
		}
		end := func(subject, grant string, want bool) {
			t.Helper()
			got, err := s.EndLogin(ctx, subject, grant)
			if err != nil || got != want {
				t.Errorf("EndLogin(%s, %s): %v, %v; want %v", subject, grant, got, err, want)
			}
		}
		live := func() bool {
			t.Helper()
			_, err := s.GetRefreshTokenSession(ctx, "rt-1", nil)
			active, aerr := s.AccessTokenActive(ctx, "at-1", "7", false)
			if aerr != nil {
				t.Fatal(aerr)
			}
			if (err == nil) != active {
				t.Fatalf("refresh usable %v, access token on record %v", err == nil, active)
			}
			return active
		}
		end("8", "g1", false)
		end("7", "unknown", false)
		if !live() {
			t.Fatal("another subject ended the login")
		}
		end("7", "g1", true)
		if live() {
			t.Error("the ended login still works")
		}
		end("7", "g1", false)
		if active, err := s.AccessTokenActive(ctx, "at-2", "7", true); !active || err != nil {
			t.Errorf("another grant of the user ended: %v, %v", active, err)
		}
	})
}

// near reports whether a time read back is t as the engine keeps it:
// MySQL and PostgreSQL in whole microseconds, SQLite as given.
func near(got, t time.Time) bool {
	d := got.Sub(t)
	return got.Location() == time.UTC && d > -time.Microsecond && d < time.Microsecond
}
