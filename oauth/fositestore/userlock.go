package fositestore

import (
	"context"
	"errors"
	"fmt"

	"idp/account"
	"idp/database"
	"idp/oauth/token"
)

// ErrUserGone: a token or code was to be written for a user whose account
// no longer exists (erased while the grant was under way). It wraps
// ErrRevoked, which is what it means to a refresh.
var ErrUserGone = fmt.Errorf("%w: the user's account is gone", ErrRevoked)

// forUser runs write, which stores a row for subject, so that no row of an
// erased user is written after the erasure: for a user's subject, in one
// transaction (or the one ctx carries) that first holds the user's row
// (account.HoldUser) and gives ErrUserGone without it. Subjects that are
// not users (a client's own token) are written as they are. The refresh
// grant's two statements hold the user inside the statement instead
// (userHeld).
func (s *Store) forUser(ctx context.Context, subject string, write func(ctx context.Context) error) error {
	id, isUser := token.UserID(subject)
	if !isUser {
		return write(ctx)
	}
	return database.InTx(ctx, s.db, func(ctx context.Context) error {
		err := account.HoldUser(ctx, id)
		if errors.Is(err, account.ErrNotFound) {
			return ErrUserGone
		} else if err != nil {
			return MapError(err)
		}
		return write(ctx)
	})
}
