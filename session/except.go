package session

import (
	"context"
	"fmt"
)

// DeleteUserExcept ends every session of a user but keepID, as after a
// password change made in the browser session keepID (which stays signed
// in); an empty keepID ends them all, like DeleteUser. It runs in the
// transaction ctx carries, if any.
func (s *Store) DeleteUserExcept(ctx context.Context, userID int64, keepID string) error {
	if err := s.db.DeleteUserSessions(ctx, userID, keepID); err != nil {
		return fmt.Errorf("session: delete user's other sessions: %w", err)
	}
	return nil
}
