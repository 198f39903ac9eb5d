package storage

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"idp/ent/accesstoken"
	"idp/ent/authorizecode"
	"idp/ent/browsersession"
	"idp/ent/consent"
	"idp/ent/loginthrottle"
	"idp/ent/onetimecode"
	"idp/ent/outboxmessage"
	"idp/ent/passkey"
	"idp/ent/pkcerequest"
	"idp/ent/predicate"
	"idp/ent/ratelimitwindow"
	"idp/ent/refreshchain"
	"idp/ent/user"
	"idp/ent/webauthnchallenge"
)

// eraseFixture is a user with a row in every table that can hold one.
type eraseFixture struct {
	id              int64
	username, email string
}

func (f eraseFixture) names() ErasureNames {
	return ErasureNames{
		Keys:       []string{"user:" + strconv.FormatInt(f.id, 10), "login:" + f.username},
		Recipients: []string{f.email},
	}
}

// eraseCreate creates the user and its rows: 16 of them.
func eraseCreate(t *testing.T, s *Store, f eraseFixture) {
	t.Helper()
	ctx := context.Background()
	c := s.db
	now := time.Now().UTC().Truncate(time.Second)
	sub := strconv.FormatInt(f.id, 10)
	c.User.Create().SetID(f.id).SetUsername(f.username).SetEmail(f.email).SetPasswordHash("x").
		SetFirstName("F").SetLastName("L").SetPictureKey("pictures/" + sub).ExecX(ctx)
	c.AccessToken.Create().SetID("at" + sub).SetRequestID("g" + sub).SetClientID("c").SetSubject(sub).
		SetRequestedAt(now).SetExpiresAt(now.Add(time.Hour)).SetRequest([]byte("{}")).ExecX(ctx)
	c.RefreshChain.Create().SetID("rt" + sub).SetRequestID("g" + sub).SetClientID("c").SetSubject(sub).
		SetRequestedAt(now).SetExpiresAt(now.Add(time.Hour)).SetRequest([]byte("{}")).
		SetHash("h" + sub).SetGeneration(0).SetRotatedAt(now).ExecX(ctx)
	c.AuthorizeCode.Create().SetID("ac" + sub).SetRequestID("g" + sub).SetClientID("c").SetSubject(sub).
		SetRequestedAt(now).SetExpiresAt(now.Add(time.Hour)).SetRequest([]byte("{}")).ExecX(ctx)
	c.PKCERequest.Create().SetID("ac" + sub).SetRequestID("g" + sub).SetClientID("c").SetSubject(sub).
		SetRequestedAt(now).SetExpiresAt(now.Add(time.Hour)).SetRequest([]byte("{}")).ExecX(ctx)
	c.BrowserSession.Create().SetID("bs" + sub).SetTokenHash("h" + sub).SetUserID(f.id).SetAuthTime(now).
		SetCreatedAt(now).SetLastSeenAt(now).SetExpiresAt(now.Add(time.Hour)).ExecX(ctx)
	c.Consent.Create().SetUserID(f.id).SetClientID("c").SetScopes([]string{"openid"}).ExecX(ctx)
	// An email change under way, whose code went to the new address.
	c.OneTimeCode.Create().SetUserID(f.id).SetPurpose(onetimecode.PurposeEmailChange).SetCodeHash([]byte("h")).
		SetExpiresAt(now.Add(time.Hour)).SetNewEmail("new." + f.email).ExecX(ctx)
	c.Passkey.Create().SetID("pk" + sub).SetUserID(f.id).SetCredentialID([]byte("cred" + sub)).SetCredentialHash("ch" + sub).
		SetPublicKey([]byte{1}).SetCreatedAt(now).ExecX(ctx)
	c.WebAuthnChallenge.Create().SetID("wc" + sub).SetCeremony(webauthnchallenge.CeremonyRegistration).SetUserID(f.id).
		SetSessionData([]byte("{}")).SetExpiresAt(now.Add(time.Minute)).ExecX(ctx)
	// Throttles of the account, from all addresses and from one, and of its
	// name as an unknown login; rate-limit windows of the account.
	c.LoginThrottle.Create().SetID("user:" + sub).SetFailures(1).ExecX(ctx)
	c.LoginThrottle.Create().SetID("user:" + sub + "|192.0.2.1").SetFailures(1).ExecX(ctx)
	c.LoginThrottle.Create().SetID("login:" + f.username + "|192.0.2.1").SetFailures(1).ExecX(ctx)
	c.RateLimitWindow.Create().SetID("forgot-mail|user:" + sub + "|192.0.2.1|1").SetCount(1).SetExpiresAt(now.Add(time.Hour)).ExecX(ctx)
	// Mail to the account's address, and the change's code, written for
	// the account, to the new address.
	c.OutboxMessage.Create().SetRecipient(f.email).SetSubject("s").SetText("t").SetHTML("h").
		SetCreatedAt(now).SetNextAttemptAt(now).ExecX(ctx)
	c.OutboxMessage.Create().SetRecipient("new." + f.email).SetUserID(f.id).SetSubject("s").SetText("t").SetHTML("h").
		SetCreatedAt(now).SetNextAttemptAt(now).ExecX(ctx)
}

// eraseCount counts the rows of f in every table, as eraseCreate made
// them.
func eraseCount(t *testing.T, s *Store, f eraseFixture) int {
	t.Helper()
	ctx := context.Background()
	c := s.db
	sub := strconv.FormatInt(f.id, 10)
	n := 0
	for _, q := range []func() (int, error){
		func() (int, error) { return c.User.Query().Where(user.ID(f.id)).Count(ctx) },
		func() (int, error) { return c.AccessToken.Query().Where(accesstoken.Subject(sub)).Count(ctx) },
		func() (int, error) { return c.RefreshChain.Query().Where(refreshchain.Subject(sub)).Count(ctx) },
		func() (int, error) { return c.AuthorizeCode.Query().Where(authorizecode.Subject(sub)).Count(ctx) },
		func() (int, error) { return c.PKCERequest.Query().Where(pkcerequest.Subject(sub)).Count(ctx) },
		func() (int, error) { return c.BrowserSession.Query().Where(browsersession.UserID(f.id)).Count(ctx) },
		func() (int, error) { return c.Consent.Query().Where(consent.UserID(f.id)).Count(ctx) },
		func() (int, error) { return c.OneTimeCode.Query().Where(onetimecode.UserID(f.id)).Count(ctx) },
		func() (int, error) { return c.Passkey.Query().Where(passkey.UserID(f.id)).Count(ctx) },
		func() (int, error) {
			return c.WebAuthnChallenge.Query().Where(webauthnchallenge.UserID(f.id)).Count(ctx)
		},
		func() (int, error) {
			return c.LoginThrottle.Query().Where(loginthrottle.Or(
				loginthrottle.ID("user:"+sub),
				predicate.LoginThrottle(entsql.FieldHasPrefix(loginthrottle.FieldID, "user:"+sub+"|")),
				predicate.LoginThrottle(entsql.FieldHasPrefix(loginthrottle.FieldID, "login:"+f.username+"|")))).Count(ctx)
		},
		func() (int, error) {
			return c.RateLimitWindow.Query().Where(predicate.RateLimitWindow(entsql.FieldContains(ratelimitwindow.FieldID, "|user:"+sub+"|"))).Count(ctx)
		},
		func() (int, error) {
			return c.OutboxMessage.Query().Where(outboxmessage.Or(outboxmessage.Recipient(f.email), outboxmessage.UserID(f.id))).Count(ctx)
		},
	} {
		k, err := q()
		if err != nil {
			t.Fatal(err)
		}
		n += k
	}
	return n
}

// TestEraseUser: every row of the user goes, each row of another user
// stays (user 1's keys are prefixes of user 10's), the user comes back as
// it was, erasing again is ErrNotFound, and a caller's transaction that
// rolls back keeps everything.
func TestEraseUser(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ada := eraseFixture{1, "ada", "ada@example.com"}
		bob := eraseFixture{10, "ada1", "ada1@example.com"}
		eraseCreate(t, s, ada)
		eraseCreate(t, s, bob)
		if n := eraseCount(t, s, ada); n != 16 {
			t.Fatalf("%d rows of ada before, want 16", n)
		}
		// The owner of the address ada's change names has mail of their
		// own there: ada's erasure must not take it.
		s.db.OutboxMessage.Create().SetRecipient("new." + ada.email).SetSubject("s").SetText("t").SetHTML("h").
			SetCreatedAt(time.Now().UTC()).SetNextAttemptAt(time.Now().UTC()).ExecX(ctx)

		var named *User
		erased, err := s.EraseUser(ctx, ada.id, func(u *User) ErasureNames {
			named = u
			return ada.names()
		})
		if err != nil {
			t.Fatalf("EraseUser: %v", err)
		}
		if erased == nil || erased.ID != ada.id || erased.Username != ada.username || erased.Email != ada.email || erased.PictureKey != "pictures/1" {
			t.Errorf("EraseUser gave %+v", erased)
		}
		if named == nil || named.ID != ada.id || named.Email != ada.email {
			t.Errorf("names was called with %+v", named)
		}
		if n := eraseCount(t, s, ada); n != 0 {
			t.Errorf("%d rows of ada left", n)
		}
		if n := s.db.OutboxMessage.Query().Where(outboxmessage.Recipient("new." + ada.email)).CountX(ctx); n != 1 {
			t.Errorf("%d messages to the address of ada's change left, want the 1 its owner had", n)
		}
		if n := eraseCount(t, s, bob); n != 16 {
			t.Errorf("bob has %d rows, had 16", n)
		}

		called := false
		_, err = s.EraseUser(ctx, ada.id, func(*User) ErasureNames { called = true; return ada.names() })
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("erasing again: %v, want ErrNotFound", err)
		}
		if called {
			t.Error("names was called for a user that is gone")
		}

		// In the caller's transaction, which decides.
		errRollback := errors.New("roll back")
		err = s.InTx(ctx, func(ctx context.Context) error {
			if _, err := s.EraseUser(ctx, bob.id, func(*User) ErasureNames { return bob.names() }); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Errorf("a rolled-back erasure: %v", err)
		}
		if n := eraseCount(t, s, bob); n != 16 {
			t.Errorf("after a rolled-back erasure bob has %d rows, had 16", n)
		}
	})
}

// TestHoldUser: the shared lock needs a transaction and a user.
func TestHoldUser(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		eraseCreate(t, s, eraseFixture{3, "cy", "cy@example.com"})
		if err := s.holdUser(ctx, 3); err == nil {
			t.Error("holdUser outside a transaction succeeded")
		}
		if err := s.InTx(ctx, func(ctx context.Context) error { return s.holdUser(ctx, 3) }); err != nil {
			t.Errorf("holdUser of a user: %v", err)
		}
		if err := s.InTx(ctx, func(ctx context.Context) error { return s.holdUser(ctx, 4) }); !errors.Is(err, ErrNotFound) {
			t.Errorf("holdUser of no user: %v, want ErrNotFound", err)
		}
	})
}

// TestHoldUserOrdersErasure: a write that holds the user commits before
// the erasure deletes its table, so the erasure takes its row too; a write
// that comes after finds no user. Without the two locks the erasure would
// delete the sessions before the holding transaction commits its own, and
// leave it behind.
func TestHoldUserOrdersErasure(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		f := eraseFixture{5, "di", "di@example.com"}
		eraseCreate(t, s, f)
		now := time.Now().UTC()

		held := make(chan struct{})
		erased := make(chan error, 1)
		go func() {
			<-held
			_, err := s.EraseUser(ctx, f.id, func(*User) ErasureNames { return f.names() })
			erased <- err
		}()
		err := s.InTx(ctx, func(ctx context.Context) error {
			if err := s.holdUser(ctx, f.id); err != nil {
				return err
			}
			close(held)
			// Time for the erasure to reach the user's row and wait.
			time.Sleep(200 * time.Millisecond)
			return s.client(ctx).BrowserSession.Create().SetID("late").SetTokenHash("late").SetUserID(f.id).SetAuthTime(now).
				SetCreatedAt(now).SetLastSeenAt(now).SetExpiresAt(now.Add(time.Hour)).Exec(ctx)
		})
		if err != nil {
			t.Fatalf("the holding write: %v", err)
		}
		if err := <-erased; err != nil {
			t.Fatalf("EraseUser: %v", err)
		}
		if n := eraseCount(t, s, f); n != 0 {
			t.Errorf("%d rows of the user left after the erasure", n)
		}
		// After the erasure, a write that holds the user finds none.
		err = s.InTx(ctx, func(ctx context.Context) error { return s.holdUser(ctx, f.id) })
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("holdUser after the erasure: %v, want ErrNotFound", err)
		}
	})
}

// TestWritesForAGoneUser: a code or a passkey for a user that is gone (an
// erasure committed first) is refused, not stored to outlive it: each
// write for a user takes the user's row first.
func TestWritesForAGoneUser(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		f := eraseFixture{7, "gone", "gone@example.com"}
		eraseCreate(t, s, f)
		if _, err := s.EraseUser(ctx, f.id, func(*User) ErasureNames { return f.names() }); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Second)
		if err := s.PutCode(ctx, Code{UserID: f.id, Purpose: CodeReset, Hash: []byte("h"), ExpiresAt: now.Add(time.Hour), CreatedAt: now}); !errors.Is(err, ErrNotFound) {
			t.Errorf("a code for an erased user: %v, want ErrNotFound", err)
		}
		if _, err := s.CreatePasskey(ctx, Passkey{ID: "pk-late", UserID: f.id, CredentialID: []byte("late"), PublicKey: []byte{1}, Name: "late", CreatedAt: now}); !errors.Is(err, ErrNotFound) {
			t.Errorf("a passkey for an erased user: %v, want ErrNotFound", err)
		}
		if n := eraseCount(t, s, f); n != 0 {
			t.Errorf("%d rows of the erased user", n)
		}
	})
}
