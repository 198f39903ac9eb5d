package database_test

import (
	"context"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/ent"
	"idp/ent/user"
)

func TestRoundTrip(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		changed := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)
		u, err := db.Ent.User.Create().SetID(42).SetUsername("alice").SetEmail("alice@example.com").
			SetPasswordHash("x").SetFirstName("Alice").SetLastName("Liddell").
			SetPasswordChangedAt(changed).Save(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.Ent.User.Query().Where(user.Username("alice")).Only(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != u.ID || got.Gender != user.GenderUnspecified {
			t.Errorf("got %+v", got)
		}
		if !got.PasswordChangedAt.Equal(changed) {
			t.Errorf("password_changed_at = %v, want %v (sub-second precision kept)", got.PasswordChangedAt, changed)
		}
		_, err = db.Ent.User.Create().SetID(43).SetUsername("alice").SetEmail("other@example.com").
			SetPasswordHash("x").SetFirstName("A").SetLastName("B").Save(ctx)
		if !ent.IsConstraintError(err) {
			t.Errorf("duplicate username: err = %v, want a constraint error", err)
		}
		if err := db.Migrate(ctx); err != nil {
			t.Errorf("second migrate: %v", err)
		}
	})
}

func TestOpenRejectsBadURLs(t *testing.T) {
	for _, raw := range []string{"", "postgres://x/y", "mysql://root@127.0.0.1:1/", "sqlite:"} {
		if db, err := database.Open(context.Background(), raw); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", raw)
		}
	}
}

func TestRedact(t *testing.T) {
	got := database.Redact("mysql://idp:s3cret@db:3306/idp")
	if got != "mysql://idp:xxxxx@db:3306/idp" {
		t.Errorf("Redact = %q", got)
	}
}
