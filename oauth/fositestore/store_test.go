package fositestore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"

	"idp/database"
	"idp/database/databasetest"
	"idp/ent/user"
	"idp/oauth/token"
	"idp/storage"
)

// staticClients is a client registry that never changes.
type staticClients map[string]*fosite.DefaultClient

func (c staticClients) Get(_ context.Context, id string) (fosite.Client, error) {
	if cl, ok := c[id]; ok {
		return cl, nil
	}
	return nil, fosite.ErrNotFound
}

// tokenStore is a Store on db with the public client mobile, and
// tokenRequest a login of user 7 through it, as fosite hands them to the
// Store.
func tokenStore(t *testing.T, db *database.DB) (*Store, func(grant string) *fosite.Request) {
	t.Helper()
	client := &fosite.DefaultClient{ID: "mobile", Public: true, GrantTypes: []string{"password", "refresh_token"},
		Scopes: []string{"openid", "offline_access"}}
	clients := staticClients{client.ID: client}
	tokenRequest := func(grant string) *fosite.Request {
		sess := &token.Session{Subject: "7"}
		sess.SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Hour))
		sess.SetExpiresAt(fosite.RefreshToken, time.Now().Add(24*time.Hour))
		return &fosite.Request{ID: grant, RequestedAt: time.Now(), Client: client, Session: sess,
			GrantedScope: fosite.Arguments{"openid", "offline_access"}}
	}
	// Tokens are written only for a user who exists.
	ctx := context.Background()
	if !db.Ent.User.Query().Where(user.ID(7)).ExistX(ctx) {
		db.Ent.User.Create().SetID(7).SetUsername("ada").SetEmail("ada@example.com").SetPasswordHash("h").
			SetFirstName("Ada").SetLastName("Lovelace").ExecX(ctx)
	}
	return New(storage.New(db), clients, nil, nil), tokenRequest
}

// ref is the reference of a test refresh token.
func ref(chain string, generation int64, sig string) token.RefreshRef {
	return token.RefreshRef{Chain: chain, Generation: generation, Signature: sig}
}

// TestAccessTokenOnChain: an access token issued by a refresh grant has
// no row of its own, only its chain's; it is live, readable for
// introspection, and each way of revoking it (its grant, its subject, the
// token itself) ends it, on every engine.
func TestAccessTokenOnChain(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		db.Ent.User.Create().SetID(7).SetUsername("ada").SetEmail("ada@example.com").SetPasswordHash("h").
			SetFirstName("Ada").SetLastName("L").ExecX(ctx)
		s, tokenRequest := tokenStore(t, db)

		// refreshGrant stores what a login and a refresh grant store: a
		// chain, rotated once, whose row records the access token
		// (Store.Rotate's). It returns the access token's signature.
		refreshGrant := func(grant string) string {
			req := tokenRequest(grant)
			access := "at-" + grant
			if err := s.CreateRefreshTokenSession(ctx, ref("c-"+grant, 0, "rt-"+grant).String(), "", req); err != nil {
				t.Fatal(err)
			}
			data, _ := EncodeRequest(req)
			if err := s.Rotate(ctx, ref("c-"+grant, 0, "rt-"+grant), ref("c-"+grant, 1, "rt-"+grant+"-2"), access, req, data); err != nil {
				t.Fatal(err)
			}
			return access
		}
		live := func(sig string) bool {
			t.Helper()
			chain := "c-" + strings.TrimPrefix(sig, "at-")
			active, err := s.AccessTokenActive(ctx, sig, "7", chain)
			if err != nil {
				t.Fatal(err)
			}
			if other, err := s.AccessTokenActive(ctx, sig, "8", chain); other || err != nil {
				t.Fatalf("%s: live for another subject: %v, %v", sig, other, err)
			}
			u, err := s.ActiveUser(ctx, sig, "7", chain, 7)
			if err != nil {
				t.Fatal(err)
			}
			if active != (u != nil) {
				t.Fatalf("%s: accessTokenActive %v, activeUser %v", sig, active, u)
			}
			_, err = s.GetAccessTokenSession(ctx, chain+"."+sig, nil)
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
		r, err := s.GetAccessTokenSession(ctx, "c-g0."+sig, nil)
		if err != nil || r.GetID() != "g0" || r.GetSession().GetSubject() != "7" || r.GetClient().GetID() != "mobile" {
			t.Errorf("introspection's read: %v, %v", r, err)
		}
		if live("at-unknown") {
			t.Error("an unknown access token is live")
		}
		// Another chain's record does not speak for it.
		if active, err := s.AccessTokenActive(ctx, sig, "7", "c-unknown"); active || err != nil {
			t.Errorf("found on another chain: %v, %v", active, err)
		}
		// The record is on the chain row only: looked for among access
		// token rows, the token is unknown.
		if active, err := s.AccessTokenActive(ctx, sig, "7", ""); active || err != nil {
			t.Errorf("found among access token rows: %v, %v", active, err)
		}

		tests := []struct {
			name   string
			revoke func(grant, sig string) error
		}{
			{"grant revoked", func(grant, _ string) error { return s.RevokeAccessToken(ctx, grant) }},
			{"subject revoked", func(string, string) error { return s.RevokeSubject(ctx, "7") }},
			{"token deleted", func(grant, sig string) error { return s.DeleteAccessTokenSession(ctx, "c-"+grant+"."+sig) }},
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

// TestRefreshRotation: Store.Rotate replaces the chain's newest token, with
// the new access token, only while the presented token is the newest and
// the chain active; the replaced token then reads as used, as the one the
// newest replaced. RecordReissue records another access token for a
// successor only while that successor is the newest, live token of its
// chain. Each case fails without one of the conditions of rotateQuery or
// reissueQuery. On every engine.
func TestRefreshRotation(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, request := tokenStore(t, db)
		at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
		s.now = func() time.Time { return at }
		login := func(grant string, r token.RefreshRef) {
			t.Helper()
			if err := s.CreateRefreshTokenSession(ctx, r.String(), "", request(grant)); err != nil {
				t.Fatal(err)
			}
		}
		rotate := func(grant string, presented, next token.RefreshRef) error {
			req := request(grant)
			data, err := EncodeRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			return s.Rotate(ctx, presented, next, "at-"+next.Signature, req, data)
		}
		reissue := func(grant string, next token.RefreshRef, access string) error {
			req := request(grant)
			data, _ := EncodeRequest(req)
			return s.RecordReissue(ctx, next, access, req, data)
		}
		usable := func(r token.RefreshRef) bool {
			t.Helper()
			_, err := s.GetRefreshTokenSession(ctx, r.String(), new(token.Session))
			if err != nil && !errors.Is(err, fosite.ErrInactiveToken) {
				t.Fatalf("read %s: %v", r, err)
			}
			return err == nil
		}
		read := func(chain string) *Chain {
			t.Helper()
			c, err := s.Chain(ctx, chain)
			if err != nil || c == nil {
				t.Fatalf("Chain(%s): %v, %v", chain, c, err)
			}
			return c
		}
		newest := func(r token.RefreshRef) bool { return read(r.Chain).Is(r) }
		rt1, rt2, rt2b, rt3 := ref("c1", 0, "rt-1"), ref("c1", 1, "rt-2"), ref("c1", 1, "rt-2b"), ref("c1", 2, "rt-3")

		login("g1", rt1)
		db.Ent.User.UpdateOneID(7).SetPasswordHash("$argon2id$secret").ExecX(ctx)
		// The refresh grant's one read: the chain, not rotated yet, and
		// its user without the password hash.
		p := read("c1")
		if !p.Active || !p.Is(rt1) || p.PrevHash != "" || p.User == nil || p.User.ID != 7 || p.User.Username != "ada" ||
			p.User.LastName != "Lovelace" || p.User.PasswordHash != "" {
			t.Errorf("presented token: %+v, user %+v", p, p.User)
		}
		gone := request("g0")
		gone.Session.(*token.Session).Subject = "8"
		db.Ent.User.Create().SetID(8).SetUsername("gone").SetEmail("gone@example.com").SetPasswordHash("h").
			SetFirstName("G").SetLastName("G").ExecX(ctx)
		if err := s.CreateRefreshTokenSession(ctx, ref("c0", 0, "rt-gone").String(), "", gone); err != nil {
			t.Fatal(err)
		}
		db.Ent.User.DeleteOneID(8).ExecX(ctx)
		if p := read("c0"); p.User != nil {
			t.Errorf("a token of a user that is gone reads user %+v", p.User)
		}
		if p, err := s.Chain(ctx, "c-unknown"); p != nil || err != nil {
			t.Errorf("unknown chain: %v, %v", p, err)
		}
		// Only a chain's first token starts one.
		if err := s.CreateRefreshTokenSession(ctx, ref("c9", 1, "rt-9").String(), "", request("g9")); err == nil {
			t.Error("a chain was started with a second generation's token")
		}

		if err := rotate("g1", rt1, rt2); err != nil {
			t.Fatalf("rotate: %v", err)
		}
		if usable(rt1) || !usable(rt2) {
			t.Errorf("after a rotation: presented usable %v, new usable %v; want false, true", usable(rt1), usable(rt2))
		}
		p = read("c1")
		if !p.Active || !p.Is(rt2) || !p.Replaced(rt1) || !p.RotatedAt.Equal(at) {
			t.Errorf("the rotated chain: %+v", p)
		}
		if live, err := s.AccessTokenActive(ctx, "at-rt-2", "7", "c1"); !live || err != nil {
			t.Errorf("the new access token: live %v, %v", live, err)
		}
		if n := db.Ent.AccessToken.Query().CountX(ctx); n != 0 {
			t.Errorf("a rotation wrote %d access token rows, want none", n)
		}

		// A second rotation of one token, with the same successor (a
		// concurrent refresh) or another: nothing is written.
		for _, next := range []token.RefreshRef{rt2, rt2b} {
			if err := rotate("g1", rt1, next); !errors.Is(err, ErrRevoked) {
				t.Errorf("second rotation to %s: %v, want ErrRevoked", next, err)
			}
		}
		if newest(rt2b) || !newest(rt2) || !read("c1").Replaced(rt1) {
			t.Errorf("a second rotation was stored: %+v", read("c1"))
		}
		if live, _ := s.AccessTokenActive(ctx, "at-rt-2", "7", "c1"); !live {
			t.Error("a lost rotation ended the winner's access token")
		}

		// The retry's access token gets a row of its own; the first
		// answer's stays on record.
		if err := reissue("g1", rt2, "at-retry"); err != nil {
			t.Fatalf("reissue: %v", err)
		}
		for sig, chain := range map[string]string{"at-retry": "", "at-rt-2": "c1"} {
			if live, err := s.AccessTokenActive(ctx, sig, "7", chain); !live || err != nil {
				t.Errorf("%s after the reissue: %v, %v", sig, live, err)
			}
		}
		// Once the successor is replaced in turn, nothing is reissued for it.
		if err := rotate("g1", rt2, rt3); err != nil {
			t.Fatal(err)
		}
		if err := reissue("g1", rt2, "at-late"); !errors.Is(err, ErrRevoked) {
			t.Errorf("reissue for a replaced token: %v, want ErrRevoked", err)
		}
		if p := read("c1"); p.Is(rt2) || p.Replaced(rt1) {
			t.Error("a replaced successor reads as the newest")
		}
		// The access tokens of the newest two refreshes are on record (an
		// app's requests in flight with the previous one keep working),
		// older ones not.
		if err := rotate("g1", rt3, ref("c1", 3, "rt-4")); err != nil {
			t.Fatal(err)
		}
		for sig, want := range map[string]bool{"at-rt-4": true, "at-rt-3": true, "at-rt-2": false} {
			if live, err := s.AccessTokenActive(ctx, sig, "7", "c1"); live != want || err != nil {
				t.Errorf("%s after two more rotations: live %v, %v; want %v", sig, live, err, want)
			}
		}

		// The grant was revoked between the read and the write (a replay
		// elsewhere, a password reset): nothing may outlive the revocation.
		rt4, rt5 := ref("c2", 0, "rt-4"), ref("c2", 1, "rt-5")
		login("g2", rt4)
		if err := s.RevokeGrant(ctx, "g2"); err != nil {
			t.Fatal(err)
		}
		if err := rotate("g2", rt4, rt5); !errors.Is(err, ErrRevoked) || newest(rt5) {
			t.Errorf("rotation of a revoked token: %v, stored %v; want ErrRevoked, nothing stored", err, newest(rt5))
		}
		if err := reissue("g2", rt4, "at-revoked"); !errors.Is(err, ErrRevoked) {
			t.Errorf("reissue for a revoked token: %v, want ErrRevoked", err)
		}
		if read("c2").Active {
			t.Error("the revoked token reads as active")
		}

		// The request id is part of the condition: a token is rotated only
		// within its own grant.
		rt6, rt7 := ref("c3", 0, "rt-6"), ref("c3", 1, "rt-7")
		login("g3", rt6)
		if err := rotate("g-other", rt6, rt7); err == nil || newest(rt7) {
			t.Errorf("rotation under another grant: %v, stored %v; want an error, nothing stored", err, newest(rt7))
		}
		if !usable(rt6) {
			t.Error("a failed rotation used up the presented token")
		}
	})
}

// TestChainExpiry: a chain lives until its newest token expires, each
// rotation moving that on, and the sweeper removes it after; a rotation
// for a user who is gone writes nothing. On every engine.
func TestChainExpiry(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, request := tokenStore(t, db)
		soon := request("g1")
		soon.Session.(*token.Session).SetExpiresAt(fosite.RefreshToken, time.Now().Add(time.Minute))
		if err := s.CreateRefreshTokenSession(ctx, ref("c1", 0, "rt-1").String(), "", soon); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRefreshTokenSession(ctx, ref("c2", 0, "rt-2").String(), "", soon); err != nil {
			t.Fatal(err)
		}
		later := request("g1") // a day ahead
		data, _ := EncodeRequest(later)
		if err := s.Rotate(ctx, ref("c1", 0, "rt-1"), ref("c1", 1, "rt-1b"), "at-1b", later, data); err != nil {
			t.Fatal(err)
		}
		n, err := s.DeleteExpired(ctx, time.Now().Add(time.Hour))
		if err != nil || n != 1 {
			t.Errorf("DeleteExpired = %d, %v; want the one chain not rotated", n, err)
		}
		if c, _ := s.Chain(ctx, "c2"); c != nil {
			t.Error("the expired chain is still there")
		}
		if c, _ := s.Chain(ctx, "c1"); c == nil {
			t.Fatal("the rotated chain was swept with its first token's expiry")
		}

		db.Ent.User.DeleteOneID(7).ExecX(ctx)
		if err := s.Rotate(ctx, ref("c1", 1, "rt-1b"), ref("c1", 2, "rt-1c"), "at-1c", later, data); !errors.Is(err, ErrRevoked) {
			t.Errorf("rotation for a user who is gone: %v, want ErrRevoked", err)
		}
		if c, _ := s.Chain(ctx, "c1"); c == nil || c.Generation != 1 {
			t.Errorf("rotation for a user who is gone wrote %+v", c)
		}
	})
}
