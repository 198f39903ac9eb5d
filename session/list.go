package session

import (
	"context"
	"fmt"

	entsql "entgo.io/ent/dialect/sql"

	"idp/ent/browsersession"
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
	rows, err := s.client(ctx).BrowserSession.Query().
		Where(browsersession.UserID(userID), browsersession.ExpiresAtGT(now), browsersession.LastSeenAtGT(now.Add(-s.idleTTL))).
		Order(browsersession.ByCreatedAt(entsql.OrderDesc()), browsersession.ByID()).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("session: list user's sessions: %w", err)
	}
	out := make([]Session, 0, len(rows))
	for _, row := range rows {
		out = append(out, s.fromRow(row, row.LastSeenAt))
	}
	return out, nil
}

// DeleteOfUser ends the session id provided it is userID's, and reports
// whether there was one to end: a user ending a session from a list can
// name only their own.
func (s *Store) DeleteOfUser(ctx context.Context, userID int64, id string) (bool, error) {
	n, err := s.client(ctx).BrowserSession.Delete().
		Where(browsersession.ID(id), browsersession.UserID(userID)).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("session: delete user's session: %w", err)
	}
	return n > 0, nil
}
