package fositestore

import (
	"context"

	"idp/database"
	"idp/ent/accesstoken"
	"idp/ent/refreshchain"
)

// RevokeSessionGrants ends the grants of subject and client whose stored
// request match says belong to one browser session (the caller decodes the
// session: this package does not know its shape), in one transaction. A
// user holds few grants per client, so reading them is cheap.
func (s *Store) RevokeSessionGrants(ctx context.Context, subject, clientID string, match func(request []byte) bool) error {
	return database.InTx(ctx, s.db, func(ctx context.Context) error {
		c := s.client(ctx)
		refresh, err := c.RefreshChain.Query().
			Where(refreshchain.Subject(subject), refreshchain.ClientID(clientID), refreshchain.Active(true)).
			Select(refreshchain.FieldRequestID, refreshchain.FieldRequest).All(ctx)
		if err != nil {
			return MapError(err)
		}
		access, err := c.AccessToken.Query().
			Where(accesstoken.Subject(subject), accesstoken.ClientID(clientID)).
			Select(accesstoken.FieldRequestID, accesstoken.FieldRequest).All(ctx)
		if err != nil {
			return MapError(err)
		}
		grants := make(map[string]bool)
		for _, r := range refresh {
			if !grants[r.RequestID] && match(r.Request) {
				grants[r.RequestID] = true
			}
		}
		for _, a := range access {
			if !grants[a.RequestID] && match(a.Request) {
				grants[a.RequestID] = true
			}
		}
		for id := range grants {
			if err := s.RevokeGrant(ctx, id); err != nil {
				return err
			}
		}
		return nil
	})
}
