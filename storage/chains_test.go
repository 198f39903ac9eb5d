package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

// mustChain starts chain for grant of user 7, its first token's hash
// being hash.
func mustChain(t *testing.T, s *Store, chain, grant, hash string) {
	t.Helper()
	if err := s.CreateRefreshChain(context.Background(), tokenRecord(chain, grant, time.Now().Add(24*time.Hour)), hash,
		time.Now().UTC().Truncate(time.Microsecond)); err != nil {
		t.Fatal(err)
	}
}

// TestRefreshChainWithUser: the refresh grant's one read gives the chain
// as written, with its user but not the user's password hash; the user of
// an erased account is nil; an unknown chain is ErrNotFound; a chain is not
// started for a user who is gone. On every engine.
func TestRefreshChainWithUser(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		newTestUserWithID(t, s, 7, "ada")
		at := time.Date(2026, 11, 2, 10, 0, 0, 123456000, time.UTC)
		if err := s.CreateRefreshChain(ctx, tokenRecord("c1", "g1", at.Add(time.Hour)), "h1", at); err != nil {
			t.Fatal(err)
		}
		c, err := s.RefreshChainWithUser(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if !c.Active || string(c.Request) != `{"id":"g1"}` || c.Generation != 0 || c.Hash != "h1" || c.PrevHash != "" ||
			!c.RotatedAt.Equal(at) || c.User == nil || c.User.ID != 7 || c.User.Username != "ada" || c.User.PasswordHash != "" {
			t.Errorf("chain %+v, user %+v", c, c.User)
		}
		if _, err := s.RefreshChainWithUser(ctx, "c-unknown"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown chain: %v, want ErrNotFound", err)
		}

		newTestUserWithID(t, s, 8, "gone")
		gone := tokenRecord("c2", "g2", at.Add(time.Hour))
		gone.Subject, gone.UserID = "8", 8
		if err := s.CreateRefreshChain(ctx, gone, "h2", at); err != nil {
			t.Fatal(err)
		}
		s.db.User.DeleteOneID(8).ExecX(ctx)
		if c, err := s.RefreshChainWithUser(ctx, "c2"); err != nil || c.User != nil {
			t.Errorf("the chain of an erased user: %+v, %v; want no user", c, err)
		}
		gone.ID = "c3"
		if err := s.CreateRefreshChain(ctx, gone, "h3", at); !errors.Is(err, ErrTokenUserGone) {
			t.Errorf("a chain for a user who is gone: %v, want ErrTokenUserGone", err)
		}
	})
}

// TestRotateRefreshChain: the rotation's conditional UPDATE writes only
// while the presented token (hash and generation) is the newest, the chain
// belongs to the grant and is active and the user exists; a rotation moves
// the newest token and its access token to the previous ones. The reissue
// writes an access token row under the same conditions. Each case fails
// without one of the conditions. On every engine.
func TestRotateRefreshChain(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		newTestUserWithID(t, s, 7, "ada")
		mustChain(t, s, "c1", "g1", "h0")
		at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
		exp := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
		rotation := func(presented string, gen int64, next string) ChainRotation {
			return ChainRotation{Chain: "c1", PresentedHash: presented, PresentedGeneration: gen, RequestID: "g1", UserID: 7,
				NextHash: next, NextGeneration: gen + 1, RotatedAt: at, Access: "at-" + next, ExpiresAt: exp,
				Request: []byte(`{"id":"g1","n":"` + next + `"}`)}
		}
		rotate := func(r ChainRotation) bool {
			t.Helper()
			ok, err := s.RotateRefreshChain(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		read := func() *RefreshChain {
			t.Helper()
			c, err := s.RefreshChainWithUser(ctx, "c1")
			if err != nil {
				t.Fatal(err)
			}
			return c
		}

		if !rotate(rotation("h0", 0, "h1")) {
			t.Fatal("the first rotation did not write")
		}
		c := read()
		if c.Hash != "h1" || c.Generation != 1 || c.PrevHash != "h0" || !c.RotatedAt.Equal(at) ||
			string(c.Request) != `{"id":"g1","n":"h1"}` || !c.Active {
			t.Errorf("after a rotation: %+v", c)
		}
		if ok, _ := s.AccessTokenActive(ctx, "at-h1", "7", "c1"); !ok {
			t.Error("the rotation's access token is not on record")
		}
		if data, err := s.ChainAccessTokenRequest(ctx, "c1", "at-h1"); err != nil || string(data) != `{"id":"g1","n":"h1"}` {
			t.Errorf("ChainAccessTokenRequest = %s, %v", data, err)
		}

		// Each condition, broken, keeps the row as it is.
		for name, r := range map[string]ChainRotation{
			"not the newest hash":       rotation("h0", 1, "h2"),
			"not the newest generation": rotation("h1", 0, "h2"),
			"another grant":             func() ChainRotation { r := rotation("h1", 1, "h2"); r.RequestID = "g-other"; return r }(),
			"another chain":             func() ChainRotation { r := rotation("h1", 1, "h2"); r.Chain = "c-other"; return r }(),
			"a user who is gone":        func() ChainRotation { r := rotation("h1", 1, "h2"); r.UserID = 9; return r }(),
		} {
			if rotate(r) {
				t.Errorf("%s: the rotation wrote", name)
			}
			if c := read(); c.Hash != "h1" || c.Generation != 1 {
				t.Errorf("%s: the chain changed: %+v", name, c)
			}
		}

		// The newest two access tokens stay on record, older ones not.
		if !rotate(rotation("h1", 1, "h2")) || !rotate(rotation("h2", 2, "h3")) {
			t.Fatal("later rotations did not write")
		}
		for id, want := range map[string]bool{"at-h3": true, "at-h2": true, "at-h1": false} {
			if ok, err := s.AccessTokenActive(ctx, id, "7", "c1"); ok != want || err != nil {
				t.Errorf("%s: on record %v, %v; want %v", id, ok, err, want)
			}
		}
		if err := s.ForgetChainAccessToken(ctx, "c1", "at-h2"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.AccessTokenActive(ctx, "at-h2", "7", "c1"); ok {
			t.Error("a forgotten access token is still on record")
		}
		if ok, _ := s.AccessTokenActive(ctx, "at-h3", "7", "c1"); !ok {
			t.Error("forgetting the previous access token forgot the newest")
		}

		// The reissue: only for the newest token of an active chain of the
		// grant and an existing user.
		reissue := func(id, hash string, gen int64, grant string, userID int64) bool {
			t.Helper()
			rec := tokenRecord(id, grant, exp)
			rec.UserID = userID
			ok, err := s.ReissueAccessToken(ctx, rec, "c1", hash, gen)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !reissue("at-re", "h3", 3, "g1", 7) {
			t.Error("the reissue did not write")
		}
		if ok, _ := s.AccessTokenActive(ctx, "at-re", "7", ""); !ok {
			t.Error("the reissued access token has no row")
		}
		for name, ok := range map[string]bool{
			"not the newest":     reissue("at-x1", "h2", 2, "g1", 7),
			"another grant":      reissue("at-x2", "h3", 3, "g-other", 7),
			"a user who is gone": reissue("at-x3", "h3", 3, "g1", 9),
		} {
			if ok {
				t.Errorf("reissue for %s wrote", name)
			}
		}

		// A revoked chain is neither rotated nor reissued for.
		if err := s.RevokeRefreshChains(ctx, "g1"); err != nil {
			t.Fatal(err)
		}
		if rotate(rotation("h3", 3, "h4")) || reissue("at-x4", "h3", 3, "g1", 7) {
			t.Error("a revoked chain was written")
		}
		if read().Active {
			t.Error("the revoked chain reads as active")
		}
	})
}

// TestEndRefreshChain: the chain ends (becomes inactive) once, only with
// its newest token and its own grant; HasActiveChain says whether a
// subject's grant still has an active chain; a chain is deleted only by
// its newest token. On every engine.
func TestEndRefreshChain(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		newTestUserWithID(t, s, 7, "ada")
		mustChain(t, s, "c1", "g1", "h1")
		has := func(subject, grant string) bool {
			t.Helper()
			ok, err := s.HasActiveChain(ctx, subject, grant)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !has("7", "g1") || has("8", "g1") || has("7", "g2") {
			t.Error("HasActiveChain: want g1 of 7 alone")
		}
		for name, args := range map[string][3]string{
			"not the newest": {"c1", "g1", "h0"},
			"another grant":  {"c1", "g2", "h1"},
		} {
			if ok, err := s.EndRefreshChain(ctx, args[0], args[1], args[2]); ok || err != nil {
				t.Errorf("%s: ended %v, %v", name, ok, err)
			}
		}
		if ok, err := s.EndRefreshChain(ctx, "c1", "g1", "h1"); !ok || err != nil {
			t.Errorf("EndRefreshChain: %v, %v", ok, err)
		}
		if ok, err := s.EndRefreshChain(ctx, "c1", "g1", "h1"); ok || err != nil {
			t.Errorf("a second EndRefreshChain: %v, %v; want false", ok, err)
		}
		if has("7", "g1") {
			t.Error("an ended chain is active")
		}

		if err := s.DeleteRefreshChain(ctx, "c1", "h0"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RefreshChainWithUser(ctx, "c1"); err != nil {
			t.Errorf("deleted by a token that is not the newest: %v", err)
		}
		if err := s.DeleteRefreshChain(ctx, "c1", "h1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RefreshChainWithUser(ctx, "c1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after the delete: %v, want ErrNotFound", err)
		}
	})
}

// TestLiveChains: a subject's active, unexpired chains, with when each
// began and was last rotated, in UTC; revoked, expired and other subjects'
// chains are left out. On every engine.
func TestLiveChains(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		newTestUserWithID(t, s, 7, "ada")
		newTestUserWithID(t, s, 8, "bob")
		began := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
		rotated := began.Add(time.Hour)
		live := tokenRecord("c1", "g1", time.Now().Add(time.Hour))
		live.RequestedAt = began
		if err := s.CreateRefreshChain(ctx, live, "h1", rotated); err != nil {
			t.Fatal(err)
		}
		mustChain(t, s, "c2", "g2", "h2")
		if err := s.RevokeRefreshChains(ctx, "g2"); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRefreshChain(ctx, tokenRecord("c3", "g3", time.Now().Add(-time.Minute)), "h3", rotated); err != nil {
			t.Fatal(err)
		}
		bob := tokenRecord("c4", "g4", time.Now().Add(time.Hour))
		bob.Subject, bob.UserID = "8", 8
		if err := s.CreateRefreshChain(ctx, bob, "h4", rotated); err != nil {
			t.Fatal(err)
		}
		got, err := s.LiveChains(ctx, "7", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("LiveChains = %+v, want g1 alone", got)
		}
		c := got[0]
		if c.RequestID != "g1" || c.ClientID != "mobile" || !c.RequestedAt.Equal(began) || c.RequestedAt.Location() != time.UTC ||
			!c.RotatedAt.Equal(rotated) || c.RotatedAt.Location() != time.UTC || string(c.Request) != `{"id":"g1"}` {
			t.Errorf("LiveChains = %+v", c)
		}
	})
}
