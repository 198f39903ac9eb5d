// Package fositestore is fosite's storage for idp, over ent: the token rows
// (access and refresh), the fixed queries the bearer check and the refresh
// grant run on every request, and the translation of database errors into
// fosite's. It holds no protocol decisions: the refresh handler in package
// oauth decides, and calls Rotate, RecordReissue or RevokeGrant to write.
package fositestore

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	entdialect "entgo.io/ent/dialect"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/storage"

	"idp/database"
	"idp/ent"
	"idp/ent/accesstoken"
	"idp/ent/refreshchain"
	"idp/ent/user"
	"idp/oauth/token"
	"idp/ratelimit"
	idpstorage "idp/storage"
)

// Clients is the client registry the Store reads clients from (fosite's
// ClientManager); *oauth.Clients implements it.
type Clients interface {
	Get(ctx context.Context, id string) (fosite.Client, error)
}

// Users checks the password grant's credentials; oauth.Users implements it.
type Users interface {
	// Authenticate checks a login (username or email) and password of a
	// client at the address from.
	Authenticate(ctx context.Context, login, password, from string) (*idpstorage.User, error)
}

// Store is fosite's storage, backed by ent on MySQL or SQLite.
//
// Token rows are keyed by the SHA-256 of the token's signature, so a copy of
// the database holds nothing that can be presented as a token. Rows carry the
// request id, which names the grant: one login and all its refreshes. Used
// refresh tokens (named as parent by their successor's row) and revoked ones
// (inactive) stay until they expire: that is how a replayed refresh token is
// recognised and its whole grant revoked.
type Store struct {
	db      *ent.Client
	clients Clients
	users   Users
	now     func() time.Time
}

var (
	_ fosite.Storage                                      = (*Store)(nil)
	_ oauth2.TokenRevocationStorage                       = (*Store)(nil)
	_ oauth2.ResourceOwnerPasswordCredentialsGrantStorage = (*Store)(nil)
	_ storage.Transactional                               = (*Store)(nil)
)

// New returns a Store on db.
func New(db *ent.Client, clients Clients, users Users, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, clients: clients, users: users, now: now}
}

// client returns the transaction ctx carries (fosite's refresh flow opens
// one; a signup issues its tokens inside its own), so that every statement
// of that flow runs inside it.
func (s *Store) client(ctx context.Context) *ent.Client { return database.Client(ctx, s.db) }

// BeginTX implements storage.Transactional. Inside a transaction the caller
// already opened, it joins that one, and Commit and Rollback are the
// caller's.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if _, ok := database.TxFrom(ctx); ok {
		return context.WithValue(ctx, joinedKey{}, true), nil
	}
	tx, err := s.db.Tx(ctx)
	if err != nil {
		return ctx, MapError(err)
	}
	return database.WithTx(ctx, tx), nil
}

// joinedKey marks a context whose transaction belongs to an outer caller.
type joinedKey struct{}

// Commit implements storage.Transactional.
func (s *Store) Commit(ctx context.Context) error {
	tx, ok := database.TxFrom(ctx)
	if !ok {
		return errors.New("oauth: commit without a transaction")
	}
	if ctx.Value(joinedKey{}) != nil {
		return nil
	}
	return MapError(tx.Commit())
}

// Rollback implements storage.Transactional.
func (s *Store) Rollback(ctx context.Context) error {
	tx, ok := database.TxFrom(ctx)
	if !ok {
		return errors.New("oauth: rollback without a transaction")
	}
	if ctx.Value(joinedKey{}) != nil {
		return nil
	}
	return tx.Rollback()
}

// GetClient implements fosite.ClientManager.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	return s.clients.Get(ctx, id)
}

// ClientAssertionJWTValid implements fosite.ClientManager. Client assertions
// (private_key_jwt) are refused before they reach the storage, so this is
// never asked; it fails closed should that change.
func (s *Store) ClientAssertionJWTValid(context.Context, string) error {
	return fosite.ErrJTIKnown
}

// SetClientAssertionJWT implements fosite.ClientManager; see
// ClientAssertionJWTValid.
func (s *Store) SetClientAssertionJWT(context.Context, string, time.Time) error {
	return errors.New("oauth: client assertions are not supported")
}

// Authenticate implements the password grant's credential check. name is
// the username or the email address, in any letter case. The client's
// address, which the lock-out counts by, comes from ctx (see
// ratelimit.ClientAddr): fosite passes no request.
func (s *Store) Authenticate(ctx context.Context, name, secret string) (string, error) {
	u, err := s.users.Authenticate(ctx, name, secret, ratelimit.ClientAddr(ctx))
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(u.ID, 10), nil
}

// StoredRequest is the JSON form of a fosite request in a token row.
type StoredRequest struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requested_at"`
	ClientID          string          `json:"client_id"`
	RequestedScope    []string        `json:"requested_scope,omitempty"`
	GrantedScope      []string        `json:"granted_scope,omitempty"`
	RequestedAudience []string        `json:"requested_audience,omitempty"`
	GrantedAudience   []string        `json:"granted_audience,omitempty"`
	Form              url.Values      `json:"form,omitempty"`
	Session           json.RawMessage `json:"session"`
}

// EncodeRequest is the stored form of r: a StoredRequest as JSON.
func EncodeRequest(r fosite.Requester) ([]byte, error) {
	sess, err := json.Marshal(r.GetSession())
	if err != nil {
		return nil, err
	}
	return json.Marshal(StoredRequest{
		ID:                r.GetID(),
		RequestedAt:       r.GetRequestedAt(),
		ClientID:          r.GetClient().GetID(),
		RequestedScope:    r.GetRequestedScopes(),
		GrantedScope:      r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
		Form:              r.GetRequestForm(),
		Session:           sess,
	})
}

// decodeRequest rebuilds a request into session, or into a new Session when
// session is nil (the revocation handler passes nil).
func (s *Store) decodeRequest(ctx context.Context, data []byte, session fosite.Session) (*fosite.Request, error) {
	var sr StoredRequest
	if err := json.Unmarshal(data, &sr); err != nil {
		return nil, fmt.Errorf("oauth: stored request: %w", err)
	}
	if session == nil {
		session = new(token.Session)
	}
	if err := json.Unmarshal(sr.Session, session); err != nil {
		return nil, fmt.Errorf("oauth: stored session: %w", err)
	}
	client, err := s.clients.Get(ctx, sr.ClientID)
	if err != nil {
		return nil, err
	}
	return &fosite.Request{
		ID:                sr.ID,
		RequestedAt:       sr.RequestedAt,
		Client:            client,
		RequestedScope:    sr.RequestedScope,
		GrantedScope:      sr.GrantedScope,
		RequestedAudience: sr.RequestedAudience,
		GrantedAudience:   sr.GrantedAudience,
		Form:              sr.Form,
		Session:           session,
	}, nil
}

// RowID is the key of a token row: the SHA-256 of the token's signature.
func RowID(signature string) string {
	sum := sha256.Sum256([]byte(signature))
	return hex.EncodeToString(sum[:])
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	data, err := EncodeRequest(r)
	if err != nil {
		return err
	}
	return s.forUser(ctx, r.GetSession().GetSubject(), func(ctx context.Context) error {
		return MapError(s.client(ctx).AccessToken.Create().
			SetID(RowID(signature)).
			SetRequestID(r.GetID()).
			SetClientID(r.GetClient().GetID()).
			SetSubject(r.GetSession().GetSubject()).
			SetRequestedAt(r.GetRequestedAt()).
			SetExpiresAt(r.GetSession().GetExpiresAt(fosite.AccessToken)).
			SetRequest(data).
			Exec(ctx))
	})
}

// accessRef splits what the storage knows an access token by: chain "."
// signature for one recorded on its chain's row (a refresh grant's; see
// token.ChainOf and Strategy.AccessTokenSignature), the bare signature for
// one with a row of its own.
func accessRef(signature string) (chain, sig string) {
	if chain, sig, ok := strings.Cut(signature, "."); ok {
		return chain, sig
	}
	return "", signature
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage: the access
// token's own row, or the chain row that records it.
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	chain, sig := accessRef(signature)
	id := RowID(sig)
	if chain == "" {
		row, err := s.client(ctx).AccessToken.Get(ctx, id)
		if err != nil {
			return nil, MapError(err)
		}
		return s.decodeRequest(ctx, row.Request, session)
	}
	c, err := s.client(ctx).RefreshChain.Query().
		Where(refreshchain.ID(chain), refreshchain.Or(refreshchain.Access(id), refreshchain.PrevAccess(id))).
		Only(ctx)
	if err != nil {
		return nil, MapError(err)
	}
	return s.decodeRequest(ctx, c.Request, session)
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	chain, sig := accessRef(signature)
	id := RowID(sig)
	if chain == "" {
		_, err := s.client(ctx).AccessToken.Delete().Where(accesstoken.ID(id)).Exec(ctx)
		return MapError(err)
	}
	if _, err := s.client(ctx).RefreshChain.Update().Where(refreshchain.ID(chain), refreshchain.Access(id)).
		ClearAccess().Save(ctx); err != nil {
		return MapError(err)
	}
	_, err := s.client(ctx).RefreshChain.Update().Where(refreshchain.ID(chain), refreshchain.PrevAccess(id)).
		ClearPrevAccess().Save(ctx)
	return MapError(err)
}

// accessTokenOnRecord and accessTokenOnChain are the conditions that an
// access token is still on record for a subject: its own row (arguments:
// row id, subject), or its chain's row (chain, subject, row id twice),
// which records the access tokens of the newest two refreshes, so that an
// app's requests in flight with the previous one keep working. Revocation
// deletes the one and clears the other. The bearer check knows from the
// token which applies (token.ChainOf): asking for either in one query cost
// MariaDB a third more. The subject is compared so that a token whose
// record exists speaks only for the subject the record was issued to.
const (
	accessTokenOnRecord = "EXISTS (SELECT 1 FROM " + accesstoken.Table + " WHERE " + accesstoken.FieldID + " = ? AND " +
		accesstoken.FieldSubject + " = ?)"
	accessTokenOnChain = "EXISTS (SELECT 1 FROM " + refreshchain.Table + " WHERE " + refreshchain.FieldID + " = ? AND " +
		refreshchain.FieldSubject + " = ? AND (" + refreshchain.FieldAccess + " = ? OR " + refreshchain.FieldPrevAccess + " = ?))"
)

// onRecord is the condition that the access token with this signature is
// on record for subject, with its arguments; chain is token.ChainOf of its
// jti.
func onRecord(signature, subject, chain string) (string, []any) {
	if chain != "" {
		id := RowID(signature)
		return accessTokenOnChain, []any{chain, subject, id, id}
	}
	return accessTokenOnRecord, []any{RowID(signature), subject}
}

// queryRow runs a fixed query (see activeUserQuery) that returns at most one
// row and scans it into dest; found is false when there is no row. ent has
// no QueryRowContext.
func (s *Store) queryRow(ctx context.Context, query string, args []any, dest ...any) (found bool, err error) {
	c := s.client(ctx)
	rows, err := c.QueryContext(ctx, database.Rebind(c.Dialect(), query), args...)
	if err != nil {
		return false, MapError(err)
	}
	defer rows.Close()
	if !rows.Next() {
		return false, MapError(rows.Err())
	}
	if err := rows.Scan(dest...); err != nil {
		return false, MapError(err)
	}
	return true, MapError(rows.Close())
}

// AccessTokenActive reports whether the access token with this signature is
// still on record for subject, that is, its grant has not been revoked.
// chain is token.ChainOf of the token's jti.
func (s *Store) AccessTokenActive(ctx context.Context, signature, subject, chain string) (bool, error) {
	cond, args := onRecord(signature, subject, chain)
	var live bool
	_, err := s.queryRow(ctx, "SELECT "+cond, args, &live)
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
func (r *userRow) user() *idpstorage.User {
	if !r.id.Valid {
		return nil
	}
	return &idpstorage.User{ID: r.id.Int64, Username: r.username.String, Email: r.email.String, EmailVerified: r.emailVerified.Bool,
		FirstName: r.first.String, LastName: r.last.String, Gender: idpstorage.Gender(r.gender.String),
		PictureKey: r.image.String, // "" when NULL
		CreatedAt:  r.created.Time, UpdatedAt: r.updated.Time, PasswordChangedAt: r.passwordSince.Time}
}

// activeUserQuery reads a user, provided the access token is still on
// record (the condition is appended). It is written out rather than built by
// ent on each call: it runs on every authenticated request, building it was
// a fifth of the request's CPU, and a fixed text lets both engines keep it
// prepared.
const activeUserQuery = "SELECT " + userColumns + " FROM " + user.Table + " AS u WHERE u." + user.FieldID + " = ? AND "

// ActiveUser returns the user of a live access token in one indexed read:
// the user row, provided the token is still on record for that user (its
// own row, or its chain's: chain is token.ChainOf of its jti). nil means
// the grant was revoked, the record is another subject's, or the user is
// gone. The user's PasswordHash is empty.
func (s *Store) ActiveUser(ctx context.Context, signature, subject, chain string, userID int64) (*idpstorage.User, error) {
	cond, args := onRecord(signature, subject, chain)
	var row userRow
	found, err := s.queryRow(ctx, activeUserQuery+cond, append([]any{userID}, args...), row.dest()...)
	if !found || err != nil {
		return nil, err
	}
	return row.user(), nil
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage, for the
// password grant, a signup and a code exchange: it starts a chain.
// signature is the token's token.RefreshRef (generation 0, a new chain). A
// refresh grant continues the chain with Rotate. The access token issued
// with it has a row of its own (CreateAccessTokenSession).
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, _ string, r fosite.Requester) error {
	ref, ok := token.ParseRefreshRef(signature)
	if !ok || ref.Generation != 0 {
		return fmt.Errorf("oauth: not the reference of a new chain's refresh token: %q", signature)
	}
	data, err := EncodeRequest(r)
	if err != nil {
		return err
	}
	return s.forUser(ctx, r.GetSession().GetSubject(), func(ctx context.Context) error {
		return MapError(s.client(ctx).RefreshChain.Create().
			SetID(ref.Chain).
			SetRequestID(r.GetID()).
			SetClientID(r.GetClient().GetID()).
			SetSubject(r.GetSession().GetSubject()).
			SetRequestedAt(r.GetRequestedAt()).
			SetExpiresAt(refreshExpiry(r)).
			SetRequest(data).
			SetHash(RowID(ref.Signature)).
			SetGeneration(0).
			SetRotatedAt(s.now().Truncate(time.Microsecond)).
			Exec(ctx))
	})
}

// refreshExpiry is the expiry of r's refresh token. An unlimited refresh
// token still needs a date for the cleanup.
func refreshExpiry(r fosite.Requester) time.Time {
	if exp := r.GetSession().GetExpiresAt(fosite.RefreshToken); !exp.IsZero() {
		return exp
	}
	return time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
}

// Chain is what a refresh grant reads of the presented token's chain, in
// one round trip: the chain row and its user.
type Chain struct {
	Active  bool
	Request []byte // the newest token's stored request (StoredRequest as JSON)
	// Generation and Hash are the newest token's: its place in the chain
	// and the SHA-256 of its signature (RowID).
	Generation int64
	Hash       string
	// PrevHash is the token the newest replaced; not Valid for a chain
	// not yet rotated. RotatedAt is when the newest was written.
	PrevHash  sql.NullString
	RotatedAt time.Time
	// User is the chain's user, without the password hash; nil if gone.
	User *idpstorage.User
}

// Is reports whether the token ref is the chain's newest.
func (c *Chain) Is(ref token.RefreshRef) bool {
	return ref.Generation == c.Generation && subtle.ConstantTimeCompare([]byte(RowID(ref.Signature)), []byte(c.Hash)) == 1
}

// Replaced reports whether the token ref is the one the newest replaced.
func (c *Chain) Replaced(ref token.RefreshRef) bool {
	return ref.Generation == c.Generation-1 && c.PrevHash.Valid &&
		subtle.ConstantTimeCompare([]byte(RowID(ref.Signature)), []byte(c.PrevHash.String)) == 1
}

// chainColumns read a Chain's own fields from alias c.
const chainColumns = "c." + refreshchain.FieldActive + ", c." + refreshchain.FieldRequest + ", c." + refreshchain.FieldGeneration +
	", c." + refreshchain.FieldHash + ", c." + refreshchain.FieldPrevHash + ", c." + refreshchain.FieldRotatedAt

// chainQuery reads a Chain by its key. A refresh token's subject is a user
// id (only the password grant issues refresh tokens); the cast to an
// integer is written in the database's dialect (database.BigIntCast). Both
// reads are by key.
func chainQuery(dialect string) string {
	return "SELECT " + chainColumns + ", " + userColumns + " FROM " + refreshchain.Table +
		" AS c LEFT JOIN " + user.Table + " AS u ON u." + user.FieldID + " = " + database.BigIntCast(dialect, "c."+refreshchain.FieldSubject) +
		" WHERE c." + refreshchain.FieldID + " = ?"
}

// Chain reads the chain whose id is chain, or nil if there is none.
func (s *Store) Chain(ctx context.Context, chain string) (*Chain, error) {
	var (
		c    Chain
		user userRow
	)
	dest := append([]any{&c.Active, &c.Request, &c.Generation, &c.Hash, &c.PrevHash, &c.RotatedAt}, user.dest()...)
	found, err := s.queryRow(ctx, chainQuery(s.client(ctx).Dialect()), []any{chain}, dest...)
	if !found || err != nil {
		return nil, err
	}
	c.User = user.user()
	return &c, nil
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage, for
// revocation and introspection; signature is a token.RefreshRef. For a
// token that is not its chain's newest (used) or whose chain was revoked
// it returns the request together with an error wrapping
// fosite.ErrInactiveToken.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	ref, ok := token.ParseRefreshRef(signature)
	if !ok {
		return nil, fmt.Errorf("oauth: refresh token: %w", fosite.ErrNotFound)
	}
	c, err := s.Chain(ctx, ref.Chain)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("oauth: refresh token: %w", fosite.ErrNotFound)
	}
	r, err := s.decodeRequest(ctx, c.Request, session)
	if err != nil {
		return nil, err
	}
	if !c.Active || !c.Is(ref) {
		return r, fmt.Errorf("oauth: refresh token used or revoked: %w", fosite.ErrInactiveToken)
	}
	return r, nil
}

// ErrRevoked: the presented token was revoked, rotated or its user erased
// after it was read; Rotate and RecordReissue wrote nothing.
var ErrRevoked = errors.New("oauth: refresh token rotated or revoked while refreshing")

// Rotate replaces the newest token of a chain, presented, by its successor
// next, for r (whose stored form is data), and records the access token
// issued with it (accessSignature) on the chain row, where the previous
// one stays on record as well. It is one UPDATE by key, without a
// transaction: it writes only while presented is the chain's newest and the
// chain is active (not revoked), and while the user exists (userHeld), so
// of a refresh racing a revocation or an erasure nothing outlives either,
// and of two rotations of one token one writes and the other gets
// ErrRevoked (and reads the chain again to tell why). rotated_at is in
// whole microseconds, as MySQL keeps it, so that the leeway is measured
// alike on every engine. Each round trip to MySQL costs a refresh about
// 120 µs of CPU in idp, MariaDB and the kernel.
func (s *Store) Rotate(ctx context.Context, presented, next token.RefreshRef, accessSignature string, r fosite.Requester, data []byte) error {
	userID, _ := token.UserID(r.GetSession().GetSubject())
	return s.execOne(ctx, rotateQuery+userHeld(s.client(ctx).Dialect()),
		RowID(next.Signature), next.Generation, s.now().Truncate(time.Microsecond), RowID(accessSignature),
		refreshExpiry(r), data,
		presented.Chain, RowID(presented.Signature), presented.Generation, r.GetID(), userID)
}

// rotateQuery is Rotate's statement. prev_hash and prev_access are set
// before hash and access: MySQL assigns from left to right and reads the
// columns already assigned, the others read the old row throughout.
const rotateQuery = "UPDATE " + refreshchain.Table + " SET " +
	refreshchain.FieldPrevHash + " = " + refreshchain.FieldHash + ", " +
	refreshchain.FieldPrevAccess + " = " + refreshchain.FieldAccess + ", " +
	refreshchain.FieldHash + " = ?, " + refreshchain.FieldGeneration + " = ?, " + refreshchain.FieldRotatedAt + " = ?, " +
	refreshchain.FieldAccess + " = ?, " + refreshchain.FieldExpiresAt + " = ?, " + refreshchain.FieldRequest + " = ?" +
	" WHERE " + refreshchain.FieldID + " = ? AND " + refreshchain.FieldHash + " = ? AND " + refreshchain.FieldGeneration + " = ? AND " +
	refreshchain.FieldRequestID + " = ? AND " + refreshchain.FieldActive

// userHeld ends the condition of Rotate's and RecordReissue's statements:
// the user (the last argument) still exists, read with a shared lock, so
// that the statement orders itself with an erasure as forUser's hold does
// (account.HoldUser), within the one statement the hot path can afford.
// InnoDB takes shared locks on what an UPDATE or INSERT … SELECT reads,
// but a subquery only with its own clause; an SQLite statement runs under
// the database's write lock.
func userHeld(dialect string) string {
	q := " AND EXISTS (SELECT 1 FROM " + user.Table + " AS h WHERE h." + user.FieldID + " = ?"
	switch dialect {
	case entdialect.Postgres:
		q += " FOR KEY SHARE"
	case entdialect.MySQL:
		q += " LOCK IN SHARE MODE"
	}
	return q + ")"
}

// execOne runs one of the conditional statements of a refresh grant: a
// database error is mapped (MapError), and a statement whose condition
// found no row gives ErrRevoked.
func (s *Store) execOne(ctx context.Context, query string, args ...any) error {
	c := s.client(ctx)
	res, err := c.ExecContext(ctx, database.Rebind(c.Dialect(), query), args...)
	if err != nil {
		return MapError(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return MapError(err)
	}
	if n == 0 {
		return ErrRevoked
	}
	return nil
}

// RecordReissue records an access token (accessSignature, for r, stored as
// data) issued again with the chain's newest token next, in a row of its
// own: the chain row already records the access token of the first answer,
// which keeps working. One statement, written only while next is the
// chain's newest and the chain active, so nothing outlives a revocation or
// a rotation of next; ErrRevoked otherwise.
func (s *Store) RecordReissue(ctx context.Context, next token.RefreshRef, accessSignature string, r fosite.Requester, data []byte) error {
	userID, _ := token.UserID(r.GetSession().GetSubject())
	return s.execOne(ctx, reissueQuery+userHeld(s.client(ctx).Dialect()),
		RowID(accessSignature), r.GetID(), r.GetClient().GetID(), r.GetSession().GetSubject(),
		r.GetRequestedAt(), r.GetSession().GetExpiresAt(fosite.AccessToken), data,
		next.Chain, RowID(next.Signature), next.Generation, r.GetID(), userID)
}

// reissueQuery is RecordReissue's statement.
const reissueQuery = "INSERT INTO " + accesstoken.Table + " (" +
	accesstoken.FieldID + ", " + accesstoken.FieldRequestID + ", " + accesstoken.FieldClientID + ", " +
	accesstoken.FieldSubject + ", " + accesstoken.FieldRequestedAt + ", " + accesstoken.FieldExpiresAt + ", " +
	accesstoken.FieldRequest + ") SELECT ?, ?, ?, ?, ?, ?, ? FROM " + refreshchain.Table + " AS c WHERE c." +
	refreshchain.FieldID + " = ? AND c." + refreshchain.FieldHash + " = ? AND c." + refreshchain.FieldGeneration + " = ? AND c." +
	refreshchain.FieldRequestID + " = ? AND c." + refreshchain.FieldActive

// RevokeGrant ends a grant, its refresh and access tokens, in one
// transaction (or the one ctx carries).
func (s *Store) RevokeGrant(ctx context.Context, requestID string) error {
	return database.InTx(ctx, s.db, func(ctx context.Context) error {
		if err := s.RevokeRefreshToken(ctx, requestID); err != nil {
			return err
		}
		return s.RevokeAccessToken(ctx, requestID)
	})
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage: the
// chain whose newest token this is (a token.RefreshRef) is deleted.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	ref, ok := token.ParseRefreshRef(signature)
	if !ok {
		return fmt.Errorf("oauth: refresh token: %w", fosite.ErrNotFound)
	}
	_, err := s.client(ctx).RefreshChain.Delete().
		Where(refreshchain.ID(ref.Chain), refreshchain.Hash(RowID(ref.Signature))).
		Exec(ctx)
	return MapError(err)
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage, which fosite's
// storage interfaces require; idp's refresh handler rotates with Rotate
// instead. It ends the chain while signature (a token.RefreshRef) is its
// newest token, conditionally, so that of two concurrent rotations exactly
// one succeeds and the other gets fosite.ErrNotFound.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	ref, ok := token.ParseRefreshRef(signature)
	if !ok {
		return fmt.Errorf("oauth: refresh token: %w", fosite.ErrNotFound)
	}
	n, err := s.client(ctx).RefreshChain.Update().
		Where(refreshchain.ID(ref.Chain), refreshchain.RequestID(requestID), refreshchain.Hash(RowID(ref.Signature)),
			refreshchain.Active(true)).
		SetActive(false).
		Save(ctx)
	if err != nil {
		return MapError(err)
	}
	if n == 0 {
		return fmt.Errorf("oauth: refresh token already rotated: %w", fosite.ErrNotFound)
	}
	return nil
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage: the grant's
// chain becomes inactive, and with it every token of the chain. The row
// stays until the chain expires, so that presenting any of them is still
// recognised.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	_, err := s.client(ctx).RefreshChain.Update().
		Where(refreshchain.RequestID(requestID), refreshchain.Active(true)).
		SetActive(false).
		Save(ctx)
	return MapError(err)
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage: every access
// token of the grant is forgotten, so introspection and this service's
// endpoints refuse it (a third party verifying the JWT offline accepts it
// until it expires; access tokens are short-lived for that reason).
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	if _, err := s.client(ctx).AccessToken.Delete().Where(accesstoken.RequestID(requestID)).Exec(ctx); err != nil {
		return MapError(err)
	}
	_, err := s.client(ctx).RefreshChain.Update().
		Where(refreshchain.RequestID(requestID), refreshchain.Or(refreshchain.AccessNotNil(), refreshchain.PrevAccessNotNil())).
		ClearAccess().
		ClearPrevAccess().
		Save(ctx)
	return MapError(err)
}

// RevokeSubject ends every grant of a subject, as after a password reset:
// its chains and the access tokens they record in one update.
func (s *Store) RevokeSubject(ctx context.Context, subject string) error {
	if _, err := s.client(ctx).RefreshChain.Update().
		Where(refreshchain.Subject(subject),
			refreshchain.Or(refreshchain.Active(true), refreshchain.AccessNotNil(), refreshchain.PrevAccessNotNil())).
		SetActive(false).
		ClearAccess().
		ClearPrevAccess().
		Save(ctx); err != nil {
		return MapError(err)
	}
	_, err := s.client(ctx).AccessToken.Delete().Where(accesstoken.Subject(subject)).Exec(ctx)
	return MapError(err)
}

// DeleteExpired removes token, authorization code and PKCE rows that
// expired before t. A chain is kept until its newest token expires even
// when revoked, and a code row until its own expiry even when used, for
// reuse detection.
func (s *Store) DeleteExpired(ctx context.Context, t time.Time) (int, error) {
	a, err := database.DeleteBatches(ctx, func(ctx context.Context, limit int) (int, error) {
		ids, err := s.db.AccessToken.Query().Where(accesstoken.ExpiresAtLT(t)).Limit(limit).IDs(ctx)
		if err != nil || len(ids) == 0 {
			return 0, err
		}
		return s.db.AccessToken.Delete().Where(accesstoken.IDIn(ids...), accesstoken.ExpiresAtLT(t)).Exec(ctx)
	})
	if err != nil {
		return a, MapError(err)
	}
	r, err := database.DeleteBatches(ctx, func(ctx context.Context, limit int) (int, error) {
		ids, err := s.db.RefreshChain.Query().Where(refreshchain.ExpiresAtLT(t)).Limit(limit).IDs(ctx)
		if err != nil || len(ids) == 0 {
			return 0, err
		}
		return s.db.RefreshChain.Delete().Where(refreshchain.IDIn(ids...), refreshchain.ExpiresAtLT(t)).Exec(ctx)
	})
	if err != nil {
		return a + r, MapError(err)
	}
	c, err := s.deleteExpiredCodes(ctx, t)
	return a + r + c, err
}

// MapError maps database errors to the ones fosite understands: a
// missing row is fosite.ErrNotFound, and a lost race between transactions
// (MySQL deadlock or lock timeout, SQLite busy) is
// fosite.ErrSerializationFailure, which fosite answers with a retryable error.
func MapError(err error) error {
	if err == nil {
		return nil
	}
	if ent.IsNotFound(err) {
		return fmt.Errorf("%w: %w", fosite.ErrNotFound, err)
	}
	if database.IsRetryable(err) {
		return fmt.Errorf("%w: %w", fosite.ErrSerializationFailure, err)
	}
	return err
}
