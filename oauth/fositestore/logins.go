package fositestore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"idp/oauth/token"
)

// Login is one live refresh-token chain of a subject: a login (a password
// grant, a signup, a code exchange) and all its refreshes, which share the
// grant's request id and one chain row.
type Login struct {
	// RequestID names the grant; RevokeGrant ends it. It is an internal
	// name, not for showing.
	RequestID string
	ClientID  string
	// CreatedAt is when the chain began: the login's requested_at.
	CreatedAt time.Time
	// LastUsedAt is when its newest token was written: the last refresh,
	// or the login itself.
	LastUsedAt time.Time
	// UserAgent is that of the request that started the chain; "" when
	// unknown.
	UserAgent string
}

// Logins returns the live refresh-token chains of subject at now, in no
// particular order. A grant without a refresh token (a client that may not
// refresh) is not a chain: its access token lives minutes.
func (s *Store) Logins(ctx context.Context, subject string, now time.Time) ([]Login, error) {
	chains, err := s.db.LiveChains(ctx, subject, now)
	if err != nil {
		return nil, MapError(err)
	}
	var out []Login
	for _, c := range chains {
		var sess token.Session
		var sr StoredRequest
		if err := json.Unmarshal(c.Request, &sr); err != nil {
			return nil, fmt.Errorf("oauth: stored request: %w", err)
		}
		if err := json.Unmarshal(sr.Session, &sess); err != nil {
			return nil, fmt.Errorf("oauth: stored session: %w", err)
		}
		l := Login{RequestID: c.RequestID, ClientID: c.ClientID, CreatedAt: c.RequestedAt, LastUsedAt: c.RotatedAt,
			UserAgent: sess.UserAgent}
		if l.LastUsedAt.Before(l.CreatedAt) {
			// requested_at is fosite's clock, rotated_at the store's.
			l.LastUsedAt = l.CreatedAt
		}
		out = append(out, l)
	}
	return out, nil
}

// GrantOfAccessToken returns the request id of the grant the access token
// with this signature belongs to, while it is on record for subject; ""
// when it is not. chain is as for AccessTokenActive.
func (s *Store) GrantOfAccessToken(ctx context.Context, signature, subject, chain string) (string, error) {
	requestID, err := s.db.GrantOfAccessToken(ctx, RowID(signature), subject, chain)
	return requestID, MapError(err)
}

// EndLogin revokes the grant requestID, refresh and access tokens alike
// (RevokeGrant), provided it is subject's and still has an active refresh
// token, in one transaction; it reports whether it did. A grant of another
// subject is left alone, as an unknown one.
func (s *Store) EndLogin(ctx context.Context, subject, requestID string) (bool, error) {
	ended := false
	err := s.db.InTx(ctx, func(ctx context.Context) error {
		ok, err := s.db.HasActiveChain(ctx, subject, requestID)
		if err != nil || !ok {
			return err
		}
		ended = true
		return s.RevokeGrant(ctx, requestID)
	})
	if err != nil {
		return false, MapError(err)
	}
	return ended, nil
}
