package fositestore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"idp/database"
	"idp/ent/accesstoken"
	"idp/ent/refreshchain"
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

// loginsQuery reads the live chains of a subject: active and unexpired.
// The subject index bounds the rows read to the user's.
const loginsQuery = "SELECT " + refreshchain.FieldRequestID + ", " + refreshchain.FieldClientID + ", " +
	refreshchain.FieldRequestedAt + ", " + refreshchain.FieldRotatedAt + ", " + refreshchain.FieldRequest +
	" FROM " + refreshchain.Table + " WHERE " + refreshchain.FieldSubject + " = ? AND " + refreshchain.FieldActive +
	" AND " + refreshchain.FieldExpiresAt + " > ?"

// Logins returns the live refresh-token chains of subject at now, in no
// particular order. A grant without a refresh token (a client that may not
// refresh) is not a chain: its access token lives minutes.
func (s *Store) Logins(ctx context.Context, subject string, now time.Time) ([]Login, error) {
	c := s.client(ctx)
	rows, err := c.QueryContext(ctx, database.Rebind(c.Dialect(), loginsQuery), subject, now.UTC())
	if err != nil {
		return nil, MapError(err)
	}
	defer rows.Close()
	var out []Login
	for rows.Next() {
		var (
			l                  Login
			requested, rotated time.Time
			data               []byte
		)
		if err := rows.Scan(&l.RequestID, &l.ClientID, &requested, &rotated, &data); err != nil {
			return nil, MapError(err)
		}
		var sess token.Session
		var sr StoredRequest
		if err := json.Unmarshal(data, &sr); err != nil {
			return nil, fmt.Errorf("oauth: stored request: %w", err)
		}
		if err := json.Unmarshal(sr.Session, &sess); err != nil {
			return nil, fmt.Errorf("oauth: stored session: %w", err)
		}
		l.UserAgent = sess.UserAgent
		l.CreatedAt = requested.UTC()
		l.LastUsedAt = rotated.UTC()
		if l.LastUsedAt.Before(l.CreatedAt) {
			// requested_at is fosite's clock, rotated_at the store's.
			l.LastUsedAt = l.CreatedAt
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, MapError(err)
	}
	return out, MapError(rows.Close())
}

// Queries of GrantOfAccessToken: the grant an access token belongs to, by
// its own row or by its chain's row (see accessTokenOnRecord).
const (
	grantOfAccessTokenQuery = "SELECT " + accesstoken.FieldRequestID + " FROM " + accesstoken.Table +
		" WHERE " + accesstoken.FieldID + " = ? AND " + accesstoken.FieldSubject + " = ?"
	grantOfChainQuery = "SELECT " + refreshchain.FieldRequestID + " FROM " + refreshchain.Table +
		" WHERE " + refreshchain.FieldID + " = ? AND " + refreshchain.FieldSubject + " = ? AND (" +
		refreshchain.FieldAccess + " = ? OR " + refreshchain.FieldPrevAccess + " = ?)"
)

// GrantOfAccessToken returns the request id of the grant the access token
// with this signature belongs to, while it is on record for subject; ""
// when it is not. chain is as for AccessTokenActive.
func (s *Store) GrantOfAccessToken(ctx context.Context, signature, subject, chain string) (string, error) {
	query, args := grantOfAccessTokenQuery, []any{RowID(signature), subject}
	if chain != "" {
		query, args = grantOfChainQuery, []any{chain, subject, RowID(signature), RowID(signature)}
	}
	var requestID string
	found, err := s.queryRow(ctx, query, args, &requestID)
	if !found || err != nil {
		return "", err
	}
	return requestID, nil
}

// EndLogin revokes the grant requestID, refresh and access tokens alike
// (RevokeGrant), provided it is subject's and still has an active refresh
// token, in one transaction; it reports whether it did. A grant of another
// subject is left alone, as an unknown one.
func (s *Store) EndLogin(ctx context.Context, subject, requestID string) (bool, error) {
	ended := false
	err := database.InTx(ctx, s.db, func(ctx context.Context) error {
		ok, err := s.client(ctx).RefreshChain.Query().
			Where(refreshchain.RequestID(requestID), refreshchain.Subject(subject), refreshchain.Active(true)).
			Exist(ctx)
		if err != nil || !ok {
			return MapError(err)
		}
		ended = true
		return s.RevokeGrant(ctx, requestID)
	})
	if err != nil {
		return false, err
	}
	return ended, nil
}
