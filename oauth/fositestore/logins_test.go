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
// last used (its newest token's rotation) and the user agent its session carries;
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
			if err := s.CreateRefreshTokenSession(ctx, ref("c-"+grant, 0, sig).String(), "at-"+sig, req); err != nil {
				t.Fatal(err)
			}
		}
		rotate := func(grant string, generation int64, presented, next, ua string) {
			t.Helper()
			req := request(grant)
			req.Session.(*token.Session).UserAgent = ua // as a refresh copies it
			data, err := EncodeRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Rotate(ctx, ref("c-"+grant, generation, presented), ref("c-"+grant, generation+1, next), "at-"+next, req, data); err != nil {
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
		rotate("g1", 0, "rt-1", "rt-2", "App/1 (phone)")
		rotate("g1", 1, "rt-2", "rt-3", "App/1 (phone)")
		login("g2", "rt-g2", "7", "")
		login("revoked", "rt-revoked", "7", "")
		if err := s.RevokeGrant(ctx, "revoked"); err != nil {
			t.Fatal(err)
		}
		expired := request("expired")
		expired.Session.(*token.Session).SetExpiresAt(fosite.RefreshToken, time.Now().Add(-time.Minute))
		if err := s.CreateRefreshTokenSession(ctx, ref("c-expired", 0, "rt-expired").String(), "", expired); err != nil {
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

	})
}

// TestGrantOfAccessToken: the grant of an access token, by its own row or
// by the chain row that records it, only for its own subject.
func TestGrantOfAccessToken(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, request := tokenStore(t, db)
		if err := s.CreateAccessTokenSession(ctx, "at-login", request("g1")); err != nil {
			t.Fatal(err)
		}
		refreshed(t, s, request("g2"), "c2", "at-refreshed")
		tests := []struct {
			name, sig, subject string
			chain              string
			want               string
		}{
			{"own row", "at-login", "7", "", "g1"},
			{"on a chain row", "at-refreshed", "7", "c2", "g2"},
			{"own row, looked for on a chain row", "at-login", "7", "c2", ""},
			{"on a chain row, looked for on another", "at-refreshed", "7", "c1", ""},
			{"another subject", "at-login", "8", "", ""},
			{"another subject, chain row", "at-refreshed", "8", "c2", ""},
			{"unknown", "at-unknown", "7", "", ""},
		}
		for _, tt := range tests {
			got, err := s.GrantOfAccessToken(ctx, tt.sig, tt.subject, tt.chain)
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
		if err := s.CreateRefreshTokenSession(ctx, ref("c1", 0, "rt-1").String(), "", request("g1")); err != nil {
			t.Fatal(err)
		}
		refreshed(t, s, request("g2"), "c2", "at-2")
		end := func(subject, grant string, want bool) {
			t.Helper()
			got, err := s.EndLogin(ctx, subject, grant)
			if err != nil || got != want {
				t.Errorf("EndLogin(%s, %s): %v, %v; want %v", subject, grant, got, err, want)
			}
		}
		live := func() bool {
			t.Helper()
			_, err := s.GetRefreshTokenSession(ctx, ref("c1", 0, "rt-1").String(), nil)
			active, aerr := s.AccessTokenActive(ctx, "at-1", "7", "")
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
		if active, err := s.AccessTokenActive(ctx, "at-2", "7", "c2"); !active || err != nil {
			t.Errorf("another grant of the user ended: %v, %v", active, err)
		}
	})
}

// refreshed stores a login's chain for req and its first refresh, which
// records the access token access on the chain row.
func refreshed(t *testing.T, s *Store, req *fosite.Request, chain, access string) {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateRefreshTokenSession(ctx, ref(chain, 0, "rt-"+chain).String(), "", req); err != nil {
		t.Fatal(err)
	}
	data, _ := EncodeRequest(req)
	if err := s.Rotate(ctx, ref(chain, 0, "rt-"+chain), ref(chain, 1, "rt-"+chain+"-2"), access, req, data); err != nil {
		t.Fatal(err)
	}
}

// near reports whether a time read back is t as the engine keeps it:
// MySQL and PostgreSQL in whole microseconds, SQLite as given.
func near(got, t time.Time) bool {
	d := got.Sub(t)
	return got.Location() == time.UTC && d > -time.Microsecond && d < time.Microsecond
}
