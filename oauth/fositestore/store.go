// Package fositestore is fosite's storage for idp, over ent: the token rows
// (access and refresh), the fixed queries the bearer check and the refresh
// grant run on every request, and the translation of database errors into
// fosite's. It holds no protocol decisions: the refresh handler in package
// oauth decides, and calls Rotate, RecordReissue or RevokeGrant to write.
package fositestore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	entdialect "entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql/sqlgraph"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/storage"

	"idp/database"
	"idp/ent"
	"idp/ent/accesstoken"
	"idp/ent/refreshtoken"
	"idp/ent/user"
	"idp/oauth/token"
	"idp/ratelimit"
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
	Authenticate(ctx context.Context, login, password, from string) (*ent.User, error)
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

// GetAccessTokenSession implements oauth2.AccessTokenStorage: the access
// token's own row, or the refresh token row that records it.
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	id := RowID(signature)
	row, err := s.client(ctx).AccessToken.Get(ctx, id)
	if err == nil {
		return s.decodeRequest(ctx, row.Request, session)
	}
	if !ent.IsNotFound(err) {
		return nil, MapError(err)
	}
	rt, err := s.client(ctx).RefreshToken.Query().Where(refreshtoken.AccessTokenID(id)).First(ctx)
	if err != nil {
		return nil, MapError(err)
	}
	return s.decodeRequest(ctx, rt.Request, session)
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	id := RowID(signature)
	if _, err := s.client(ctx).AccessToken.Delete().Where(accesstoken.ID(id)).Exec(ctx); err != nil {
		return MapError(err)
	}
	_, err := s.client(ctx).RefreshToken.Update().Where(refreshtoken.AccessTokenID(id)).ClearAccessTokenID().Save(ctx)
	return MapError(err)
}

// accessTokenOnRecord and accessTokenOnRefreshRow are the conditions, on
// the access token's row id and subject, that it is still on record for
// that subject: its own row, or the refresh token row that records it.
// Revocation deletes the one and clears the other. The bearer check knows
// from the token which applies (onRefreshRow): asking for either in one
// query cost MariaDB a third more. The subject is compared so that a token
// whose record exists speaks only for the subject the record was issued to.
const (
	accessTokenOnRecord = "EXISTS (SELECT 1 FROM " + accesstoken.Table + " WHERE " + accesstoken.FieldID + " = ? AND " +
		accesstoken.FieldSubject + " = ?)"
	accessTokenOnRefreshRow = "EXISTS (SELECT 1 FROM " + refreshtoken.Table + " WHERE " + refreshtoken.FieldAccessTokenID + " = ? AND " +
		refreshtoken.FieldSubject + " = ?)"
)

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
func (s *Store) AccessTokenActive(ctx context.Context, signature, subject string, onRefreshRow bool) (bool, error) {
	query := "SELECT " + accessTokenOnRecord
	if onRefreshRow {
		query = "SELECT " + accessTokenOnRefreshRow
	}
	var live bool
	_, err := s.queryRow(ctx, query, []any{RowID(signature), subject}, &live)
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
func (r *userRow) user() *ent.User {
	if !r.id.Valid {
		return nil
	}
	u := &ent.User{ID: r.id.Int64, Username: r.username.String, Email: r.email.String, EmailVerified: r.emailVerified.Bool,
		FirstName: r.first.String, LastName: r.last.String, Gender: user.Gender(r.gender.String),
		CreatedAt: r.created.Time, UpdatedAt: r.updated.Time, PasswordChangedAt: r.passwordSince.Time}
	if r.image.Valid {
		u.PictureKey = &r.image.String
	}
	return u
}

// activeUserQuery reads a user, provided the access token is still on
// record (the condition is appended). It is written out rather than built by
// ent on each call: it runs on every authenticated request, building it was
// a fifth of the request's CPU, and a fixed text lets both engines keep it
// prepared.
const activeUserQuery = "SELECT " + userColumns + " FROM " + user.Table + " AS u WHERE u." + user.FieldID + " = ? AND "

// ActiveUser returns the user of a live access token in one indexed read:
// the user row, provided the token's row is still on record for that user.
// nil means the grant was revoked, the record is another subject's, or the
// user is gone. The user's PasswordHash is empty.
func (s *Store) ActiveUser(ctx context.Context, signature, subject string, onRefreshRow bool, userID int64) (*ent.User, error) {
	query := activeUserQuery + accessTokenOnRecord
	if onRefreshRow {
		query = activeUserQuery + accessTokenOnRefreshRow
	}
	var row userRow
	found, err := s.queryRow(ctx, query, []any{userID, RowID(signature), subject}, row.dest()...)
	if !found || err != nil {
		return nil, err
	}
	return row.user(), nil
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage, for the
// password grant. A refresh grant writes its token with Rotate.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, r fosite.Requester) error {
	data, err := EncodeRequest(r)
	if err != nil {
		return err
	}
	return s.forUser(ctx, r.GetSession().GetSubject(), func(ctx context.Context) error {
		return s.createRefreshToken(ctx, signature, accessSignature, r, data)
	})
}

func (s *Store) createRefreshToken(ctx context.Context, signature, accessSignature string, r fosite.Requester, data []byte) error {
	create := s.client(ctx).RefreshToken.Create().
		SetID(RowID(signature)).
		SetRequestID(r.GetID()).
		SetClientID(r.GetClient().GetID()).
		SetSubject(r.GetSession().GetSubject()).
		SetRequestedAt(r.GetRequestedAt()).
		SetExpiresAt(refreshExpiry(r)).
		SetRequest(data)
	if accessSignature != "" {
		create.SetAccessTokenID(RowID(accessSignature))
	}
	return MapError(create.Exec(ctx))
}

// refreshExpiry is the expiry of r's refresh token row. An unlimited
// refresh token still needs a date for the cleanup.
func refreshExpiry(r fosite.Requester) time.Time {
	if exp := r.GetSession().GetExpiresAt(fosite.RefreshToken); !exp.IsZero() {
		return exp
	}
	return time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage, for
// revocation and introspection. For a used or revoked token it returns the
// request together with an error wrapping fosite.ErrInactiveToken.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	// A fixed text that stays prepared instead of a query ent builds anew.
	var (
		active bool
		data   []byte
	)
	found, err := s.queryRow(ctx, refreshTokenQuery, []any{RowID(signature)}, &active, &data)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("oauth: refresh token: %w", fosite.ErrNotFound)
	}
	r, err := s.decodeRequest(ctx, data, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return r, fmt.Errorf("oauth: refresh token used or revoked: %w", fosite.ErrInactiveToken)
	}
	return r, nil
}

// refreshTokenQuery reads a refresh token and whether it is still usable:
// active and not replaced by another (the unique index on request_id,
// parent_id finds its successor).
const refreshTokenQuery = "SELECT r." + refreshtoken.FieldActive + " AND NOT EXISTS (SELECT 1 FROM " +
	refreshtoken.Table + " AS n WHERE n." + refreshtoken.FieldRequestID + " = r." + refreshtoken.FieldRequestID +
	" AND n." + refreshtoken.FieldParentID + " = r." + refreshtoken.FieldID + "), r." + refreshtoken.FieldRequest +
	" FROM " + refreshtoken.Table + " AS r WHERE r." + refreshtoken.FieldID + " = ?"

// PresentedRefresh is what a refresh grant reads of the presented token, in
// one round trip: the token, its successor if it was rotated, and its user.
type PresentedRefresh struct {
	Active  bool
	Request []byte // the stored request (StoredRequest as JSON)
	// Successor is the token that replaced it, if any.
	Successor Successor
	// User is the token's user, without the password hash; nil if gone.
	User *ent.User
}

// Successor is the refresh token that replaced another.
type Successor struct {
	ID      sql.NullString // its row; not Valid if there is none
	Created sql.NullTime
	// Newest: active and not replaced in turn.
	Newest sql.NullBool
}

// successorColumns read a Successor from alias c.
const successorColumns = "c." + refreshtoken.FieldID + ", c." + refreshtoken.FieldCreatedAt +
	", c." + refreshtoken.FieldActive + " AND NOT EXISTS (SELECT 1 FROM " + refreshtoken.Table + " AS g WHERE g." +
	refreshtoken.FieldRequestID + " = c." + refreshtoken.FieldRequestID + " AND g." + refreshtoken.FieldParentID + " = c." + refreshtoken.FieldID + ")"

func (r *Successor) dest() []any { return []any{&r.ID, &r.Created, &r.Newest} }

// presentedRefreshQuery reads a PresentedRefresh. A refresh token's subject
// is a user id (only the password grant issues refresh tokens); the cast to
// an integer is written in the database's dialect (database.BigIntCast).
// Both joins are on indexes: the successor on (request_id, parent_id), the
// user on its key.
func presentedRefreshQuery(dialect string) string {
	return "SELECT r." + refreshtoken.FieldActive + ", r." + refreshtoken.FieldRequest + ", " +
		successorColumns + ", " + userColumns +
		" FROM " + refreshtoken.Table + " AS r LEFT JOIN " + refreshtoken.Table + " AS c ON c." + refreshtoken.FieldRequestID +
		" = r." + refreshtoken.FieldRequestID + " AND c." + refreshtoken.FieldParentID + " = r." + refreshtoken.FieldID +
		" LEFT JOIN " + user.Table + " AS u ON u." + user.FieldID + " = " + database.BigIntCast(dialect, "r."+refreshtoken.FieldSubject) +
		" WHERE r." + refreshtoken.FieldID + " = ?"
}

// PresentedRefresh reads the refresh token whose row is id, or nil if
// there is none.
func (s *Store) PresentedRefresh(ctx context.Context, id string) (*PresentedRefresh, error) {
	var (
		p    PresentedRefresh
		user userRow
	)
	dest := append(append([]any{&p.Active, &p.Request}, p.Successor.dest()...), user.dest()...)
	found, err := s.queryRow(ctx, presentedRefreshQuery(s.client(ctx).Dialect()), []any{id}, dest...)
	if !found || err != nil {
		return nil, err
	}
	p.User = user.user()
	return &p, nil
}

// successorQuery reads the successor of a refresh token (request_id,
// parent_id), for a rotation that lost the race to write it.
const successorQuery = "SELECT " + successorColumns + " FROM " + refreshtoken.Table + " AS c WHERE c." +
	refreshtoken.FieldRequestID + " = ? AND c." + refreshtoken.FieldParentID + " = ?"

// Successor reads the successor of the refresh token whose row is parent in
// the grant requestID; its ID is not Valid when there is none.
func (s *Store) Successor(ctx context.Context, requestID, parent string) (Successor, error) {
	var c Successor
	_, err := s.queryRow(ctx, successorQuery, []any{requestID, parent}, c.dest()...)
	return c, err
}

// Errors of Rotate and RecordReissue.
var (
	// ErrRotated: the presented token already has a successor, written
	// by a concurrent rotation.
	ErrRotated = errors.New("oauth: refresh token already rotated")
	// ErrRevoked: the presented token was revoked after it was read.
	ErrRevoked = errors.New("oauth: refresh token revoked while refreshing")
)

// Rotate writes a refresh grant's new refresh token (signature, for r,
// whose stored form is data) as the successor of the token whose row is
// parent, and records the access token issued with it on the same row. It
// is one statement, without a transaction: it writes only while the
// parent is active (not revoked) and has no successor (the unique index on
// request_id, parent_id), and while the user exists (userHeld), so of a
// refresh racing a revocation or an erasure nothing outlives either, and
// of two rotations of one token one writes and the other gets ErrRotated. created_at is in whole microseconds, as
// MySQL keeps it, so that the leeway is measured alike on every engine.
// Each round trip to MySQL costs a refresh about 120 µs of CPU in idp,
// MariaDB and the kernel.
func (s *Store) Rotate(ctx context.Context, parent, signature, accessSignature string, r fosite.Requester, data []byte) error {
	userID, _ := token.UserID(r.GetSession().GetSubject())
	err := s.execOne(ctx, rotateQuery+userHeld(s.client(ctx).Dialect()),
		RowID(signature), r.GetID(), r.GetClient().GetID(), r.GetSession().GetSubject(),
		r.GetRequestedAt(), refreshExpiry(r), data, RowID(accessSignature), parent, true, s.now().Truncate(time.Microsecond),
		parent, r.GetID(), userID)
	if sqlgraph.IsUniqueConstraintError(err) {
		return ErrRotated
	}
	return err
}

// userHeld ends the condition of Rotate's and RecordReissue's statements:
// the user (the last argument) still exists, read with a shared lock, so
// that the statement orders itself with an erasure as forUser's hold does
// (account.HoldUser), within the one statement the hot path can afford.
// InnoDB takes shared locks on what an INSERT … SELECT reads, but a
// subquery only with its own clause; an SQLite statement runs under the
// database's write lock.
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

// execOne runs one of the conditional inserts of a refresh grant: a
// database error is mapped (MapError, but a unique-constraint error is
// returned as it is, for the caller to tell), and a statement whose
// condition found no row gives ErrRevoked.
func (s *Store) execOne(ctx context.Context, query string, args ...any) error {
	c := s.client(ctx)
	res, err := c.ExecContext(ctx, database.Rebind(c.Dialect(), query), args...)
	if sqlgraph.IsUniqueConstraintError(err) {
		return err
	}
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

// rotateQuery is Rotate's statement.
const rotateQuery = "INSERT INTO " + refreshtoken.Table + " (" +
	refreshtoken.FieldID + ", " + refreshtoken.FieldRequestID + ", " + refreshtoken.FieldClientID + ", " +
	refreshtoken.FieldSubject + ", " + refreshtoken.FieldRequestedAt + ", " + refreshtoken.FieldExpiresAt + ", " +
	refreshtoken.FieldRequest + ", " + refreshtoken.FieldAccessTokenID + ", " + refreshtoken.FieldParentID + ", " +
	refreshtoken.FieldActive + ", " + refreshtoken.FieldCreatedAt +
	") SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM " + refreshtoken.Table + " WHERE " +
	refreshtoken.FieldID + " = ? AND " + refreshtoken.FieldRequestID + " = ? AND " + refreshtoken.FieldActive

// RecordReissue records an access token (accessSignature, for r, stored as
// data) issued again with the existing refresh token whose row is next, in
// a row of its own: next's row already records the access token of the
// first answer, which keeps working. One statement, written only while next
// is active and not itself replaced, so nothing outlives a revocation or a
// rotation of next; ErrRevoked otherwise.
func (s *Store) RecordReissue(ctx context.Context, next, accessSignature string, r fosite.Requester, data []byte) error {
	userID, _ := token.UserID(r.GetSession().GetSubject())
	err := s.execOne(ctx, reissueQuery+userHeld(s.client(ctx).Dialect()),
		RowID(accessSignature), r.GetID(), r.GetClient().GetID(), r.GetSession().GetSubject(),
		r.GetRequestedAt(), r.GetSession().GetExpiresAt(fosite.AccessToken), data,
		next, r.GetID(), userID)
	if sqlgraph.IsUniqueConstraintError(err) {
		return MapError(err)
	}
	return err
}

// reissueQuery is RecordReissue's statement.
const reissueQuery = "INSERT INTO " + accesstoken.Table + " (" +
	accesstoken.FieldID + ", " + accesstoken.FieldRequestID + ", " + accesstoken.FieldClientID + ", " +
	accesstoken.FieldSubject + ", " + accesstoken.FieldRequestedAt + ", " + accesstoken.FieldExpiresAt + ", " +
	accesstoken.FieldRequest + ") SELECT ?, ?, ?, ?, ?, ?, ? FROM " + refreshtoken.Table + " AS r WHERE r." +
	refreshtoken.FieldID + " = ? AND r." + refreshtoken.FieldRequestID + " = ? AND r." + refreshtoken.FieldActive +
	" AND NOT EXISTS (SELECT 1 FROM " + refreshtoken.Table + " AS n WHERE n." + refreshtoken.FieldRequestID +
	" = r." + refreshtoken.FieldRequestID + " AND n." + refreshtoken.FieldParentID + " = r." + refreshtoken.FieldID + ")"

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

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return MapError(s.client(ctx).RefreshToken.DeleteOneID(RowID(signature)).Exec(ctx))
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage, which fosite's
// storage interfaces require; idp's refresh handler rotates with Rotate
// instead. It marks the token inactive, conditionally, so that of two
// concurrent rotations exactly one succeeds and the other gets
// fosite.ErrNotFound.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	n, err := s.client(ctx).RefreshToken.Update().
		Where(refreshtoken.ID(RowID(signature)), refreshtoken.RequestID(requestID), refreshtoken.Active(true)).
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

// RevokeRefreshToken implements oauth2.TokenRevocationStorage: every refresh
// token of the grant becomes inactive.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	_, err := s.client(ctx).RefreshToken.Update().
		Where(refreshtoken.RequestID(requestID), refreshtoken.Active(true)).
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
	_, err := s.client(ctx).RefreshToken.Update().
		Where(refreshtoken.RequestID(requestID), refreshtoken.AccessTokenIDNotNil()).
		ClearAccessTokenID().
		Save(ctx)
	return MapError(err)
}

// RevokeSubject ends every grant of a subject, as after a password reset:
// its refresh tokens and the access tokens they record in one update.
func (s *Store) RevokeSubject(ctx context.Context, subject string) error {
	if _, err := s.client(ctx).RefreshToken.Update().
		Where(refreshtoken.Subject(subject), refreshtoken.Or(refreshtoken.Active(true), refreshtoken.AccessTokenIDNotNil())).
		SetActive(false).
		ClearAccessTokenID().
		Save(ctx); err != nil {
		return MapError(err)
	}
	_, err := s.client(ctx).AccessToken.Delete().Where(accesstoken.Subject(subject)).Exec(ctx)
	return MapError(err)
}

// DeleteExpired removes token, authorization code and PKCE rows that
// expired before t. A refresh token or code row is kept until its own
// expiry even when used, for reuse detection.
func (s *Store) DeleteExpired(ctx context.Context, t time.Time) (int, error) {
	a, err := s.db.AccessToken.Delete().Where(accesstoken.ExpiresAtLT(t)).Exec(ctx)
	if err != nil {
		return a, MapError(err)
	}
	r, err := s.db.RefreshToken.Delete().Where(refreshtoken.ExpiresAtLT(t)).Exec(ctx)
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
