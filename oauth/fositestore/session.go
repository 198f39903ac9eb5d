package fositestore

import (
	"context"
)

// RevokeSessionGrants ends the grants of subject and client whose stored
// request match says belong to one browser session (the caller decodes the
// session: this package does not know its shape), in one transaction. A
// user holds few grants per client, so reading them is cheap.
func (s *Store) RevokeSessionGrants(ctx context.Context, subject, clientID string, match func(request []byte) bool) error {
	return MapError(s.db.InTx(ctx, func(ctx context.Context) error {
		requests, err := s.db.GrantRequestsOf(ctx, subject, clientID)
		if err != nil {
			return err
		}
		grants := make(map[string]bool)
		for _, r := range requests {
			if !grants[r.RequestID] && match(r.Request) {
				grants[r.RequestID] = true
			}
		}
		for id := range grants {
			if err := s.RevokeGrant(ctx, id); err != nil {
				return err
			}
		}
		return nil
	}))
}
