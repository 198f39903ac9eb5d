package storage

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func passkeyRow(id string, userID int64, credID string, at time.Time) Passkey {
	return Passkey{ID: id, UserID: userID, CredentialID: []byte(credID), PublicKey: []byte("cose-" + credID),
		AttestationType: "none", AAGUID: bytes.Repeat([]byte{0xab}, 16), SignCount: 3, UserPresent: true,
		UserVerified: true, BackupEligible: true, Transports: []string{"internal", "hybrid"}, Name: "Laptop", CreatedAt: at}
}

func equalPasskey(a, b Passkey) bool {
	return a.ID == b.ID && a.UserID == b.UserID && bytes.Equal(a.CredentialID, b.CredentialID) &&
		bytes.Equal(a.PublicKey, b.PublicKey) && a.AttestationType == b.AttestationType && bytes.Equal(a.AAGUID, b.AAGUID) &&
		a.SignCount == b.SignCount && a.UserPresent == b.UserPresent && a.UserVerified == b.UserVerified &&
		a.BackupEligible == b.BackupEligible && a.BackupState == b.BackupState && slices.Equal(a.Transports, b.Transports) &&
		a.Name == b.Name && a.CreatedAt.Equal(b.CreatedAt) &&
		(a.LastUsedAt == nil) == (b.LastUsedAt == nil) && (a.LastUsedAt == nil || a.LastUsedAt.Equal(*b.LastUsedAt))
}

// TestPasskeyCreateAndList: passkeys read back with every field, a user's
// oldest first (ties by id) and no one else's; PasskeyUser gives the user
// with them, and ErrNotFound for a user that does not exist.
func TestPasskeyCreateAndList(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		sessionsUsers(t, s, 1, 2)
		long := strings.Repeat("c", 1023) // the longest credential id
		rows := []Passkey{
			passkeyRow("p3", 1, "cred-3", sessionsT0.Add(time.Hour)),
			passkeyRow("p2", 1, long, sessionsT0),
			passkeyRow("p1", 1, "cred-1", sessionsT0),
			passkeyRow("q1", 2, "cred-q", sessionsT0),
		}
		rows[1].AAGUID = nil
		for _, p := range rows {
			got, err := s.CreatePasskey(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if !equalPasskey(*got, p) {
				t.Errorf("created %+v, want %+v", *got, p)
			}
		}
		list, err := s.UserPasskeys(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		want := []Passkey{rows[2], rows[1], rows[0]}
		if len(list) != len(want) {
			t.Fatalf("listed %d passkeys, want %d", len(list), len(want))
		}
		for i := range want {
			if !equalPasskey(list[i], want[i]) {
				t.Errorf("listed %d: %+v, want %+v", i, list[i], want[i])
			}
		}
		u, ps, err := s.PasskeyUser(ctx, 2)
		if err != nil || u.ID != 2 || u.Username != "u2" || len(ps) != 1 || !equalPasskey(ps[0], rows[3]) {
			t.Errorf("PasskeyUser(2) = %+v, %+v, %v", u, ps, err)
		}
		if _, _, err := s.PasskeyUser(ctx, 99); !errors.Is(err, ErrNotFound) {
			t.Errorf("PasskeyUser of no user: %v, want ErrNotFound", err)
		}
	})
}

// TestPasskeyDuplicateCredential: a credential is registered once, for
// anyone: the second registration of the same id, even the longest, is
// ErrConflict.
func TestPasskeyDuplicateCredential(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		sessionsUsers(t, s, 1, 2)
		long := strings.Repeat("c", 1023)
		for _, cred := range []string{"cred", long} {
			if _, err := s.CreatePasskey(ctx, passkeyRow("a-"+cred[:4], 1, cred, sessionsT0)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreatePasskey(ctx, passkeyRow("b-"+cred[:4], 2, cred, sessionsT0)); !errors.Is(err, ErrConflict) {
				t.Errorf("the same credential again: %v, want ErrConflict", err)
			}
		}
		// Ids that share a 1000-byte prefix are different credentials.
		if _, err := s.CreatePasskey(ctx, passkeyRow("c", 1, long[:1022]+"d", sessionsT0)); err != nil {
			t.Errorf("a credential sharing a long prefix: %v", err)
		}
	})
}

// TestPasskeyRenameDeleteUse: a user renames and deletes only their own
// passkeys; a use records the count, flags and time; a passkey that is
// gone is ErrNotFound to each.
func TestPasskeyRenameDeleteUse(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		sessionsUsers(t, s, 1, 2)
		p := passkeyRow("p", 1, "cred", sessionsT0)
		if _, err := s.CreatePasskey(ctx, p); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RenamePasskey(ctx, 2, "p", "Mine"); !errors.Is(err, ErrNotFound) {
			t.Errorf("rename by another user: %v, want ErrNotFound", err)
		}
		got, err := s.RenamePasskey(ctx, 1, "p", "Phone")
		p.Name = "Phone"
		if err != nil || !equalPasskey(*got, p) {
			t.Errorf("rename = %+v, %v", got, err)
		}
		at := sessionsT0.Add(time.Minute)
		if err := s.RecordPasskeyUse(ctx, "p", PasskeyUse{SignCount: 9, UserPresent: true, UserVerified: false, BackupState: true, At: at}); err != nil {
			t.Fatal(err)
		}
		p.SignCount, p.UserVerified, p.BackupState, p.LastUsedAt = 9, false, true, &at
		if list, err := s.UserPasskeys(ctx, 1); err != nil || len(list) != 1 || !equalPasskey(list[0], p) {
			t.Errorf("after a use: %+v, %v; want %+v", list, err, p)
		}
		if err := s.DeletePasskey(ctx, 2, "p"); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete by another user: %v, want ErrNotFound", err)
		}
		if err := s.DeletePasskey(ctx, 1, "p"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeletePasskey(ctx, 1, "p"); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete again: %v, want ErrNotFound", err)
		}
		if _, err := s.RenamePasskey(ctx, 1, "p", "Gone"); !errors.Is(err, ErrNotFound) {
			t.Errorf("rename of a deleted passkey: %v, want ErrNotFound", err)
		}
		if err := s.RecordPasskeyUse(ctx, "p", PasskeyUse{At: at}); !errors.Is(err, ErrNotFound) {
			t.Errorf("use of a deleted passkey: %v, want ErrNotFound", err)
		}
	})
}

// TestWebAuthnChallenges: a challenge is taken once, only for its
// ceremony and user and before it expires; a user's live registration
// challenges are listed; the sweep removes the expired ones alone.
func TestWebAuthnChallenges(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		one, two := int64(1), int64(2)
		data := bytes.Repeat([]byte(`{"challenge":"x"}`), 1000)
		create := func(id string, c WebAuthnCeremony, user *int64, expires time.Time) WebAuthnChallenge {
			t.Helper()
			ch := WebAuthnChallenge{ID: id, Ceremony: c, UserID: user, SessionData: data, CreatedAt: sessionsT0, ExpiresAt: expires}
			if err := s.CreateWebAuthnChallenge(ctx, ch); err != nil {
				t.Fatal(err)
			}
			return ch
		}
		end := sessionsT0.Add(5 * time.Minute)
		login := create("login", WebAuthnLogin, nil, end)
		create("reg1", WebAuthnRegistration, &one, end)
		create("reg1-old", WebAuthnRegistration, &one, sessionsT0)
		create("reg2", WebAuthnRegistration, &two, end)

		refused := []struct {
			name     string
			id       string
			ceremony WebAuthnCeremony
			user     *int64
			now      time.Time
		}{
			{"another ceremony", "login", WebAuthnRegistration, nil, sessionsT0},
			{"bound to a user", "login", WebAuthnLogin, &one, sessionsT0},
			{"another user", "reg2", WebAuthnRegistration, &one, sessionsT0},
			{"no user", "reg2", WebAuthnRegistration, nil, sessionsT0},
			{"expired", "login", WebAuthnLogin, nil, end},
			{"unknown", "none", WebAuthnLogin, nil, sessionsT0},
		}
		for _, r := range refused {
			if _, err := s.TakeWebAuthnChallenge(ctx, r.id, r.ceremony, r.user, r.now); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", r.name, err)
			}
		}
		got, err := s.TakeWebAuthnChallenge(ctx, "login", WebAuthnLogin, nil, sessionsT0)
		if err != nil || got.ID != login.ID || got.Ceremony != WebAuthnLogin || got.UserID != nil ||
			!bytes.Equal(got.SessionData, data) || !got.ExpiresAt.Equal(end) || !got.CreatedAt.Equal(sessionsT0) {
			t.Fatalf("take = %+v, %v", got, err)
		}
		if _, err := s.TakeWebAuthnChallenge(ctx, "login", WebAuthnLogin, nil, sessionsT0); !errors.Is(err, ErrNotFound) {
			t.Errorf("taken twice: %v, want ErrNotFound", err)
		}
		if got, err := s.TakeWebAuthnChallenge(ctx, "reg2", WebAuthnRegistration, &two, sessionsT0); err != nil || *got.UserID != 2 {
			t.Errorf("take of user 2's registration = %+v, %v", got, err)
		}

		regs, err := s.RegistrationChallenges(ctx, 1, sessionsT0)
		if err != nil || len(regs) != 1 || regs[0].ID != "reg1" {
			t.Errorf("user 1's live registrations = %+v, %v; want reg1", regs, err)
		}
		if n, err := s.DeleteExpiredWebAuthnChallenges(ctx, sessionsT0); err != nil || n != 1 {
			t.Errorf("sweep = %d, %v; want reg1-old", n, err)
		}
		if _, err := s.TakeWebAuthnChallenge(ctx, "reg1", WebAuthnRegistration, &one, sessionsT0); err != nil {
			t.Errorf("the live challenge was swept: %v", err)
		}
	})
}
