package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	entdialect "entgo.io/ent/dialect"
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
)

// ErasureNames are the names under which rows that are not keyed by the
// user's id belong to it. Their formats are the business of the packages
// that write those rows, so the caller of EraseUser gives them.
type ErasureNames struct {
	// Keys are the keys of the user's login throttles (the throttle whose
	// id is the key, and those whose id is the key, "|" and more) and of
	// its rate-limit windows (those whose id holds "|", the key and "|").
	Keys []string
	// Recipients are the addresses whose mail goes (the account's own),
	// beside the messages written for the account wherever they went.
	Recipients []string
}

// EraseUser deletes the user userID and every row that belongs to it, on
// the transaction ctx carries (it opens one without): its token rows
// (access, refresh, authorization codes and PKCE requests, by the decimal
// subject), browser sessions, consents, one-time codes, passkeys and
// passkey registrations, the login throttles and rate-limit windows of the
// names' keys, and the mail written for the user (the code of an email
// change under way included) or sent to the names' recipients. Mail to
// another address that the user did not cause stays: an account's email
// change may name anyone's address, and erasing it must not take that
// person's mail. names is called with the user as
// read under the lock, before anything is deleted. It returns the user as
// it was, so that the caller can queue the picture's deletion and a notice
// in the same transaction; ErrNotFound when there is no such user.
//
// The rows are deleted here, in one place, rather than by each domain that
// writes them: one transaction has to hold them all, and one list is what
// the erasure test checks against the schema.
//
// The user's row is locked for update before anything else. Every token,
// code, session or consent write for a user takes a shared lock on that
// row first (holdUser), so a login or refresh under way either commits
// before this transaction reads the token tables, or waits and then finds
// no user.
func (s *Store) EraseUser(ctx context.Context, userID int64, names func(*User) ErasureNames) (*User, error) {
	var erased *User
	err := s.InTx(ctx, func(ctx context.Context) error {
		c := s.client(ctx)
		if err := s.eraseLockUser(ctx, c, userID); err != nil {
			return err
		}
		row, err := c.User.Get(ctx, userID)
		if err != nil {
			return fmt.Errorf("storage: erase: read user %d: %w", userID, wrap(err))
		}
		u := userOf(row)
		n := names(u)
		sub := strconv.FormatInt(userID, 10)
		var throttles []predicate.LoginThrottle
		var windows []predicate.RateLimitWindow
		for _, k := range n.Keys {
			throttles = append(throttles, loginthrottle.ID(k), predicate.LoginThrottle(func(s *entsql.Selector) { s.Where(entsql.HasPrefix(s.C(loginthrottle.FieldID), k+"|")) }))
			// <rule>|<key>|<window start> or <rule>|<key>|<address>|<window start>
			windows = append(windows, predicate.RateLimitWindow(func(s *entsql.Selector) { s.Where(entsql.Contains(s.C(ratelimitwindow.FieldID), "|"+k+"|")) }))
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
			// Found by a plain read, deleted by id: these columns have no
			// index, and InnoDB would keep every row a DELETE's scan
			// passed locked until the commit (every other user's codes
			// and rate-limit windows). No code of the user can appear
			// meanwhile (codes are written under the user's row, which
			// this transaction holds); a rate-limit window counted
			// meanwhile holds only a count, and expires within its hour.
			{"authorization codes", func() (int, error) {
				ids, err := c.AuthorizeCode.Query().Where(authorizecode.Subject(sub)).IDs(ctx)
				if err != nil || len(ids) == 0 {
					return 0, err
				}
				return c.AuthorizeCode.Delete().Where(authorizecode.IDIn(ids...)).Exec(ctx)
			}},
			{"PKCE requests", func() (int, error) {
				ids, err := c.PKCERequest.Query().Where(pkcerequest.Subject(sub)).IDs(ctx)
				if err != nil || len(ids) == 0 {
					return 0, err
				}
				return c.PKCERequest.Delete().Where(pkcerequest.IDIn(ids...)).Exec(ctx)
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
				if len(throttles) == 0 {
					return 0, nil
				}
				return c.LoginThrottle.Delete().Where(loginthrottle.Or(throttles...)).Exec(ctx)
			}},
			{"rate-limit windows", func() (int, error) {
				if len(windows) == 0 {
					return 0, nil
				}
				ids, err := c.RateLimitWindow.Query().Where(ratelimitwindow.Or(windows...)).IDs(ctx)
				if err != nil || len(ids) == 0 {
					return 0, err
				}
				return c.RateLimitWindow.Delete().Where(ratelimitwindow.IDIn(ids...)).Exec(ctx)
			}},
			{"mail", func() (int, error) {
				return c.OutboxMessage.Delete().Where(userMail(userID, n.Recipients...)).Exec(ctx)
			}},
			{"user", func() (int, error) {
				return c.User.Delete().Where(user.ID(userID)).Exec(ctx)
			}},
		}
		for _, st := range steps {
			if _, err := st.del(); err != nil {
				return fmt.Errorf("storage: erase %s: %w", st.what, wrap(err))
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

// eraseLockUser takes the write lock on the user's row (PostgreSQL and
// MySQL; an SQLite transaction holds the database's write lock from its
// start). A missing row is not an error here: EraseUser reads the user
// next.
func (s *Store) eraseLockUser(ctx context.Context, c *ent.Client, userID int64) error {
	if s.dialect == entdialect.SQLite {
		return nil
	}
	rows, err := c.QueryContext(ctx, s.rebind("SELECT "+user.FieldID+" FROM "+user.Table+" WHERE "+user.FieldID+" = ? FOR UPDATE"), userID)
	if err != nil {
		return fmt.Errorf("storage: erase: lock user: %w", wrap(err))
	}
	for rows.Next() {
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("storage: erase: lock user: %w", wrap(err))
	}
	return nil
}

// holdUser takes a shared lock on the user's row for the rest of the
// transaction ctx must carry, and gives ErrNotFound when there is no such
// user. Whoever writes a row that belongs to a user (a token, a code, a
// browser session, a consent) calls it first in the transaction of that
// write: EraseUser locks the row for update before it deletes anything, so
// the write either commits before the erasure reads its table, and is
// erased with the rest, or waits for the erasure to commit and finds no
// user. On PostgreSQL the lock is FOR KEY SHARE, which only a delete (or a
// change of the id) waits for; on MySQL and MariaDB a shared lock; an
// SQLite transaction holds the database's write lock from its start, which
// orders it with the erasure already.
func (s *Store) holdUser(ctx context.Context, userID int64) error {
	if _, ok := database.TxFrom(ctx); !ok {
		return errors.New("storage: hold user outside a transaction")
	}
	q := "SELECT 1 FROM " + user.Table + " WHERE " + user.FieldID + " = ?" + holdUserLock(s.dialect)
	rows, err := s.client(ctx).QueryContext(ctx, s.rebind(q), userID)
	if err != nil {
		return fmt.Errorf("storage: hold user: %w", wrap(err))
	}
	found := rows.Next()
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("storage: hold user: %w", wrap(err))
	}
	if !found {
		return fmt.Errorf("%w: user %d", ErrNotFound, userID)
	}
	return nil
}

// holdUserLock is the locking clause of a read of the user's row that
// holds it against an erasure (holdUser, and the refresh grant's
// statements that hold the user within themselves: userHeld).
func holdUserLock(dialect string) string {
	switch dialect {
	case entdialect.Postgres:
		return " FOR KEY SHARE"
	case entdialect.MySQL:
		return " LOCK IN SHARE MODE"
	}
	return ""
}

// userMail is the mail of a user in the outbox: written for it (user_id),
// wherever it went, or sent to one of its addresses. What an erasure
// deletes and what an export shows.
func userMail(userID int64, addresses ...string) predicate.OutboxMessage {
	if len(addresses) == 0 {
		return outboxmessage.UserID(userID)
	}
	return outboxmessage.Or(outboxmessage.UserID(userID), outboxmessage.RecipientIn(addresses...))
}
