package oauth

import (
	"context"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
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
			u, err := s.activeUser(ctx, tt.sig, tt.userID)
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

		u, _ := s.activeUser(ctx, "sig-ada", 7)
		want, _ := db.Ent.User.Get(ctx, 7)
		if u.ID != 7 || u.Email != want.Email || u.FirstName != "Ada" || u.LastName != "Lovelace" ||
			u.Gender != user.GenderFemale || u.PictureKey == nil || *u.PictureKey != pic ||
			!u.PasswordChangedAt.Equal(changed) || !u.CreatedAt.Equal(want.CreatedAt) || !u.UpdatedAt.Equal(want.UpdatedAt) {
			t.Errorf("fields: got %+v, want %+v", u, want)
		}
		if u.PasswordHash != "" {
			t.Errorf("the bearer check read the password hash")
		}
		if u, _ := s.activeUser(ctx, "sig-bob", 8); u.PictureKey != nil {
			t.Errorf("picture key %q, want none", *u.PictureKey)
		}

		// Inside a transaction, the read sees the transaction's writes.
		err := database.InTx(ctx, db.Ent, func(ctx context.Context) error {
			if err := s.RevokeAccessToken(ctx, "r-sig-ada"); err != nil {
				return err
			}
			u, err := s.activeUser(ctx, "sig-ada", 7)
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
		if u, err := s.activeUser(ctx, "sig-ada", 7); err != nil || u != nil {
			t.Errorf("after the revocation: %v, %v", u, err)
		}
	})
}
