package account

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"idp/database"
	"idp/database/databasetest"
	"idp/ent/accesstoken"
	"idp/ent/authorizecode"
	"idp/ent/browsersession"
	"idp/ent/consent"
	"idp/ent/loginthrottle"
	"idp/ent/onetimecode"
	"idp/ent/outboxmessage"
	"idp/ent/pkcerequest"
	"idp/ent/predicate"
	"idp/ent/ratelimitwindow"
	"idp/ent/refreshchain"
	"idp/ent/user"
)

// TestErase: every row of the user goes, under each of its names (its id,
// its lock-out and rate-limit keys, its username and email as an unknown
// login, its addresses), each row of another user stays, and erasing
// again is ErrNotFound.
func TestErase(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s := newService(t, db, cheap, 0, Options{CodeKey: make([]byte, 32)})
		now := time.Now().UTC().Truncate(time.Second)
		// rows gives the user rows in every table it can have one.
		rows := func(u who) {
			t.Helper()
			sub := strconv.FormatInt(u.ID, 10)
			c := db.Ent
			c.AccessToken.Create().SetID("at" + sub).SetRequestID("g" + sub).SetClientID("c").SetSubject(sub).
				SetRequestedAt(now).SetExpiresAt(now.Add(time.Hour)).SetRequest([]byte("{}")).ExecX(ctx)
			c.RefreshChain.Create().SetID("rt" + sub).SetRequestID("g" + sub).SetClientID("c").SetSubject(sub).
				SetRequestedAt(now).SetExpiresAt(now.Add(time.Hour)).SetRequest([]byte("{}")).
				SetHash("h" + sub).SetGeneration(0).SetRotatedAt(now).ExecX(ctx)
			c.AuthorizeCode.Create().SetID("ac" + sub).SetRequestID("g" + sub).SetClientID("c").SetSubject(sub).
				SetRequestedAt(now).SetExpiresAt(now.Add(time.Hour)).SetRequest([]byte("{}")).ExecX(ctx)
			c.PKCERequest.Create().SetID("ac" + sub).SetRequestID("g" + sub).SetClientID("c").SetSubject(sub).
				SetRequestedAt(now).SetExpiresAt(now.Add(time.Hour)).SetRequest([]byte("{}")).ExecX(ctx)
			c.BrowserSession.Create().SetID("bs" + sub).SetTokenHash("h" + sub).SetUserID(u.ID).SetAuthTime(now).
				SetCreatedAt(now).SetLastSeenAt(now).SetExpiresAt(now.Add(time.Hour)).ExecX(ctx)
			c.Consent.Create().SetUserID(u.ID).SetClientID("c").SetScopes([]string{"openid"}).ExecX(ctx)
			if _, err := s.IssueResetCode(ctx, u.ID); err != nil {
				t.Fatal(err)
			}
			// A failed login from an address, and one with the username
			// before the account existed.
			c.LoginThrottle.Create().SetID("user:" + sub + "|192.0.2.1").SetFailures(1).ExecX(ctx)
			c.LoginThrottle.Create().SetID("user:" + sub).SetFailures(1).ExecX(ctx)
			c.LoginThrottle.Create().SetID("login:" + u.Username + "|192.0.2.1").SetFailures(1).ExecX(ctx)
			c.RateLimitWindow.Create().SetID("forgot-mail|user:" + sub + "|192.0.2.1|1").SetCount(1).SetExpiresAt(now.Add(time.Hour)).ExecX(ctx)
			c.RateLimitWindow.Create().SetID("verify-mail|user:" + sub + "|1").SetCount(1).SetExpiresAt(now.Add(time.Hour)).ExecX(ctx)
			c.OutboxMessage.Create().SetRecipient(u.Email).SetSubject("s").SetText("t").SetHTML("h").
				SetCreatedAt(now).SetNextAttemptAt(now).ExecX(ctx)
		}
		count := func(u who) int {
			t.Helper()
			sub := strconv.FormatInt(u.ID, 10)
			c := db.Ent
			n := 0
			for _, q := range []func() (int, error){
				func() (int, error) { return c.User.Query().Where(userID(u.ID)).Count(ctx) },
				func() (int, error) { return c.AccessToken.Query().Where(accessSubject(sub)).Count(ctx) },
				func() (int, error) { return c.RefreshChain.Query().Where(refreshSubject(sub)).Count(ctx) },
				func() (int, error) { return c.AuthorizeCode.Query().Where(codeSubject(sub)).Count(ctx) },
				func() (int, error) { return c.PKCERequest.Query().Where(pkceSubject(sub)).Count(ctx) },
				func() (int, error) { return c.BrowserSession.Query().Where(sessionUser(u.ID)).Count(ctx) },
				func() (int, error) { return c.Consent.Query().Where(consentUser(u.ID)).Count(ctx) },
				func() (int, error) { return c.OneTimeCode.Query().Where(codeUser(u.ID)).Count(ctx) },
				func() (int, error) { return c.LoginThrottle.Query().Where(throttleOf(sub, u.Username)).Count(ctx) },
				func() (int, error) { return c.RateLimitWindow.Query().Where(windowOf(sub)).Count(ctx) },
				func() (int, error) { return c.OutboxMessage.Query().Where(mailTo(u.Email)).Count(ctx) },
			} {
				k, err := q()
				if err != nil {
					t.Fatal(err)
				}
				n += k
			}
			return n
		}
		ada, err := s.Create(ctx, NewUser{Username: "ada", Email: "ada@example.com", Password: "correct horse", FirstName: "A", LastName: "L"})
		if err != nil {
			t.Fatal(err)
		}
		// user 1's keys must not match user 10's ("user:1" is a prefix
		// of "user:10").
		var bob who
		for {
			b, err := s.Create(ctx, NewUser{Username: "bob" + strconv.Itoa(int(ada.ID)), Email: "bob" + strconv.Itoa(int(ada.ID)) + "@example.com",
				Password: "correct horse", FirstName: "B", LastName: "B"})
			if err != nil {
				t.Fatal(err)
			}
			bob = who{b.ID, b.Username, b.Email}
			if strconv.FormatInt(bob.ID, 10)[:len(strconv.FormatInt(ada.ID, 10))] == strconv.FormatInt(ada.ID, 10) && bob.ID != ada.ID {
				break
			}
			db.Ent.User.DeleteOneID(bob.ID).ExecX(ctx)
		}
		rows(who{ada.ID, ada.Username, ada.Email})
		rows(bob)
		if n := count(who{ada.ID, ada.Username, ada.Email}); n != 14 {
			t.Fatalf("%d rows of ada before, want 14", n)
		}
		// An email change under way: its code, and its mail to the new
		// address.
		if _, err := s.IssueEmailChangeCode(ctx, ada.ID, "ada.new@example.com"); err != nil {
			t.Fatal(err)
		}
		db.Ent.OutboxMessage.Create().SetRecipient("ada.new@example.com").SetUserID(ada.ID).SetSubject("s").SetText("t").SetHTML("h").
			SetCreatedAt(now).SetNextAttemptAt(now).ExecX(ctx)
		// Mail of the address's owner, which ada's erasure must leave.
		db.Ent.OutboxMessage.Create().SetRecipient("ada.new@example.com").SetSubject("s").SetText("t").SetHTML("h").
			SetCreatedAt(now).SetNextAttemptAt(now).ExecX(ctx)
		bobRows := count(bob)

		erased, err := s.Erase(ctx, ada.ID)
		if err != nil || erased.ID != ada.ID || erased.Email != "ada@example.com" {
			t.Fatalf("Erase: %+v, %v", erased, err)
		}
		if n := count(who{ada.ID, ada.Username, ada.Email}); n != 0 {
			t.Errorf("%d rows of ada left", n)
		}
		if n := db.Ent.OutboxMessage.Query().Where(mailTo("ada.new@example.com")).CountX(ctx); n != 1 {
			t.Errorf("%d mails to the new address of ada's email change left, want the 1 of its owner", n)
		}
		if n := count(bob); n != bobRows {
			t.Errorf("bob (id %d) has %d rows, had %d", bob.ID, n, bobRows)
		}
		if _, err := s.Erase(ctx, ada.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("erasing again: %v", err)
		}
		// In the caller's transaction, which decides.
		errRollback := errors.New("roll back")
		err = database.InTx(ctx, db.Ent, func(ctx context.Context) error {
			if _, err := s.Erase(ctx, bob.ID); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) || count(bob) != bobRows {
			t.Errorf("a rolled-back erasure: %v, %d rows of %d", err, count(bob), bobRows)
		}
	})
}

// who is a user as the erasure test needs it.
type who struct {
	ID              int64
	Username, Email string
}

// Predicates of the tables, for TestErase's counts.
var (
	userID         = user.ID
	accessSubject  = accesstoken.Subject
	refreshSubject = refreshchain.Subject
	codeSubject    = authorizecode.Subject
	pkceSubject    = pkcerequest.Subject
	sessionUser    = browsersession.UserID
	consentUser    = consent.UserID
	codeUser       = onetimecode.UserID
	mailTo         = outboxmessage.Recipient
)

func throttleOf(sub, username string) predicate.LoginThrottle {
	return loginthrottle.Or(
		loginthrottle.ID("user:"+sub),
		predicate.LoginThrottle(entsql.FieldHasPrefix(loginthrottle.FieldID, "user:"+sub+"|")),
		predicate.LoginThrottle(entsql.FieldHasPrefix(loginthrottle.FieldID, "login:"+username+"|")))
}

func windowOf(sub string) predicate.RateLimitWindow {
	return predicate.RateLimitWindow(entsql.FieldContains(ratelimitwindow.FieldID, "|user:"+sub+"|"))
}
