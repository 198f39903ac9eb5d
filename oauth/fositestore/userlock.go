package fositestore

import (
	"context"
	"errors"
	"fmt"

	"entgo.io/ent/dialect"

	"idp/database"
	"idp/ent/user"
	"idp/oauth/token"
)

// ErrUserGone: a token or code was to be written for a user whose account
// no longer exists (erased while the grant was under way). It wraps
// ErrRevoked, which is what it means to a refresh.
var ErrUserGone = fmt.Errorf("%w: the user's account is gone", ErrRevoked)

// forUser runs write, which stores a row for subject, so that no row of an
// erased user is written after the erasure: for a user's subject, in one
// transaction (or the one ctx carries) that first takes a shared lock on the
// user's row and gives ErrUserGone without it. An erasure locks that row
// for update first of all, so the two are ordered: either the write commits
// before the erasure deletes the user's tokens (and they are deleted with
// the others), or it waits for the erasure's commit and finds no user. On
// SQLite, whose transactions each take the write lock at BEGIN, the
// transaction alone orders them. Subjects that are not users (a client's
// own token) are written as they are.
func (s *Store) forUser(ctx context.Context, subject string, write func(ctx context.Context) error) error {
	id, isUser := token.UserID(subject)
	if !isUser {
		return write(ctx)
	}
	return database.InTx(ctx, s.db, func(ctx context.Context) error {
		c := s.client(ctx)
		q := "SELECT 1 FROM " + user.Table + " WHERE " + user.FieldID + " = ?"
		switch c.Dialect() {
		case dialect.Postgres:
			q += " FOR KEY SHARE" // conflicts with DELETE, not with other updates
		case dialect.MySQL:
			q += " LOCK IN SHARE MODE" // MySQL 8 and MariaDB alike
		}
		rows, err := c.QueryContext(ctx, database.Rebind(c.Dialect(), q), id)
		if err != nil {
			return MapError(err)
		}
		found := rows.Next()
		err = errors.Join(rows.Err(), rows.Close())
		if err != nil {
			return MapError(err)
		}
		if !found {
			return ErrUserGone
		}
		return write(ctx)
	})
}
