package oauth

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ory/fosite"

	"idp/database"
	"idp/database/databasetest"
	"idp/ent/refreshtoken"
	"idp/ent/user"
)

// TestActiveUser: the bearer check's one read returns the user, every field
// but the password hash, while the token's row is on record, and nothing
// once it is gone, on both engines and inside a transaction too.
func TestActiveUser(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		changed := time.Date(2026, 11, 1, 12, 30, 45, 123456000, time.UTC)
		pic := "u/7/abc"
		db.Ent.User.Create().SetID(7).SetUsername("ada").SetEmail("ada@example.com").SetPasswordHash("$argon2id$secret").
			SetFirstName("Ada").SetLastName("Lovelace").SetGender(user.GenderFemale).SetPictureKey(pic).
			SetPasswordChangedAt(changed).ExecX(ctx)
		db.Ent.User.Create().SetID(8).SetUsername("bob").SetEmail("bob@example.com").SetPasswordHash("h").
			SetFirstName("Bob").SetLastName("B").ExecX(ctx)
		for _, sig := range []string{"sig-ada", "sig-bob"} {
			db.Ent.AccessToken.Create().SetID(rowID(sig)).SetRequestID("r-" + sig).SetClientID("mobile").
				SetSubject("x").SetRequestedAt(changed).SetExpiresAt(changed.Add(time.Hour)).SetRequest([]byte("{}")).ExecX(ctx)
		}
		s := NewStore(db.Ent, nil, nil, nil)

		tests := []struct {
			name   string
			sig    string
			userID int64
			want   string // username, or "" for none
		}{
			{"live token", "sig-ada", 7, "ada"},
			{"user without picture", "sig-bob", 8, "bob"},
			{"unknown token", "sig-eve", 7, ""},
			{"unknown user", "sig-ada", 9, ""},
		}
		for _, tt := range tests {
			u, err := s.activeUser(ctx, tt.sig, false, tt.userID)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			switch {
			case tt.want == "" && u != nil:
				t.Errorf("%s: got user %d, want none", tt.name, u.ID)
			case tt.want != "" && (u == nil || u.Username != tt.want):
				t.Errorf("%s: got %v, want %s", tt.name, u, tt.want)
			}
		}

		u, _ := s.activeUser(ctx, "sig-ada", false, 7)
		want, _ := db.Ent.User.Get(ctx, 7)
		if u.ID != 7 || u.Email != want.Email || u.FirstName != "Ada" || u.LastName != "Lovelace" ||
			u.Gender != user.GenderFemale || u.PictureKey == nil || *u.PictureKey != pic ||
			!u.PasswordChangedAt.Equal(changed) || !u.CreatedAt.Equal(want.CreatedAt) || !u.UpdatedAt.Equal(want.UpdatedAt) {
			t.Errorf("fields: got %+v, want %+v", u, want)
		}
		if u.PasswordHash != "" {
			t.Errorf("the bearer check read the password hash")
		}
		if u, _ := s.activeUser(ctx, "sig-bob", false, 8); u.PictureKey != nil {
			t.Errorf("picture key %q, want none", *u.PictureKey)
		}

		// Inside a transaction, the read sees the transaction's writes.
		err := database.InTx(ctx, db.Ent, func(ctx context.Context) error {
			if err := s.RevokeAccessToken(ctx, "r-sig-ada"); err != nil {
				return err
			}
			u, err := s.activeUser(ctx, "sig-ada", false, 7)
			if err != nil {
				return err
			}
			if u != nil {
				t.Errorf("in the transaction that revoked it, the token still reads as live")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if u, err := s.activeUser(ctx, "sig-ada", false, 7); err != nil || u != nil {
			t.Errorf("after the revocation: %v, %v", u, err)
		}
	})
}

// tokenStore is a Store on db with the public client mobile, and
// tokenRequest a login of user 7 through it, as fosite hands them to the
// Store.
func tokenStore(t *testing.T, db *database.DB) (*Store, func(grant string) *fosite.Request) {
	t.Helper()
	ctx := context.Background()
	clients := NewClients(db.Ent, 0)
	if _, err := clients.Create(ctx, NewClient{ID: "mobile", Public: true, GrantTypes: []string{"password", "refresh_token"},
		Scopes: []string{"openid", "offline_access"}}); err != nil {
		t.Fatal(err)
	}
	client, err := clients.Get(ctx, "mobile")
	if err != nil {
		t.Fatal(err)
	}
	tokenRequest := func(grant string) *fosite.Request {
		sess := &Session{Subject: "7"}
		sess.SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Hour))
		sess.SetExpiresAt(fosite.RefreshToken, time.Now().Add(24*time.Hour))
		return &fosite.Request{ID: grant, RequestedAt: time.Now(), Client: client, Session: sess,
			GrantedScope: fosite.Arguments{"openid", "offline_access"}}
	}
	return NewStore(db.Ent, clients, nil, nil), tokenRequest
}

// TestAccessTokenOnRefreshRow: an access token issued by a refresh grant
// has no row of its own, only its refresh token's; it is live, readable
// for introspection, and each way of revoking it (its grant, its subject,
// the token itself) ends it, on both engines.
func TestAccessTokenOnRefreshRow(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		db.Ent.User.Create().SetID(7).SetUsername("ada").SetEmail("ada@example.com").SetPasswordHash("h").
			SetFirstName("Ada").SetLastName("L").ExecX(ctx)
		s, tokenRequest := tokenStore(t, db)

		// refreshGrant stores what a refresh grant stores, as fosite's
		// refresh handler does, and returns the access token's signature.
		refreshGrant := func(grant string) string {
			req := tokenRequest(grant)
			access, refresh := "at-"+grant, "rt-"+grant
			err := database.InTx(issuingRefreshGrant(ctx), db.Ent, func(ctx context.Context) error {
				if err := s.CreateAccessTokenSession(ctx, access, req); err != nil {
					return err
				}
				return s.CreateRefreshTokenSession(ctx, refresh, access, req)
			})
			if err != nil {
				t.Fatal(err)
			}
			return access
		}
		live := func(sig string) bool {
			t.Helper()
			active, err := s.accessTokenActive(ctx, sig, true)
			if err != nil {
				t.Fatal(err)
			}
			u, err := s.activeUser(ctx, sig, true, 7)
			if err != nil {
				t.Fatal(err)
			}
			if active != (u != nil) {
				t.Fatalf("%s: accessTokenActive %v, activeUser %v", sig, active, u)
			}
			_, err = s.GetAccessTokenSession(ctx, sig, nil)
			if active != (err == nil) {
				t.Fatalf("%s: active %v, GetAccessTokenSession %v", sig, active, err)
			}
			return active
		}

		sig := refreshGrant("g0")
		if n := db.Ent.AccessToken.Query().CountX(ctx); n != 0 {
			t.Errorf("a refresh grant wrote %d access token rows, want none", n)
		}
		if !live(sig) {
			t.Fatal("the refreshed access token is not live")
		}
		r, err := s.GetAccessTokenSession(ctx, sig, nil)
		if err != nil || r.GetID() != "g0" || r.GetSession().GetSubject() != "7" || r.GetClient().GetID() != "mobile" {
			t.Errorf("introspection's read: %v, %v", r, err)
		}
		if live("at-unknown") {
			t.Error("an unknown access token is live")
		}
		// The record is on the refresh row only: looked for among access
		// token rows, the token is unknown.
		if active, err := s.accessTokenActive(ctx, sig, false); active || err != nil {
			t.Errorf("found among access token rows: %v, %v", active, err)
		}

		tests := []struct {
			name   string
			revoke func(grant, sig string) error
		}{
			{"grant revoked", func(grant, _ string) error { return s.RevokeAccessToken(ctx, grant) }},
			{"subject revoked", func(string, string) error { return s.RevokeSubject(ctx, "7") }},
			{"token deleted", func(_, sig string) error { return s.DeleteAccessTokenSession(ctx, sig) }},
		}
		for i, tt := range tests {
			grant := fmt.Sprintf("g%d", i+1)
			sig, other := refreshGrant(grant), refreshGrant(grant+"-other")
			if err := tt.revoke(grant, sig); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if live(sig) {
				t.Errorf("%s: the access token is still live", tt.name)
			}
			// Another grant of the same user ends only with the subject.
			if got, want := live(other), tt.name != "subject revoked"; got != want {
				t.Errorf("%s: another grant's access token live = %v, want %v", tt.name, got, want)
			}
			s.RevokeSubject(ctx, "7")
		}
	})
}

// TestRefreshRotation: a refresh grant stores its new refresh token, with
// the rotation and the new access token, only while the presented token is
// active and not yet replaced; the replaced token then reads as used. Each
// case fails without one of the conditions of rotateQuery or the unique
// index on (request_id, parent_id). On both engines.
func TestRefreshRotation(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, request := tokenStore(t, db)
		// login stores a password grant's refresh token.
		login := func(grant, sig string) {
			t.Helper()
			if err := s.CreateRefreshTokenSession(ctx, sig, "", request(grant)); err != nil {
				t.Fatal(err)
			}
		}
		// refresh stores what fosite's refresh handler stores, in its
		// order, for presented → next.
		refresh := func(grant, presented, next string) error {
			ctx, err := s.BeginTX(issuingRefreshGrant(ctx))
			if err != nil {
				return err
			}
			req := request(grant)
			if err := s.RotateRefreshToken(ctx, grant, presented); err != nil {
				return err
			}
			if err := s.CreateAccessTokenSession(ctx, "at-"+next, req); err != nil {
				return err
			}
			if err := s.CreateRefreshTokenSession(ctx, next, "at-"+next, req); err != nil {
				s.Rollback(ctx)
				return err
			}
			return s.Commit(ctx)
		}
		usable := func(sig string) bool {
			t.Helper()
			_, err := s.GetRefreshTokenSession(ctx, sig, new(Session))
			if err != nil && !errors.Is(err, fosite.ErrInactiveToken) {
				t.Fatalf("read %s: %v", sig, err)
			}
			return err == nil
		}
		stored := func(sig string) bool {
			return db.Ent.RefreshToken.Query().Where(refreshtoken.ID(rowID(sig))).ExistX(ctx)
		}

		login("g1", "rt-1")
		// A refresh grant reads the token's user with the token, for
		// its ID token; other reads of a refresh token do not.
		db.Ent.User.Create().SetID(7).SetUsername("ada").SetEmail("ada@example.com").SetPasswordHash("$argon2id$secret").
			SetFirstName("Ada").SetLastName("Lovelace").ExecX(ctx)
		grantCtx := withRefreshGrant(ctx)
		if _, err := s.GetRefreshTokenSession(grantCtx, "rt-1", new(Session)); err != nil {
			t.Fatal(err)
		}
		if u := refreshGrantFrom(grantCtx).user; u == nil || u.ID != 7 || u.Username != "ada" || u.LastName != "Lovelace" || u.PasswordHash != "" {
			t.Errorf("the refresh grant's user: %+v", u)
		}
		gone := request("g0")
		gone.Session.(*Session).Subject = "8"
		if err := s.CreateRefreshTokenSession(ctx, "rt-gone", "", gone); err != nil {
			t.Fatal(err)
		}
		grantCtx = withRefreshGrant(ctx)
		if _, err := s.GetRefreshTokenSession(grantCtx, "rt-gone", new(Session)); err != nil || refreshGrantFrom(grantCtx).user != nil {
			t.Errorf("a token of a user that is gone: %v, user %+v; want no error and no user", err, refreshGrantFrom(grantCtx).user)
		}

		if err := refresh("g1", "rt-1", "rt-2"); err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if usable("rt-1") || !usable("rt-2") {
			t.Errorf("after a refresh: presented usable %v, new usable %v; want false, true", usable("rt-1"), usable("rt-2"))
		}
		if live, err := s.accessTokenActive(ctx, "at-rt-2", true); !live || err != nil {
			t.Errorf("the new access token: live %v, %v", live, err)
		}
		if n := db.Ent.AccessToken.Query().CountX(ctx); n != 0 {
			t.Errorf("a refresh grant wrote %d access token rows, want none", n)
		}

		// The presented token read as usable before another request
		// replaced it (two concurrent refreshes): the second write loses.
		err := refresh("g1", "rt-1", "rt-2b")
		if !errors.Is(err, fosite.ErrNotFound) || stored("rt-2b") {
			t.Errorf("second rotation of one token: %v, stored %v; want fosite.ErrNotFound, nothing stored", err, stored("rt-2b"))
		}

		// The grant was revoked between the read and the write (a replay
		// elsewhere, a password reset): nothing may outlive the revocation.
		login("g2", "rt-3")
		if err := s.RevokeRefreshToken(ctx, "g2"); err != nil {
			t.Fatal(err)
		}
		err = refresh("g2", "rt-3", "rt-4")
		if !errors.Is(err, fosite.ErrInactiveToken) || stored("rt-4") {
			t.Errorf("rotation of a revoked token: %v, stored %v; want fosite.ErrInactiveToken, nothing stored", err, stored("rt-4"))
		}

		// The request id is part of the condition: a token is rotated only
		// within its own grant.
		login("g3", "rt-5")
		if err := refresh("g-other", "rt-5", "rt-6"); err == nil || stored("rt-6") {
			t.Errorf("rotation under another grant: %v, stored %v; want an error, nothing stored", err, stored("rt-6"))
		}
		if !usable("rt-5") {
			t.Error("a failed rotation used up the presented token")
		}
	})
}

// issuingRefreshGrant is ctx as a refresh grant's once it issues tokens.
func issuingRefreshGrant(ctx context.Context) context.Context {
	ctx = withRefreshGrant(ctx)
	refreshGrantFrom(ctx).issuing = true
	return ctx
}

// TestTokenID: only a refresh grant's access token says in its jti that its
// record is on a refresh token's row.
func TestTokenID(t *testing.T) {
	plain, refreshed := tokenID(context.Background()), tokenID(issuingRefreshGrant(context.Background()))
	if onRefreshRow(plain) || !onRefreshRow(refreshed) || plain == refreshed[len(refreshRowPrefix):] {
		t.Errorf("jti %q and %q", plain, refreshed)
	}
	for range 1000 {
		if onRefreshRow(randomID()) {
			t.Fatal("a random id reads as a refresh grant's")
		}
	}
}
