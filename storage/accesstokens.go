package storage

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"idp/ent/accesstoken"
	"idp/ent/refreshchain"
	"idp/ent/user"
)

// TokenRecord is what the row of an access token, an authorization code,
// a PKCE request or a refresh chain's login records of its grant.
type TokenRecord struct {
	// ID is the row's key: the SHA-256 of the token's signature, in hex
	// (a chain's own id for a refresh chain).
	ID string
	// RequestID names the grant: one login and all its refreshes.
	RequestID   string
	ClientID    string
	Subject     string
	RequestedAt time.Time
	ExpiresAt   time.Time
	// Request is the stored request and session, as the token service
	// encodes them.
	Request []byte
	// UserID is the subject's user id, or 0 for a subject that is not a
	// user (a client's own token). For a user the row is written only
	// while the user exists: in one transaction (or the one ctx carries)
	// that first holds the user's row with a shared lock, so that no row
	// of an erased user is written after the erasure; ErrTokenUserGone
	// when the user is gone.
	UserID int64
}

// ErrTokenUserGone: a token, code or chain row was to be written for a
// user whose account no longer exists.
var ErrTokenUserGone = errors.New("storage: the token's user is gone")

// tokensForUser runs write for the subject of rec: for a user, after
// holding the user's row (see TokenRecord.UserID).
func (s *Store) tokensForUser(ctx context.Context, userID int64, write func(ctx context.Context) error) error {
	if userID == 0 {
		return wrap(write(ctx))
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.holdUser(ctx, userID); errors.Is(err, ErrNotFound) {
			return ErrTokenUserGone
		} else if err != nil {
			return err
		}
		return wrap(write(ctx))
	})
}

// tokensQueryRow runs a fixed query that returns at most one row, on the
// transaction ctx carries if any, and scans it into dest; found is false
// when there is no row. ent has no QueryRowContext.
func (s *Store) tokensQueryRow(ctx context.Context, query string, args []any, dest ...any) (found bool, err error) {
	rows, err := s.client(ctx).QueryContext(ctx, s.rebind(query), args...)
	if err != nil {
		return false, wrap(err)
	}
	defer rows.Close()
	if !rows.Next() {
		return false, wrap(rows.Err())
	}
	if err := rows.Scan(dest...); err != nil {
		return false, wrap(err)
	}
	return true, wrap(rows.Close())
}

// tokensExec runs one of the conditional statements of a refresh grant and
// reports whether its condition found the row.
func (s *Store) tokensExec(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := s.client(ctx).ExecContext(ctx, s.rebind(query), args...)
	if err != nil {
		return false, wrap(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, wrap(err)
	}
	return n > 0, nil
}

// CreateAccessToken records an access token with a row of its own (a
// login's, a client's, or a refresh's reissue outside the chain row).
func (s *Store) CreateAccessToken(ctx context.Context, rec TokenRecord) error {
	return s.tokensForUser(ctx, rec.UserID, func(ctx context.Context) error {
		return s.client(ctx).AccessToken.Create().
			SetID(rec.ID).
			SetRequestID(rec.RequestID).
			SetClientID(rec.ClientID).
			SetSubject(rec.Subject).
			SetRequestedAt(rec.RequestedAt).
			SetExpiresAt(rec.ExpiresAt).
			SetRequest(rec.Request).
			Exec(ctx)
	})
}

// AccessTokenRequest returns the stored request of the access token whose
// own row has key id; ErrNotFound if there is none.
func (s *Store) AccessTokenRequest(ctx context.Context, id string) ([]byte, error) {
	row, err := s.client(ctx).AccessToken.Get(ctx, id)
	if err != nil {
		return nil, wrap(err)
	}
	return row.Request, nil
}

// ChainAccessTokenRequest returns the stored request of chain, provided
// its row records the access token id (the newest refresh's or the
// previous one's); ErrNotFound otherwise.
func (s *Store) ChainAccessTokenRequest(ctx context.Context, chain, id string) ([]byte, error) {
	c, err := s.client(ctx).RefreshChain.Query().
		Where(refreshchain.ID(chain), refreshchain.Or(refreshchain.Access(id), refreshchain.PrevAccess(id))).
		Only(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	return c.Request, nil
}

// DeleteAccessToken forgets the access token whose own row has key id;
// a row that is gone is not an error.
func (s *Store) DeleteAccessToken(ctx context.Context, id string) error {
	_, err := s.client(ctx).AccessToken.Delete().Where(accesstoken.ID(id)).Exec(ctx)
	return wrap(err)
}

// ForgetChainAccessToken takes the access token id off chain's row,
// whichever of the two it records it is.
func (s *Store) ForgetChainAccessToken(ctx context.Context, chain, id string) error {
	if _, err := s.client(ctx).RefreshChain.Update().Where(refreshchain.ID(chain), refreshchain.Access(id)).
		ClearAccess().Save(ctx); err != nil {
		return wrap(err)
	}
	_, err := s.client(ctx).RefreshChain.Update().Where(refreshchain.ID(chain), refreshchain.PrevAccess(id)).
		ClearPrevAccess().Save(ctx)
	return wrap(err)
}

// accessTokenOnRecord and accessTokenOnChain are the conditions that an
// access token is still on record for a subject: its own row (arguments:
// row id, subject), or its chain's row (chain, subject, row id twice),
// which records the access tokens of the newest two refreshes, so that an
// app's requests in flight with the previous one keep working. Revocation
// deletes the one and clears the other. The bearer check knows from the
// token which applies: asking for either in one query cost MariaDB a third
// more. The subject is compared so that a token whose record exists speaks
// only for the subject the record was issued to.
const (
	accessTokenOnRecord = "EXISTS (SELECT 1 FROM " + accesstoken.Table + " WHERE " + accesstoken.FieldID + " = ? AND " +
		accesstoken.FieldSubject + " = ?)"
	accessTokenOnChain = "EXISTS (SELECT 1 FROM " + refreshchain.Table + " WHERE " + refreshchain.FieldID + " = ? AND " +
		refreshchain.FieldSubject + " = ? AND (" + refreshchain.FieldAccess + " = ? OR " + refreshchain.FieldPrevAccess + " = ?))"
)

// onRecord is the condition that the access token with key id is on
// record for subject, with its arguments; chain is the chain whose row
// records it, or "" for a token with a row of its own.
func onRecord(id, subject, chain string) (string, []any) {
	if chain != "" {
		return accessTokenOnChain, []any{chain, subject, id, id}
	}
	return accessTokenOnRecord, []any{id, subject}
}

// AccessTokenActive reports whether the access token with key id is still
// on record for subject, that is, its grant has not been revoked; chain
// names the chain whose row records it, "" for a token with a row of its
// own.
func (s *Store) AccessTokenActive(ctx context.Context, id, subject, chain string) (bool, error) {
	cond, args := onRecord(id, subject, chain)
	var live bool
	_, err := s.tokensQueryRow(ctx, "SELECT "+cond, args, &live)
	return live, err
}

// userColumns are the columns of a user (table alias u) that the fixed
// queries read, in the order of userRow's fields. The password hash is not
// read: nothing downstream of a bearer check or an ID token needs it.
const userColumns = "u." + user.FieldID + ", u." + user.FieldUsername + ", u." + user.FieldEmail +
	", u." + user.FieldEmailVerified + ", u." + user.FieldFirstName + ", u." + user.FieldLastName + ", u." + user.FieldGender +
	", u." + user.FieldPictureKey + ", u." + user.FieldCreatedAt + ", u." + user.FieldUpdatedAt +
	", u." + user.FieldPasswordChangedAt

// userRow scans userColumns; every field may be NULL (an outer join).
type userRow struct {
	id                                          sql.NullInt64
	username, email, first, last, gender, image sql.NullString
	emailVerified                               sql.NullBool
	created, updated, passwordSince             sql.NullTime
}

func (r *userRow) dest() []any {
	return []any{&r.id, &r.username, &r.email, &r.emailVerified, &r.first, &r.last, &r.gender, &r.image,
		&r.created, &r.updated, &r.passwordSince}
}

// user returns the scanned user, nil for none.
func (r *userRow) user() *User {
	if !r.id.Valid {
		return nil
	}
	return &User{ID: r.id.Int64, Username: r.username.String, Email: r.email.String, EmailVerified: r.emailVerified.Bool,
		FirstName: r.first.String, LastName: r.last.String, Gender: Gender(r.gender.String), PictureKey: r.image.String,
		CreatedAt: r.created.Time, UpdatedAt: r.updated.Time, PasswordChangedAt: r.passwordSince.Time}
}

// activeUserQuery reads a user, provided the access token is still on
// record (the condition is appended). It is written out rather than built by
// ent on each call: it runs on every authenticated request, building it was
// a fifth of the request's CPU, and a fixed text lets both engines keep it
// prepared.
const activeUserQuery = "SELECT " + userColumns + " FROM " + user.Table + " AS u WHERE u." + user.FieldID + " = ? AND "

// ActiveUser returns the user of a live access token in one indexed read:
// the user row, provided the token with key id is still on record for
// that user (its own row, or its chain's: see AccessTokenActive). nil
// means the grant was revoked, the record is another subject's, or the
// user is gone. The user's PasswordHash is empty.
func (s *Store) ActiveUser(ctx context.Context, id, subject, chain string, userID int64) (*User, error) {
	cond, args := onRecord(id, subject, chain)
	var row userRow
	found, err := s.tokensQueryRow(ctx, activeUserQuery+cond, append([]any{userID}, args...), row.dest()...)
	if !found || err != nil {
		return nil, err
	}
	return row.user(), nil
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
// with key id belongs to, while it is on record for subject; "" when it
// is not. chain is as for AccessTokenActive.
func (s *Store) GrantOfAccessToken(ctx context.Context, id, subject, chain string) (string, error) {
	query, args := grantOfAccessTokenQuery, []any{id, subject}
	if chain != "" {
		query, args = grantOfChainQuery, []any{chain, subject, id, id}
	}
	var requestID string
	found, err := s.tokensQueryRow(ctx, query, args, &requestID)
	if !found || err != nil {
		return "", err
	}
	return requestID, nil
}

// RevokeAccessTokens forgets every access token of the grant requestID:
// its rows are deleted and its chain's row records none.
func (s *Store) RevokeAccessTokens(ctx context.Context, requestID string) error {
	if _, err := s.client(ctx).AccessToken.Delete().Where(accesstoken.RequestID(requestID)).Exec(ctx); err != nil {
		return wrap(err)
	}
	_, err := s.client(ctx).RefreshChain.Update().
		Where(refreshchain.RequestID(requestID), refreshchain.Or(refreshchain.AccessNotNil(), refreshchain.PrevAccessNotNil())).
		ClearAccess().
		ClearPrevAccess().
		Save(ctx)
	return wrap(err)
}

// RevokeSubjectTokens ends every grant of a subject: its chains become
// inactive and record no access token, in one update, and its access
// token rows are deleted.
func (s *Store) RevokeSubjectTokens(ctx context.Context, subject string) error {
	if _, err := s.client(ctx).RefreshChain.Update().
		Where(refreshchain.Subject(subject),
			refreshchain.Or(refreshchain.Active(true), refreshchain.AccessNotNil(), refreshchain.PrevAccessNotNil())).
		SetActive(false).
		ClearAccess().
		ClearPrevAccess().
		Save(ctx); err != nil {
		return wrap(err)
	}
	_, err := s.client(ctx).AccessToken.Delete().Where(accesstoken.Subject(subject)).Exec(ctx)
	return wrap(err)
}

// GrantRequest is a grant's stored request, as a token row of the grant
// holds it.
type GrantRequest struct {
	RequestID string
	Request   []byte
}

// GrantRequestsOf returns the stored requests of the live grants of
// subject and client: those of its active chains, then those of its access
// token rows (a grant may appear in both, and several times). A user holds
// few grants per client, so reading them is cheap.
func (s *Store) GrantRequestsOf(ctx context.Context, subject, clientID string) ([]GrantRequest, error) {
	c := s.client(ctx)
	refresh, err := c.RefreshChain.Query().
		Where(refreshchain.Subject(subject), refreshchain.ClientID(clientID), refreshchain.Active(true)).
		Select(refreshchain.FieldRequestID, refreshchain.FieldRequest).All(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	access, err := c.AccessToken.Query().
		Where(accesstoken.Subject(subject), accesstoken.ClientID(clientID)).
		Select(accesstoken.FieldRequestID, accesstoken.FieldRequest).All(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]GrantRequest, 0, len(refresh)+len(access))
	for _, r := range refresh {
		out = append(out, GrantRequest{RequestID: r.RequestID, Request: r.Request})
	}
	for _, a := range access {
		out = append(out, GrantRequest{RequestID: a.RequestID, Request: a.Request})
	}
	return out, nil
}
