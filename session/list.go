package session

import (
	"context"
	"errors"
	"fmt"

	"idp/storage"
)

// CleanUserAgent is a user agent as a Store keeps it: valid UTF-8 without
// control characters, at most 255 bytes. Other stores of a user agent (a
// token grant's) use it, so that every list of logins shows them alike.
func CleanUserAgent(ua string) string { return cleanUserAgent(ua) }

// ListUser returns the live sessions of a user (neither past their
// absolute end nor idle too long), newest first. It reads only; a listing
// does not count as the session being seen.
func (s *Store) ListUser(ctx context.Context, userID int64) ([]Session, error) {
	now := s.clock()
	rows, err := s.db.UserSessions(ctx, userID, now, now.Add(-s.idleTTL))
	if err != nil {
		return nil, fmt.Errorf("session: list user's sessions: %w", err)
	}
	out := make([]Session, 0, len(rows))
	for i := range rows {
		out = append(out, s.fromRow(&rows[i], rows[i].LastSeenAt))
	}
	return out, nil
}

// DeleteOfUser ends the session id provided it is userID's, and reports
// whether there was one to end: a user ending a session from a list can
// name only their own.
func (s *Store) DeleteOfUser(ctx context.Context, userID int64, id string) (bool, error) {
	err := s.db.DeleteUserSession(ctx, userID, id)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("session: delete user's session: %w", err)
	}
	return true, nil
}
