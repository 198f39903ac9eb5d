package passkey_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/mail"
	"idp/passkey"
	"idp/passkey/passkeytest"
	"idp/storage"
)

const issuer = "https://id.example.com"

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// onSQLite runs fn on a fresh SQLite database. What the queries do on
// every engine is storage's suite (storage/passkeys_test.go).
func onSQLite(t *testing.T, fn func(t *testing.T, db *database.DB)) {
	t.Helper()
	fn(t, databasetest.Open(t, databasetest.SQLiteURL(t)))
}

func setup(t *testing.T, db *database.DB) (*passkey.Service, *clock) {
	return setupOn(t, db, storage.New(db))
}

// setupOn is setup with the service on st.
func setupOn(t *testing.T, db *database.DB, st passkey.Storage) (*passkey.Service, *clock) {
	t.Helper()
	return setupWith(t, db, st, nil)
}

// setupWith is setupOn with the service telling mailer of new passkeys.
func setupWith(t *testing.T, db *database.DB, st passkey.Storage, mailer passkey.Mailer) (*passkey.Service, *clock) {
	t.Helper()
	ctx := context.Background()
	users := storage.New(db)
	for i, name := range []string{"alice", "bob"} {
		id := int64(i + 1)
		u, err := users.CreateUser(ctx, storage.NewUser{Username: name, Email: name + "@example.com", PasswordHash: "h", FirstName: "A", LastName: "B"})
		if err != nil || u.ID != id {
			t.Fatalf("user %s: %+v, %v; want id %d", name, u, err, id)
		}
	}
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, err := passkey.New(st, passkey.Config{Issuer: issuer, Origins: []string{"android:apk-key-hash:abc"}, Mailer: mailer, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func register(t *testing.T, s *passkey.Service, a *passkeytest.Authenticator, userID int64, name string) passkey.Passkey {
	t.Helper()
	ctx := context.Background()
	opts, err := s.BeginRegistration(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.FinishRegistration(ctx, userID, resp, name)
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	return p
}

// newCredential begins a registration of userID and answers it with a new
// authenticator: the response FinishRegistration takes.
func newCredential(t *testing.T, s *passkey.Service, userID int64) []byte {
	t.Helper()
	opts, err := s.BeginRegistration(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&passkeytest.Authenticator{Origin: issuer}).Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestNewRefusesIPIssuer(t *testing.T) {
	for _, iss := range []string{"http://127.0.0.1:8080", "http://[::1]:8080", "not a url"} {
		if _, err := passkey.New(nil, passkey.Config{Issuer: iss}); err == nil {
			t.Errorf("New(%q) = nil error", iss)
		}
	}
	if _, err := passkey.New(nil, passkey.Config{Issuer: "http://localhost:8080"}); err != nil {
		t.Errorf("localhost: %v", err)
	}
}

func TestLifecycle(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, c := setup(t, db)
		a := &passkeytest.Authenticator{Origin: issuer}
		p := register(t, s, a, 1, "  Laptop ")
		if p.Name != "Laptop" || p.ID == "" || p.LastUsedAt != nil || !p.CreatedAt.Equal(c.t) {
			t.Fatalf("registered %+v", p)
		}
		// The same authenticator again: the library refuses nothing by
		// itself here, but the options exclude the credential.
		id, opts, err := s.BeginLogin(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := a.Get(opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.t = c.t.Add(time.Minute)
		uid, err := s.FinishLogin(ctx, id, resp)
		if err != nil || uid != 1 {
			t.Fatalf("FinishLogin = %d, %v", uid, err)
		}
		// Replay: the challenge is gone.
		if _, err := s.FinishLogin(ctx, id, resp); !errors.Is(err, passkey.ErrChallenge) {
			t.Errorf("replay: %v", err)
		}
		list, err := s.List(ctx, 1)
		if err != nil || len(list) != 1 || list[0].LastUsedAt == nil || !list[0].LastUsedAt.Equal(c.t) || list[0].SignCount != 1 {
			t.Fatalf("List = %+v, %v", list, err)
		}
		if other, _ := s.List(ctx, 2); len(other) != 0 {
			t.Errorf("bob sees %v", other)
		}
		if _, err := s.Rename(ctx, 2, p.ID, "mine"); !errors.Is(err, passkey.ErrNotFound) {
			t.Errorf("rename by another user: %v", err)
		}
		if _, err := s.Rename(ctx, 1, p.ID, ""); !errors.Is(err, passkey.ErrName) {
			t.Errorf("empty name: %v", err)
		}
		if r, err := s.Rename(ctx, 1, p.ID, "Phone"); err != nil || r.Name != "Phone" {
			t.Errorf("rename = %+v, %v", r, err)
		}
		if err := s.Delete(ctx, 2, p.ID); !errors.Is(err, passkey.ErrNotFound) {
			t.Errorf("delete by another user: %v", err)
		}
		if err := s.Delete(ctx, 1, p.ID); err != nil {
			t.Fatal(err)
		}
		// A deleted passkey signs no one in.
		id, opts, _ = s.BeginLogin(ctx, "conditional")
		resp, _ = a.Get(opts, nil)
		if _, err := s.FinishLogin(ctx, id, resp); !errors.Is(err, passkey.ErrRejected) {
			t.Errorf("deleted passkey: %v", err)
		}
	})
}

func TestRefusals(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, c := setup(t, db)
		good := &passkeytest.Authenticator{Origin: issuer}
		register(t, s, good, 1, "")

		// Registration: a challenge of another user, no user verification,
		// another origin.
		opts, _ := s.BeginRegistration(ctx, 1)
		resp, _ := (&passkeytest.Authenticator{Origin: issuer}).Create(opts)
		if _, err := s.FinishRegistration(ctx, 2, resp, ""); !errors.Is(err, passkey.ErrChallenge) {
			t.Errorf("another user's challenge: %v", err)
		}
		for name, a := range map[string]*passkeytest.Authenticator{
			"no user verification": {Origin: issuer, NoUserVerification: true},
			"another origin":       {Origin: "https://evil.example"},
			"wrong RP ID":          {Origin: issuer, RPID: "evil.example"},
		} {
			opts, _ := s.BeginRegistration(ctx, 1)
			resp, _ := a.Create(opts)
			_, err := s.FinishRegistration(ctx, 1, resp, "")
			t.Logf("registration, %s: %s", name, passkey.Reason(err))
			if !errors.Is(err, passkey.ErrRejected) {
				t.Errorf("registration, %s: %v", name, err)
			}
		}
		// An allowed extra origin (an Android app) registers.
		register(t, s, &passkeytest.Authenticator{Origin: "android:apk-key-hash:abc"}, 2, "")

		// Sign-in refusals, each with a fresh challenge.
		login := func(a *passkeytest.Authenticator) error {
			id, opts, err := s.BeginLogin(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			resp, err := a.Get(opts, good.Creds[0])
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.FinishLogin(ctx, id, resp)
			return err
		}
		for name, a := range map[string]*passkeytest.Authenticator{
			"another origin":       {Origin: "https://evil.example"},
			"wrong RP ID":          {Origin: issuer, RPID: "evil.example"},
			"tampered signature":   {Origin: issuer, TamperSignature: true},
			"no user verification": {Origin: issuer, NoUserVerification: true},
		} {
			err := login(a)
			t.Logf("login, %s: %s", name, passkey.Reason(err))
			if !errors.Is(err, passkey.ErrRejected) {
				t.Errorf("login, %s: %v", name, err)
			}
		}
		if err := login(good); err != nil {
			t.Fatalf("good login: %v", err)
		}
		good.Creds[0].Counter = 0 // the next assertion says 1, below the stored count
		if err := login(good); !errors.Is(err, passkey.ErrCloned) {
			t.Errorf("lowered sign count: %v", err)
		}
		// A registration challenge is no login challenge, and an expired
		// one is gone.
		id, opts, _ := s.BeginLogin(ctx, "")
		c.t = c.t.Add(passkey.ChallengeTTL)
		resp, _ = good.Get(opts, nil)
		if _, err := s.FinishLogin(ctx, id, resp); !errors.Is(err, passkey.ErrChallenge) {
			t.Errorf("expired challenge: %v", err)
		}
		if _, err := s.FinishLogin(ctx, "", []byte("{")); err == nil {
			t.Error("garbage accepted")
		}
		if n, err := s.DeleteExpired(ctx); err != nil || n == 0 {
			t.Errorf("DeleteExpired = %d, %v", n, err)
		}
	})
}

// takenStore is storage in which every credential is registered already,
// as when a second registration of one authenticator races the first.
type takenStore struct{ *storage.Store }

func (takenStore) CreatePasskey(context.Context, storage.Passkey) (*storage.Passkey, error) {
	return nil, fmt.Errorf("%w: the credential", &storage.ConflictError{})
}

// TestRegisteredAlready: a credential that storage holds already is
// refused as a ceremony refusal (ErrRejected, with a reason for the
// client), not an internal error.
func TestRegisteredAlready(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, _ := setupOn(t, db, takenStore{storage.New(db)})
		_, err := s.FinishRegistration(ctx, 1, newCredential(t, s, 1), "")
		if !errors.Is(err, passkey.ErrRejected) || !strings.Contains(passkey.Reason(err), "registered already") {
			t.Errorf("a credential registered already: %v (%q), want ErrRejected", err, passkey.Reason(err))
		}
	})
}

// failingMailer refuses every message.
type failingMailer struct{}

func (failingMailer) Enqueue(context.Context, mail.Message) error { return errors.New("outbox down") }

// TestRegistrationNotice: a new passkey is told to the account's address,
// without the name the user gave it, in the transaction that stores it: a
// notice that cannot be queued leaves no passkey.
func TestRegistrationNotice(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		st := storage.New(db)
		s, _ := setupWith(t, db, st, mail.NewOutbox(st, nil, mail.Options{}))
		a := &passkeytest.Authenticator{Origin: issuer}
		register(t, s, a, 1, "Secret laptop name")
		queued, err := st.DueOutboxMessages(ctx, time.Now().Add(time.Hour), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(queued) != 1 {
			t.Fatalf("%d messages queued, want the notice", len(queued))
		}
		m := queued[0]
		if m.Recipient != "alice@example.com" || m.UserID != 1 || m.Subject != passkey.PasskeyAddedSubject || !strings.Contains(m.Text, issuer+"/account") {
			t.Errorf("notice %+v", m)
		}
		if strings.Contains(m.Text+m.HTML, "Secret laptop name") {
			t.Error("the notice holds the name the user chose")
		}
	})
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, _ := setupWith(t, db, storage.New(db), failingMailer{})
		if _, err := s.FinishRegistration(ctx, 1, newCredential(t, s, 1), ""); err == nil {
			t.Fatal("a passkey whose notice could not be queued was registered")
		}
		if list, err := s.List(ctx, 1); err != nil || len(list) != 0 {
			t.Errorf("passkeys after a failed notice: %v, %v; want none", list, err)
		}
	})
}
