package storage

import (
	"context"
	"database/sql"
	"time"

	"idp/database"
	"idp/ent/accesstoken"
	"idp/ent/refreshchain"
	"idp/ent/user"
)

// A refresh chain is one login's refresh tokens: one row however often it
// is refreshed, holding the newest token (its hash and generation) and the
// one it replaced, and the access tokens issued with the newest two.

// CreateRefreshChain starts a chain: rec is the login's (rec.ID the
// chain's id), hash the SHA-256 of its first token's signature (generation
// 0), rotatedAt when that was written.
func (s *Store) CreateRefreshChain(ctx context.Context, rec TokenRecord, hash string, rotatedAt time.Time) error {
	return s.tokensForUser(ctx, rec.UserID, func(ctx context.Context) error {
		return s.client(ctx).RefreshChain.Create().
			SetID(rec.ID).
			SetRequestID(rec.RequestID).
			SetClientID(rec.ClientID).
			SetSubject(rec.Subject).
			SetRequestedAt(rec.RequestedAt).
			SetExpiresAt(rec.ExpiresAt).
			SetRequest(rec.Request).
			SetHash(hash).
			SetGeneration(0).
			SetRotatedAt(rotatedAt).
			Exec(ctx)
	})
}

// RefreshChain is what a refresh grant reads of a chain, in one round
// trip: the chain row and its user.
type RefreshChain struct {
	Active  bool
	Request []byte // the newest token's stored request
	// Generation and Hash are the newest token's: its place in the chain
	// and the SHA-256 of its signature.
	Generation int64
	Hash       string
	// PrevHash is the hash of the token the newest replaced; "" for a
	// chain not yet rotated. RotatedAt is when the newest was written.
	PrevHash  string
	RotatedAt time.Time
	// User is the chain's user, without the password hash; nil if gone.
	User *User
}

// chainColumns read a RefreshChain's own fields from alias c.
const chainColumns = "c." + refreshchain.FieldActive + ", c." + refreshchain.FieldRequest + ", c." + refreshchain.FieldGeneration +
	", c." + refreshchain.FieldHash + ", c." + refreshchain.FieldPrevHash + ", c." + refreshchain.FieldRotatedAt

// chainQuery reads a RefreshChain by its key. A refresh token's subject is
// a user id (only user logins get refresh tokens); the cast to an integer
// is written in the database's dialect (database.BigIntCast). Both reads
// are by key.
func chainQuery(dialect string) string {
	return "SELECT " + chainColumns + ", " + userColumns + " FROM " + refreshchain.Table +
		" AS c LEFT JOIN " + user.Table + " AS u ON u." + user.FieldID + " = " + database.BigIntCast(dialect, "c."+refreshchain.FieldSubject) +
		" WHERE c." + refreshchain.FieldID + " = ?"
}

// RefreshChainWithUser reads the chain whose id is chain together with its
// user, in one round trip; ErrNotFound if there is none.
func (s *Store) RefreshChainWithUser(ctx context.Context, chain string) (*RefreshChain, error) {
	var (
		c    RefreshChain
		prev sql.NullString
		u    userRow
	)
	dest := append([]any{&c.Active, &c.Request, &c.Generation, &c.Hash, &prev, &c.RotatedAt}, u.dest()...)
	found, err := s.tokensQueryRow(ctx, chainQuery(s.dialect), []any{chain}, dest...)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrNotFound
	}
	c.PrevHash = prev.String
	c.User = u.user()
	return &c, nil
}

// ChainRotation is a rotation of a chain: the presented token, its
// successor, and what the chain row records of the successor.
type ChainRotation struct {
	Chain string
	// PresentedHash and PresentedGeneration name the token presented,
	// which must be the chain's newest.
	PresentedHash       string
	PresentedGeneration int64
	// RequestID is the grant the chain must belong to, UserID the user
	// who must still exist.
	RequestID string
	UserID    int64
	// NextHash and NextGeneration are the successor's.
	NextHash       string
	NextGeneration int64
	// RotatedAt is when the successor is written (whole microseconds, as
	// MySQL keeps it), Access the key of the access token issued with it,
	// ExpiresAt its expiry and Request its stored request.
	RotatedAt time.Time
	Access    string
	ExpiresAt time.Time
	Request   []byte
}

// RotateRefreshChain replaces the chain's newest token by its successor,
// recording the access token issued with it, where the previous one stays
// on record as well. It is one UPDATE by key, without a transaction: it
// writes only while the presented token is the chain's newest, the chain
// belongs to the grant and is active (not revoked), and the user exists
// (userHeld), so that of a refresh racing a revocation or an erasure
// nothing outlives either, and of two rotations of one token one writes
// and the other does not. It reports whether it wrote. Each round trip to
// MySQL costs a refresh about 120 µs of CPU in idp, MariaDB and the kernel.
func (s *Store) RotateRefreshChain(ctx context.Context, r ChainRotation) (bool, error) {
	return s.tokensExec(ctx, rotateQuery+userHeld(s.dialect),
		r.NextHash, r.NextGeneration, r.RotatedAt, r.Access, r.ExpiresAt, r.Request,
		r.Chain, r.PresentedHash, r.PresentedGeneration, r.RequestID, r.UserID)
}

// rotateQuery is RotateRefreshChain's statement. prev_hash and prev_access
// are set before hash and access: MySQL assigns from left to right and
// reads the columns already assigned, the others read the old row
// throughout.
const rotateQuery = "UPDATE " + refreshchain.Table + " SET " +
	refreshchain.FieldPrevHash + " = " + refreshchain.FieldHash + ", " +
	refreshchain.FieldPrevAccess + " = " + refreshchain.FieldAccess + ", " +
	refreshchain.FieldHash + " = ?, " + refreshchain.FieldGeneration + " = ?, " + refreshchain.FieldRotatedAt + " = ?, " +
	refreshchain.FieldAccess + " = ?, " + refreshchain.FieldExpiresAt + " = ?, " + refreshchain.FieldRequest + " = ?" +
	" WHERE " + refreshchain.FieldID + " = ? AND " + refreshchain.FieldHash + " = ? AND " + refreshchain.FieldGeneration + " = ? AND " +
	refreshchain.FieldRequestID + " = ? AND " + refreshchain.FieldActive

// userHeld ends the condition of the rotation's and the reissue's
// statements: the user (the last argument) still exists, read with a
// shared lock, so that the statement orders itself with an erasure as
// holdUser does, within the one statement the hot path can afford. InnoDB takes shared locks on what an UPDATE or INSERT … SELECT
// reads, but a subquery only with its own clause; an SQLite statement runs
// under the database's write lock.
func userHeld(dialect string) string {
	return " AND EXISTS (SELECT 1 FROM " + user.Table + " AS h WHERE h." + user.FieldID + " = ?" + holdUserLock(dialect) + ")"
}

// ReissueAccessToken records an access token (rec) issued again with the
// chain's newest token in a row of its own, in one statement that writes
// only while the token whose hash and generation are given is the chain's
// newest, the chain belongs to rec's grant and is active, and rec's user
// exists; it reports whether it wrote.
func (s *Store) ReissueAccessToken(ctx context.Context, rec TokenRecord, chain, hash string, generation int64) (bool, error) {
	return s.tokensExec(ctx, reissueQuery+userHeld(s.dialect),
		rec.ID, rec.RequestID, rec.ClientID, rec.Subject, rec.RequestedAt, rec.ExpiresAt, rec.Request,
		chain, hash, generation, rec.RequestID, rec.UserID)
}

// reissueQuery is ReissueAccessToken's statement.
const reissueQuery = "INSERT INTO " + accesstoken.Table + " (" +
	accesstoken.FieldID + ", " + accesstoken.FieldRequestID + ", " + accesstoken.FieldClientID + ", " +
	accesstoken.FieldSubject + ", " + accesstoken.FieldRequestedAt + ", " + accesstoken.FieldExpiresAt + ", " +
	accesstoken.FieldRequest + ") SELECT ?, ?, ?, ?, ?, ?, ? FROM " + refreshchain.Table + " AS c WHERE c." +
	refreshchain.FieldID + " = ? AND c." + refreshchain.FieldHash + " = ? AND c." + refreshchain.FieldGeneration + " = ? AND c." +
	refreshchain.FieldRequestID + " = ? AND c." + refreshchain.FieldActive

// DeleteRefreshChain deletes the chain whose newest token has this hash.
func (s *Store) DeleteRefreshChain(ctx context.Context, chain, hash string) error {
	_, err := s.client(ctx).RefreshChain.Delete().
		Where(refreshchain.ID(chain), refreshchain.Hash(hash)).
		Exec(ctx)
	return wrap(err)
}

// EndRefreshChain makes the chain of the grant requestID inactive while
// the token with this hash is its newest and it is active, conditionally,
// so that of two concurrent calls exactly one does; it reports whether it
// did.
func (s *Store) EndRefreshChain(ctx context.Context, chain, requestID, hash string) (bool, error) {
	n, err := s.client(ctx).RefreshChain.Update().
		Where(refreshchain.ID(chain), refreshchain.RequestID(requestID), refreshchain.Hash(hash),
			refreshchain.Active(true)).
		SetActive(false).
		Save(ctx)
	if err != nil {
		return false, wrap(err)
	}
	return n > 0, nil
}

// RevokeRefreshChains makes the chain of the grant requestID inactive, and
// with it every token of the chain. The row stays until the chain expires,
// so that presenting any of them is still recognised.
func (s *Store) RevokeRefreshChains(ctx context.Context, requestID string) error {
	_, err := s.client(ctx).RefreshChain.Update().
		Where(refreshchain.RequestID(requestID), refreshchain.Active(true)).
		SetActive(false).
		Save(ctx)
	return wrap(err)
}

// HasActiveChain reports whether the grant requestID of subject has an
// active chain.
func (s *Store) HasActiveChain(ctx context.Context, subject, requestID string) (bool, error) {
	ok, err := s.client(ctx).RefreshChain.Query().
		Where(refreshchain.RequestID(requestID), refreshchain.Subject(subject), refreshchain.Active(true)).
		Exist(ctx)
	return ok, wrap(err)
}

// LiveChain is a live chain as a subject's list of logins shows it.
type LiveChain struct {
	RequestID string
	ClientID  string
	// RequestedAt is when the login began, RotatedAt when the newest
	// token was written, both in UTC.
	RequestedAt time.Time
	RotatedAt   time.Time
	// Request is the newest token's stored request.
	Request []byte
}

// liveChainsQuery reads the live chains of a subject: active and
// unexpired. The subject index bounds the rows read to the user's.
const liveChainsQuery = "SELECT " + refreshchain.FieldRequestID + ", " + refreshchain.FieldClientID + ", " +
	refreshchain.FieldRequestedAt + ", " + refreshchain.FieldRotatedAt + ", " + refreshchain.FieldRequest +
	" FROM " + refreshchain.Table + " WHERE " + refreshchain.FieldSubject + " = ? AND " + refreshchain.FieldActive +
	" AND " + refreshchain.FieldExpiresAt + " > ?"

// LiveChains returns the live chains of subject at now, in no particular
// order.
func (s *Store) LiveChains(ctx context.Context, subject string, now time.Time) ([]LiveChain, error) {
	rows, err := s.client(ctx).QueryContext(ctx, s.rebind(liveChainsQuery), subject, now.UTC())
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []LiveChain
	for rows.Next() {
		var c LiveChain
		if err := rows.Scan(&c.RequestID, &c.ClientID, &c.RequestedAt, &c.RotatedAt, &c.Request); err != nil {
			return nil, wrap(err)
		}
		c.RequestedAt, c.RotatedAt = c.RequestedAt.UTC(), c.RotatedAt.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	return out, wrap(rows.Close())
}
