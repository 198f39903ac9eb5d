package storage

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"idp/ent/onetimecode"
	"idp/ent/outboxmessage"
)

// TestExportUser: the export reads every row of the user that q names, in
// its order, and no row of another user, even one whose keys begin like
// the user's (user 1's throttles are not user 12's).
func TestExportUser(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := s.db
		// Microseconds: the precision every engine keeps.
		now := time.Now().UTC().Truncate(time.Microsecond)
		hour := time.Hour
		for _, id := range []int64{1, 12} {
			c.User.Create().SetID(id).SetUsername(fmt.Sprint("user", id)).SetEmail(fmt.Sprint("user", id, "@example.com")).
				SetPasswordHash("x").SetFirstName("F").SetLastName("L").ExecX(ctx)
		}
		// User 1's rows, given out of order, and user 12's alike.
		for _, id := range []int64{12, 1} {
			addr := fmt.Sprint("user", id, "@example.com")
			key := fmt.Sprint("user:", id)
			c.Consent.Create().SetUserID(id).SetClientID("zeta").SetScopes([]string{"openid", "profile"}).
				SetCreatedAt(now.Add(-2 * hour)).SetUpdatedAt(now.Add(-hour)).ExecX(ctx)
			c.Consent.Create().SetUserID(id).SetClientID("alpha").SetCreatedAt(now.Add(-3 * hour)).SetUpdatedAt(now.Add(-3 * hour)).ExecX(ctx)
			c.LoginThrottle.Create().SetID(key + "|192.0.2.1").SetFailures(3).SetLockedUntil(now.Add(hour)).SetUpdatedAt(now).ExecX(ctx)
			c.LoginThrottle.Create().SetID(key).SetFailures(7).SetUpdatedAt(now.Add(-hour)).ExecX(ctx)
			// Live, expired and worn out.
			c.OneTimeCode.Create().SetUserID(id).SetPurpose(onetimecode.PurposeVerify).SetCodeHash([]byte("h")).
				SetCreatedAt(now.Add(-hour)).SetExpiresAt(now.Add(hour)).ExecX(ctx)
			c.OneTimeCode.Create().SetUserID(id).SetPurpose(onetimecode.PurposeReset).SetCodeHash([]byte("h")).
				SetCreatedAt(now.Add(-hour)).SetExpiresAt(now.Add(2 * hour)).ExecX(ctx)
			c.OneTimeCode.Create().SetUserID(id).SetPurpose(onetimecode.PurposeEmailChange).SetCodeHash([]byte("h")).
				SetCreatedAt(now.Add(-2 * hour)).SetExpiresAt(now.Add(-time.Second)).ExecX(ctx)
			c.OutboxMessage.Create().SetRecipient(addr).SetSubject("second").SetText("t").SetHTML("h").
				SetCreatedAt(now).SetNextAttemptAt(now).ExecX(ctx)
			c.OutboxMessage.Create().SetRecipient(addr).SetSubject("first").SetText("t").SetHTML("h").SetState(outboxmessage.StateSent).
				SetCreatedAt(now.Add(-hour)).SetNextAttemptAt(now).SetSentAt(now.Add(-hour + time.Second)).ExecX(ctx)
			c.Passkey.Create().SetID(fmt.Sprint("pk-new-", id)).SetUserID(id).SetCredentialID([]byte{byte(id), 2}).
				SetCredentialHash(fmt.Sprint("hash-new-", id)).SetPublicKey([]byte{9, 9}).SetName("phone").
				SetCreatedAt(now).ExecX(ctx)
			c.Passkey.Create().SetID(fmt.Sprint("pk-old-", id)).SetUserID(id).SetCredentialID([]byte{byte(id), 1}).
				SetCredentialHash(fmt.Sprint("hash-old-", id)).SetPublicKey([]byte{8, 8}).SetAaguid([]byte{1, 2, 3}).
				SetSignCount(4).SetBackupEligible(true).SetBackupState(true).SetTransports([]string{"usb", "nfc"}).
				SetName("key").SetCreatedAt(now.Add(-hour)).SetLastUsedAt(now.Add(-time.Minute)).ExecX(ctx)
		}
		// A code with its tries used up is not pending.
		c.OneTimeCode.Update().Where(onetimecode.UserID(1), onetimecode.PurposeEQ(onetimecode.PurposeReset)).SetAttempts(5).ExecX(ctx)
		// Mail to another address; a throttle of an unknown login.
		c.OutboxMessage.Create().SetRecipient("someone@example.com").SetSubject("other").SetText("t").SetHTML("h").
			SetCreatedAt(now).SetNextAttemptAt(now).ExecX(ctx)
		c.LoginThrottle.Create().SetID("login:user1|192.0.2.1").SetFailures(1).ExecX(ctx)
		// User 1's email change under way: its address, and its code's
		// mail there, written for user 1.
		c.OneTimeCode.Update().Where(onetimecode.UserID(1), onetimecode.PurposeEQ(onetimecode.PurposeEmailChange)).
			SetExpiresAt(now.Add(hour)).SetNewEmail("new1@example.com").ExecX(ctx)
		c.OutboxMessage.Create().SetRecipient("new1@example.com").SetUserID(1).SetSubject("third").SetText("t").SetHTML("h").
			SetCreatedAt(now.Add(time.Minute)).SetNextAttemptAt(now).ExecX(ctx)

		got, err := s.ExportUser(ctx, ExportQuery{UserID: 1, Email: "user1@example.com", ThrottleKey: "user:1", Now: now, MaxAttempts: 5})
		if err != nil {
			t.Fatalf("ExportUser: %v", err)
		}
		same := func(a, b time.Time) bool { return a.Equal(b) }
		samePtr := func(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) }

		if len(got.Consents) != 2 ||
			got.Consents[0].ClientID != "alpha" || len(got.Consents[0].Scopes) != 0 ||
			!same(got.Consents[0].CreatedAt, now.Add(-3*hour)) ||
			got.Consents[1].ClientID != "zeta" || !slices.Equal(got.Consents[1].Scopes, []string{"openid", "profile"}) ||
			!same(got.Consents[1].CreatedAt, now.Add(-2*hour)) || !same(got.Consents[1].UpdatedAt, now.Add(-hour)) {
			t.Errorf("consents %+v", got.Consents)
		}
		locked := now.Add(hour)
		if len(got.LoginThrottles) != 2 ||
			got.LoginThrottles[0].Key != "user:1" || got.LoginThrottles[0].Failures != 7 || got.LoginThrottles[0].LockedUntil != nil ||
			!same(got.LoginThrottles[0].UpdatedAt, now.Add(-hour)) ||
			got.LoginThrottles[1].Key != "user:1|192.0.2.1" || got.LoginThrottles[1].Failures != 3 ||
			!samePtr(got.LoginThrottles[1].LockedUntil, &locked) {
			t.Errorf("login throttles %+v", got.LoginThrottles)
		}
		// By purpose: MySQL orders an enum by its declaration, the others
		// by its text.
		codes := map[string]ExportCode{}
		for _, c := range got.PendingCodes {
			codes[c.Purpose] = c
		}
		if change, verify := codes["email_change"], codes["verify"]; len(got.PendingCodes) != 2 ||
			change.NewEmail != "new1@example.com" || verify.Purpose != "verify" || verify.NewEmail != "" ||
			!same(verify.CreatedAt, now.Add(-hour)) || !same(verify.ExpiresAt, now.Add(hour)) {
			t.Errorf("pending codes %+v, want the live email change (with its address) and verify codes", got.PendingCodes)
		}
		sent := now.Add(-hour + time.Second)
		if len(got.Mail) != 3 ||
			got.Mail[0].Subject != "first" || got.Mail[0].To != "user1@example.com" || got.Mail[0].State != "sent" || !samePtr(got.Mail[0].SentAt, &sent) ||
			got.Mail[1].Subject != "second" || got.Mail[1].State != "pending" || got.Mail[1].SentAt != nil || !same(got.Mail[1].CreatedAt, now) ||
			got.Mail[2].Subject != "third" || got.Mail[2].To != "new1@example.com" {
			t.Errorf("mail %+v", got.Mail)
		}
		used := now.Add(-time.Minute)
		if len(got.Passkeys) != 2 {
			t.Fatalf("passkeys %+v", got.Passkeys)
		}
		old, recent := got.Passkeys[0], got.Passkeys[1]
		if old.ID != "pk-old-1" || old.Name != "key" || !slices.Equal(old.CredentialID, []byte{1, 1}) || !slices.Equal(old.PublicKey, []byte{8, 8}) ||
			!slices.Equal(old.AAGUID, []byte{1, 2, 3}) || old.SignCount != 4 || !old.BackupEligible || !old.BackupState ||
			!slices.Equal(old.Transports, []string{"usb", "nfc"}) || !same(old.CreatedAt, now.Add(-hour)) || !samePtr(old.LastUsedAt, &used) {
			t.Errorf("the older passkey %+v", old)
		}
		if recent.ID != "pk-new-1" || recent.LastUsedAt != nil || recent.BackupEligible || len(recent.Transports) != 0 {
			t.Errorf("the newer passkey %+v", recent)
		}
	})
}

// TestExportUserNothing: a user without rows has empty lists, not nil
// ones (the document shows [] rather than null).
func TestExportUserNothing(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		got, err := s.ExportUser(context.Background(), ExportQuery{UserID: 5, Email: "nobody@example.com", ThrottleKey: "user:5", Now: time.Now(), MaxAttempts: 5})
		if err != nil {
			t.Fatalf("ExportUser: %v", err)
		}
		if got.Consents == nil || got.LoginThrottles == nil || got.PendingCodes == nil || got.Mail == nil || got.Passkeys == nil {
			t.Errorf("nil lists in %+v", got)
		}
		if n := len(got.Consents) + len(got.LoginThrottles) + len(got.PendingCodes) + len(got.Mail) + len(got.Passkeys); n != 0 {
			t.Errorf("%d rows for a user without any: %+v", n, got)
		}
	})
}

// TestExportUserFails: a failing read fails the whole export.
func TestExportUserFails(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if got, err := s.ExportUser(ctx, ExportQuery{UserID: 1, Email: "a@example.com", ThrottleKey: "user:1", Now: time.Now(), MaxAttempts: 5}); err == nil {
			t.Errorf("ExportUser with a canceled context gave %+v", got)
		}
	})
}
