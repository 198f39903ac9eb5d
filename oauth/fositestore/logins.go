package fositestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"idp/database"
	"idp/ent/accesstoken"
	"idp/ent/refreshtoken"
	"idp/oauth/token"
)

// Login is one live refresh-token chain of a subject: a login (a password
// grant, a signup, a code exchange) and all its refreshes, which share the
// grant's request id.
type Login struct {
	// RequestID names the grant; RevokeGrant ends it. It is an internal
	// name, not for showing.
	RequestID string
	ClientID  string
	// CreatedAt is when the chain began: its first token's requested_at
	// (or, once that row has expired and been swept, the login's
	// auth_time from the session every rotation copies).
	CreatedAt time.Time
	// LastUsedAt is when its newest token was written: the last refresh,
	// or the login itself.
	LastUsedAt time.Time
	// UserAgent is that of the request that started the chain; "" when
	// unknown.
	UserAgent string
}

// loginsQuery reads the newest token of each live chain of a subject: an
// active, unexpired row that no row names as its parent (the unique index
// on request_id, parent_id answers that), with the chain's first row (the
// one without a parent, on the same index) for when the chain began. The
// subject index bounds the rows read to the user's. The first row's time
// is read as a column, not as an aggregate: SQLite's driver returns an
// aggregate of a time column as text.
const loginsQuery = "SELECT r." + refreshtoken.FieldRequestID + ", r." + refreshtoken.FieldClientID + ", r." +
	refreshtoken.FieldRequestedAt + ", r." + refreshtoken.FieldCreatedAt + ", r." + refreshtoken.FieldRequest +
	", f." + refreshtoken.FieldRequestedAt +
	" FROM " + refreshtoken.Table + " AS r LEFT JOIN " + refreshtoken.Table + " AS f ON f." + refreshtoken.FieldRequestID +
	" = r." + refreshtoken.FieldRequestID + " AND f." + refreshtoken.FieldParentID + " IS NULL" +
	" WHERE r." + refreshtoken.FieldSubject + " = ? AND r." + refreshtoken.FieldActive + " AND r." + refreshtoken.FieldExpiresAt + " > ?" +
	" AND NOT EXISTS (SELECT 1 FROM " + refreshtoken.Table + " AS n WHERE n." + refreshtoken.FieldRequestID +
	" = r." + refreshtoken.FieldRequestID + " AND n." + refreshtoken.FieldParentID + " = r." + refreshtoken.FieldID + ")"

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
	seen := make(map[string]bool)
	for rows.Next() {
		var (
			l                  Login
			requested, created time.Time
			data               []byte
			first              sql.NullTime
		)
		if err := rows.Scan(&l.RequestID, &l.ClientID, &requested, &created, &data, &first); err != nil {
			return nil, MapError(err)
		}
		if seen[l.RequestID] {
			continue // a chain has one newest token; never list one twice
		}
		seen[l.RequestID] = true
		var sess token.Session
		var sr StoredRequest
		if err := json.Unmarshal(data, &sr); err != nil {
			return nil, fmt.Errorf("oauth: stored request: %w", err)
		}
		if err := json.Unmarshal(sr.Session, &sess); err != nil {
			return nil, fmt.Errorf("oauth: stored session: %w", err)
		}
		l.UserAgent = sess.UserAgent
		l.LastUsedAt = created.UTC()
		switch {
		case first.Valid:
			l.CreatedAt = first.Time.UTC()
		case !sess.AuthTime.IsZero():
			l.CreatedAt = sess.AuthTime.UTC()
		default:
			l.CreatedAt = requested.UTC()
		}
		if l.LastUsedAt.Before(l.CreatedAt) {
			// requested_at is fosite's clock, created_at the store's.
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
// its own row or by the refresh token row that records it (see
// accessTokenOnRecord).
const (
	grantOfAccessTokenQuery = "SELECT " + accesstoken.FieldRequestID + " FROM " + accesstoken.Table +
		" WHERE " + accesstoken.FieldID + " = ? AND " + accesstoken.FieldSubject + " = ?"
	grantOfRefreshRowQuery = "SELECT " + refreshtoken.FieldRequestID + " FROM " + refreshtoken.Table +
		" WHERE " + refreshtoken.FieldAccessTokenID + " = ? AND " + refreshtoken.FieldSubject + " = ?"
)

// GrantOfAccessToken returns the request id of the grant the access token
// with this signature belongs to, while it is on record for subject; ""
// when it is not. onRefreshRow is as for AccessTokenActive.
func (s *Store) GrantOfAccessToken(ctx context.Context, signature, subject string, onRefreshRow bool) (string, error) {
	query := grantOfAccessTokenQuery
	if onRefreshRow {
		query = grantOfRefreshRowQuery
	}
	var requestID string
	found, err := s.queryRow(ctx, query, []any{RowID(signature), subject}, &requestID)
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
		ok, err := s.client(ctx).RefreshToken.Query().
			Where(refreshtoken.RequestID(requestID), refreshtoken.Subject(subject), refreshtoken.Active(true)).
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
