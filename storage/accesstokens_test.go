package storage

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"idp/ent/user"
)

// tokenRecord is a record of grant for user 7 whose key is id.
func tokenRecord(id, grant string, exp time.Time) TokenRecord {
	return TokenRecord{ID: id, RequestID: grant, ClientID: "mobile", Subject: "7", UserID: 7,
		RequestedAt: time.Now().UTC().Truncate(time.Second), ExpiresAt: exp, Request: []byte(`{"id":"` + grant + `"}`)}
}

// TestActiveUser: the bearer check's one read returns the user, every field
// but the password hash, while the token's row is on record, and nothing
// once it is gone, on every engine and inside a transaction too.
func TestActiveUser(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		changed := time.Date(2026, 11, 1, 12, 30, 45, 123456000, time.UTC)
		pic := "u/7/abc"
		s.db.User.Create().SetID(7).SetUsername("ada").SetEmail("ada@example.com").SetPasswordHash("$argon2id$secret").
			SetFirstName("Ada").SetLastName("Lovelace").SetGender(user.GenderFemale).SetPictureKey(pic).
			SetPasswordChangedAt(changed).SetEmailVerified(true).ExecX(ctx)
		s.db.User.Create().SetID(8).SetUsername("bob").SetEmail("bob@example.com").SetPasswordHash("h").
			SetFirstName("Bob").SetLastName("B").ExecX(ctx)
		for id, sub := range map[string]string{"at-ada": "7", "at-bob": "8"} {
			s.db.AccessToken.Create().SetID(id).SetRequestID("r-" + id).SetClientID("mobile").
				SetSubject(sub).SetRequestedAt(changed).SetExpiresAt(changed.Add(time.Hour)).SetRequest([]byte("{}")).ExecX(ctx)
		}

		tests := []struct {
			name   string
			id     string
			userID int64
			want   string // username, or "" for none
		}{
			{"live token", "at-ada", 7, "ada"},
			{"user without picture", "at-bob", 8, "bob"},
			{"unknown token", "at-eve", 7, ""},
			{"unknown user", "at-ada", 9, ""},
			// The record is ada's: it speaks for no one else.
			{"another user's record", "at-ada", 8, ""},
		}
		for _, tt := range tests {
			u, err := s.ActiveUser(ctx, tt.id, strconv.FormatInt(tt.userID, 10), "", tt.userID)
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

		u, _ := s.ActiveUser(ctx, "at-ada", "7", "", 7)
		want := s.db.User.GetX(ctx, 7)
		if u.ID != 7 || u.Email != want.Email || !u.EmailVerified || u.FirstName != "Ada" || u.LastName != "Lovelace" ||
			u.Gender != GenderFemale || u.PictureKey != pic ||
			!u.PasswordChangedAt.Equal(changed) || !u.CreatedAt.Equal(want.CreatedAt) || !u.UpdatedAt.Equal(want.UpdatedAt) {
			t.Errorf("fields: got %+v, want %+v", u, want)
		}
		if u.PasswordHash != "" {
			t.Errorf("the bearer check read the password hash")
		}
		if u, _ := s.ActiveUser(ctx, "at-bob", "8", "", 8); u.HasPicture() {
			t.Errorf("picture key %q, want none", u.PictureKey)
		}

		// Inside a transaction, the read sees the transaction's writes.
		err := s.InTx(ctx, func(ctx context.Context) error {
			if err := s.RevokeAccessTokens(ctx, "r-at-ada"); err != nil {
				return err
			}
			u, err := s.ActiveUser(ctx, "at-ada", "7", "", 7)
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
		if u, err := s.ActiveUser(ctx, "at-ada", "7", "", 7); err != nil || u != nil {
			t.Errorf("after the revocation: %v, %v", u, err)
		}
	})
}

// TestAccessTokenRows: an access token's own row reads back, is on record
// only for its subject, names its grant, and is gone once deleted or its
// grant or subject revoked; a row for a user who is gone is not written, a
// client's own (no user) is. On every engine.
func TestAccessTokenRows(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		newTestUserWithID(t, s, 7, "ada")
		exp := time.Now().Add(time.Hour)
		for _, r := range []TokenRecord{tokenRecord("at-1", "g1", exp), tokenRecord("at-2", "g2", exp), tokenRecord("at-3", "g3", exp)} {
			if err := s.CreateAccessToken(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if data, err := s.AccessTokenRequest(ctx, "at-1"); err != nil || string(data) != `{"id":"g1"}` {
			t.Errorf("AccessTokenRequest = %s, %v", data, err)
		}
		if _, err := s.AccessTokenRequest(ctx, "at-unknown"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown: %v, want ErrNotFound", err)
		}
		active := func(id, subject string) bool {
			t.Helper()
			ok, err := s.AccessTokenActive(ctx, id, subject, "")
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !active("at-1", "7") || active("at-1", "8") || active("at-unknown", "7") {
			t.Error("on record: want at-1 for 7 only")
		}
		if g, err := s.GrantOfAccessToken(ctx, "at-1", "7", ""); g != "g1" || err != nil {
			t.Errorf("GrantOfAccessToken = %q, %v", g, err)
		}
		if g, err := s.GrantOfAccessToken(ctx, "at-1", "8", ""); g != "" || err != nil {
			t.Errorf("GrantOfAccessToken for another subject = %q, %v", g, err)
		}

		if err := s.DeleteAccessToken(ctx, "at-1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAccessToken(ctx, "at-1"); err != nil {
			t.Errorf("deleting again: %v", err)
		}
		if err := s.RevokeAccessTokens(ctx, "g2"); err != nil {
			t.Fatal(err)
		}
		if active("at-1", "7") || active("at-2", "7") || !active("at-3", "7") {
			t.Error("after deleting at-1 and revoking g2: want at-3 alone on record")
		}
		if err := s.RevokeSubjectTokens(ctx, "7"); err != nil {
			t.Fatal(err)
		}
		if active("at-3", "7") {
			t.Error("after revoking the subject, at-3 is on record")
		}

		gone := tokenRecord("at-gone", "g4", exp)
		gone.Subject, gone.UserID = "9", 9
		if err := s.CreateAccessToken(ctx, gone); !errors.Is(err, ErrTokenUserGone) {
			t.Errorf("for a user who is gone: %v, want ErrTokenUserGone", err)
		}
		if active("at-gone", "9") {
			t.Error("a token of a user who is gone was written")
		}
		own := tokenRecord("at-client", "g5", exp)
		own.Subject, own.UserID = "reports", 0
		if err := s.CreateAccessToken(ctx, own); err != nil || !active("at-client", "reports") {
			t.Errorf("a client's own token: %v", err)
		}
	})
}

// TestGrantRequestsOf: the stored requests of a subject's grants with one
// client, from its active chains and its access token rows, and nothing
// of revoked chains, other clients or other subjects.
func TestGrantRequestsOf(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		newTestUserWithID(t, s, 7, "ada")
		newTestUserWithID(t, s, 8, "bob")
		exp := time.Now().Add(time.Hour)
		mustChain(t, s, "c1", "g1", "h1")
		mustChain(t, s, "c2", "g2", "h2")
		if err := s.RevokeRefreshChains(ctx, "g2"); err != nil {
			t.Fatal(err)
		}
		other := tokenRecord("c3", "g3", exp)
		other.ClientID = "web"
		if err := s.CreateRefreshChain(ctx, other, "h3", time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateAccessToken(ctx, tokenRecord("at-4", "g4", exp)); err != nil {
			t.Fatal(err)
		}
		bob := tokenRecord("at-5", "g5", exp)
		bob.Subject, bob.UserID = "8", 8
		if err := s.CreateAccessToken(ctx, bob); err != nil {
			t.Fatal(err)
		}
		got, err := s.GrantRequestsOf(ctx, "7", "mobile")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].RequestID != "g1" || string(got[0].Request) != `{"id":"g1"}` ||
			got[1].RequestID != "g4" || string(got[1].Request) != `{"id":"g4"}` {
			t.Errorf("GrantRequestsOf = %+v, want g1's chain then g4's access token", got)
		}
	})
}
