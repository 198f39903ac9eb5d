package account

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"idp/database"
	"idp/ent"
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
	"idp/storage"
)

// Erase deletes the user userID and every row that belongs to the user, on
// the transaction ctx carries (it opens one without): its token rows
// (access, refresh, authorization codes and PKCE requests, by the decimal
// subject), browser sessions, consents, one-time codes, the login throttles
// and rate-limit windows keyed by the user or by its username or email, and
// the mail queued to its address (and to the new address of an email
// change under way). It returns the user as it was, so that
// the caller can queue the picture's deletion and a notice in the same
// transaction; ErrNotFound when there is no such user (erased already).
//
// The rows are deleted here, in one place, rather than by each package
// that writes them: one transaction has to hold them all, and one list is
// what the erasure test checks against the schema.
//
// The user's row is locked for update before anything else. Every token
// and code write for a user takes a shared lock on that row first
// (fositestore), so a login or refresh under way either commits before
// this transaction reads the token tables, or waits and then finds no user.
func (s *Service) Erase(ctx context.Context, userID int64) (*storage.User, error) {
	var erased *storage.User
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		tx, _ := database.TxFrom(ctx)
		c := tx.Client()
		if err := lockUser(ctx, c, userID); err != nil {
			return err
		}
		u, err := s.store.UserByID(ctx, userID)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: %d", ErrNotFound, userID)
		} else if err != nil {
			return fmt.Errorf("account: erase: read user: %w", err)
		}
		sub := strconv.FormatInt(userID, 10)
		// Keys of the lock-out (lockout.go) and of the rate limits: the
		// user's, and those of its names as an unknown login (before the
		// signup, or mistyped), which hold the name itself.
		keys := []string{userKey(userID), "login:" + u.Username, "login:" + u.Email}
		var throttles []predicate.LoginThrottle
		var windowKeys []predicate.RateLimitWindow
		for _, k := range keys {
			throttles = append(throttles, loginthrottle.ID(k), predicate.LoginThrottle(func(s *entsql.Selector) { s.Where(entsql.HasPrefix(s.C(loginthrottle.FieldID), k+"|")) }))
			// <rule>|<key>|<window start> or <rule>|<key>|<address>|<window start>
			windowKeys = append(windowKeys, predicate.RateLimitWindow(func(s *entsql.Selector) { s.Where(entsql.Contains(s.C(ratelimitwindow.FieldID), "|"+k+"|")) }))
		}
		recipients := emailSpellings(u.Email, u.Email)
		// An email change under way has mailed its code to the new
		// address, which is the user's too.
		pending, err := c.OneTimeCode.Query().
			Where(onetimecode.UserID(userID), onetimecode.NewEmailNotNil()).
			All(ctx)
		if err != nil {
			return fmt.Errorf("account: erase: read pending email changes: %w", err)
		}
		for _, p := range pending {
			recipients = append(recipients, *p.NewEmail)
		}
		steps := []struct {
			what string
			del  func() (int, error)
		}{
			{"access tokens", func() (int, error) {
				return c.AccessToken.Delete().Where(accesstoken.Subject(sub)).Exec(ctx)
			}},
			{"refresh-token chains", func() (int, error) {
				return c.RefreshChain.Delete().Where(refreshchain.Subject(sub)).Exec(ctx)
			}},
			{"authorization codes", func() (int, error) {
				return c.AuthorizeCode.Delete().Where(authorizecode.Subject(sub)).Exec(ctx)
			}},
			{"PKCE requests", func() (int, error) {
				return c.PKCERequest.Delete().Where(pkcerequest.Subject(sub)).Exec(ctx)
			}},
			{"browser sessions", func() (int, error) {
				return c.BrowserSession.Delete().Where(browsersession.UserID(userID)).Exec(ctx)
			}},
			{"consents", func() (int, error) {
				return c.Consent.Delete().Where(consent.UserID(userID)).Exec(ctx)
			}},
			{"one-time codes", func() (int, error) {
				return c.OneTimeCode.Delete().Where(onetimecode.UserID(userID)).Exec(ctx)
			}},
			{"passkeys", func() (int, error) {
				return c.Passkey.Delete().Where(passkey.UserID(userID)).Exec(ctx)
			}},
			{"passkey registrations", func() (int, error) {
				return c.WebAuthnChallenge.Delete().Where(webauthnchallenge.UserID(userID)).Exec(ctx)
			}},
			{"login throttles", func() (int, error) {
				return c.LoginThrottle.Delete().Where(loginthrottle.Or(throttles...)).Exec(ctx)
			}},
			{"rate-limit windows", func() (int, error) {
				return c.RateLimitWindow.Delete().Where(ratelimitwindow.Or(windowKeys...)).Exec(ctx)
			}},
			{"queued mail", func() (int, error) {
				return c.OutboxMessage.Delete().Where(outboxmessage.RecipientIn(recipients...)).Exec(ctx)
			}},
			{"user", func() (int, error) {
				return c.User.Delete().Where(user.ID(userID)).Exec(ctx)
			}},
		}
		for _, st := range steps {
			if _, err := st.del(); err != nil {
				return fmt.Errorf("account: erase %s: %w", st.what, err)
			}
		}
		erased = u
		return nil
	})
	if err != nil {
		return nil, err
	}
	return erased, nil
}

// lockUser takes the write lock on the user's row (PostgreSQL and MySQL;
// an SQLite transaction holds the database's write lock from its start).
// A missing row is not an error here: Erase reads the user next.
func lockUser(ctx context.Context, c *ent.Client, userID int64) error {
	if c.Dialect() == dialect.SQLite {
		return nil
	}
	rows, err := c.QueryContext(ctx, database.Rebind(c.Dialect(),
		"SELECT "+user.FieldID+" FROM "+user.Table+" WHERE "+user.FieldID+" = ? FOR UPDATE"), userID)
	if err != nil {
		return fmt.Errorf("account: erase: lock user: %w", err)
	}
	for rows.Next() {
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("account: erase: lock user: %w", err)
	}
	return nil
}

// HoldUser takes a shared lock on the user's row for the rest of the
// transaction ctx must carry, and gives ErrNotFound when there is no such
// user. Whoever writes a row that belongs to a user (a token, a code, a
// browser session, a consent) calls it first in the transaction of that
// write: Erase locks the row for update before it deletes anything, so the
// write either commits before the erasure reads its table, and is erased
// with the rest, or waits for the erasure to commit and finds no user. On
// PostgreSQL the lock is FOR KEY SHARE, which only a delete (or a change
// of the id) waits for; on MySQL and MariaDB a shared lock; an SQLite
// transaction holds the database's write lock from its start, which
// orders it with the erasure already.
func HoldUser(ctx context.Context, userID int64) error {
	tx, ok := database.TxFrom(ctx)
	if !ok {
		return errors.New("account: HoldUser outside a transaction")
	}
	c := tx.Client()
	q := "SELECT 1 FROM " + user.Table + " WHERE " + user.FieldID + " = ?"
	switch c.Dialect() {
	case dialect.Postgres:
		q += " FOR KEY SHARE"
	case dialect.MySQL:
		q += " LOCK IN SHARE MODE"
	}
	rows, err := c.QueryContext(ctx, database.Rebind(c.Dialect(), q), userID)
	if err != nil {
		return fmt.Errorf("account: hold user: %w", err)
	}
	found := rows.Next()
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("account: hold user: %w", err)
	}
	if !found {
		return fmt.Errorf("%w: %d", ErrNotFound, userID)
	}
	return nil
}
