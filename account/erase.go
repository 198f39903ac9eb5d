package account

import (
	"context"
	"errors"
	"fmt"

	"idp/storage"
)

// Erase deletes the user userID and every row that belongs to the user, on
// the transaction ctx carries (it opens one without): its token rows,
// browser sessions, consents, one-time codes, passkeys, the login
// throttles and rate-limit windows keyed by the user or by its username or
// email, and the mail written for it or sent to its address (not another
// person's mail to the address of an email change under way); see
// storage.Store.EraseUser. It returns the
// user as it was, so that the caller can queue the picture's deletion and
// a notice in the same transaction; ErrNotFound when there is no such user
// (erased already).
func (s *Service) Erase(ctx context.Context, userID int64) (*storage.User, error) {
	u, err := s.store.EraseUser(ctx, userID, func(u *storage.User) storage.ErasureNames {
		return storage.ErasureNames{
			// Keys of the lock-out (lockout.go) and of the rate limits:
			// the user's, and those of its names as an unknown login
			// (before the signup, or mistyped), which hold the name
			// itself.
			Keys:       []string{userKey(userID), "login:" + u.Username, "login:" + u.Email},
			Recipients: emailSpellings(u.Email, u.Email),
		}
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, userID)
	} else if err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	return u, nil
}
