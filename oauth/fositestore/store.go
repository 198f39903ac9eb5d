// Package fositestore is fosite's storage for idp, over package storage:
// fosite's requests to and from the token rows (access tokens, refresh
// chains, authorization codes, PKCE), the keys the rows are stored by, and
// the translation of storage errors into fosite's. It holds no protocol
// decisions: the refresh handler in package oauth decides, and calls
// Rotate, RecordReissue or RevokeGrant to write. The queries, among them
// the fixed ones the bearer check and the refresh grant run on every
// request, are storage's.
package fositestore

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	fositestorage "github.com/ory/fosite/storage"

	"idp/oauth/token"
	"idp/ratelimit"
	"idp/storage"
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
	Authenticate(ctx context.Context, login, password, from string) (*storage.User, error)
}

// Storage is what the Store needs of package storage: the token rows'
// queries, each on the transaction ctx carries if any. *storage.Store
// implements it.
type Storage interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	BeginTokenTx(ctx context.Context) (context.Context, error)
	CommitTokenTx(ctx context.Context) error
	RollbackTokenTx(ctx context.Context) error

	CreateAccessToken(ctx context.Context, rec storage.TokenRecord) error
	AccessTokenRequest(ctx context.Context, id string) ([]byte, error)
	ChainAccessTokenRequest(ctx context.Context, chain, id string) ([]byte, error)
	DeleteAccessToken(ctx context.Context, id string) error
	ForgetChainAccessToken(ctx context.Context, chain, id string) error
	AccessTokenActive(ctx context.Context, id, subject, chain string) (bool, error)
	ActiveUser(ctx context.Context, id, subject, chain string, userID int64) (*storage.User, error)
	GrantOfAccessToken(ctx context.Context, id, subject, chain string) (string, error)
	RevokeAccessTokens(ctx context.Context, requestID string) error
	RevokeSubjectTokens(ctx context.Context, subject string) error
	GrantRequestsOf(ctx context.Context, subject, clientID string) ([]storage.GrantRequest, error)

	CreateRefreshChain(ctx context.Context, rec storage.TokenRecord, hash string, rotatedAt time.Time) error
	RefreshChainWithUser(ctx context.Context, chain string) (*storage.RefreshChain, error)
	RotateRefreshChain(ctx context.Context, r storage.ChainRotation) (bool, error)
	ReissueAccessToken(ctx context.Context, rec storage.TokenRecord, chain, hash string, generation int64) (bool, error)
	DeleteRefreshChain(ctx context.Context, chain, hash string) error
	EndRefreshChain(ctx context.Context, chain, requestID, hash string) (bool, error)
	RevokeRefreshChains(ctx context.Context, requestID string) error
	HasActiveChain(ctx context.Context, subject, requestID string) (bool, error)
	LiveChains(ctx context.Context, subject string, now time.Time) ([]storage.LiveChain, error)

	CreateAuthorizeCode(ctx context.Context, rec storage.TokenRecord) error
	AuthorizeCodeByID(ctx context.Context, id string) (*storage.AuthorizeCode, error)
	InvalidateAuthorizeCode(ctx context.Context, id string) (bool, error)
	CreatePKCERequest(ctx context.Context, rec storage.TokenRecord) error
	PKCERequest(ctx context.Context, id string) ([]byte, error)
	DeletePKCERequest(ctx context.Context, id string) error

	DeleteExpiredTokens(ctx context.Context, t time.Time) (int, error)
}

var _ Storage = (*storage.Store)(nil)

// Store is fosite's storage.
//
// Token rows are keyed by the SHA-256 of the token's signature, so a copy of
// the database holds nothing that can be presented as a token. Rows carry the
// request id, which names the grant: one login and all its refreshes. Used
// refresh tokens (named as parent by their successor's row) and revoked ones
// (inactive) stay until they expire: that is how a replayed refresh token is
// recognised and its whole grant revoked.
type Store struct {
	db      Storage
	clients Clients
	users   Users
	now     func() time.Time
}

var (
	_ fosite.Storage                                      = (*Store)(nil)
	_ oauth2.TokenRevocationStorage                       = (*Store)(nil)
	_ oauth2.ResourceOwnerPasswordCredentialsGrantStorage = (*Store)(nil)
	_ fositestorage.Transactional                         = (*Store)(nil)
)

// New returns a Store on db.
func New(db Storage, clients Clients, users Users, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, clients: clients, users: users, now: now}
}

// BeginTX implements storage.Transactional. Inside a transaction the caller
// already opened, it joins that one, and Commit and Rollback are the
// caller's.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	txCtx, err := s.db.BeginTokenTx(ctx)
	return txCtx, MapError(err)
}

// Commit implements storage.Transactional.
func (s *Store) Commit(ctx context.Context) error { return MapError(s.db.CommitTokenTx(ctx)) }

// Rollback implements storage.Transactional.
func (s *Store) Rollback(ctx context.Context) error { return s.db.RollbackTokenTx(ctx) }

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

// record is the row of a token or code of r, keyed id, that expires at
// exp. The row of a user's token is written only while the user exists
// (storage.TokenRecord.UserID).
func record(id string, r fosite.Requester, exp time.Time, data []byte) storage.TokenRecord {
	subject := r.GetSession().GetSubject()
	userID, _ := token.UserID(subject)
	return storage.TokenRecord{ID: id, RequestID: r.GetID(), ClientID: r.GetClient().GetID(), Subject: subject,
		RequestedAt: r.GetRequestedAt(), ExpiresAt: exp, Request: data, UserID: userID}
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	data, err := EncodeRequest(r)
	if err != nil {
		return err
	}
	return MapError(s.db.CreateAccessToken(ctx, record(RowID(signature), r, r.GetSession().GetExpiresAt(fosite.AccessToken), data)))
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
	var (
		data []byte
		err  error
	)
	if chain == "" {
		data, err = s.db.AccessTokenRequest(ctx, RowID(sig))
	} else {
		data, err = s.db.ChainAccessTokenRequest(ctx, chain, RowID(sig))
	}
	if err != nil {
		return nil, MapError(err)
	}
	return s.decodeRequest(ctx, data, session)
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	chain, sig := accessRef(signature)
	if chain == "" {
		return MapError(s.db.DeleteAccessToken(ctx, RowID(sig)))
	}
	return MapError(s.db.ForgetChainAccessToken(ctx, chain, RowID(sig)))
}

// AccessTokenActive reports whether the access token with this signature is
// still on record for subject, that is, its grant has not been revoked.
// chain is token.ChainOf of the token's jti.
func (s *Store) AccessTokenActive(ctx context.Context, signature, subject, chain string) (bool, error) {
	live, err := s.db.AccessTokenActive(ctx, RowID(signature), subject, chain)
	return live, MapError(err)
}

// ActiveUser returns the user of a live access token in one indexed read:
// the user row, provided the token is still on record for that user (its
// own row, or its chain's: chain is token.ChainOf of its jti). nil means
// the grant was revoked, the record is another subject's, or the user is
// gone. The user's PasswordHash is empty.
func (s *Store) ActiveUser(ctx context.Context, signature, subject, chain string, userID int64) (*storage.User, error) {
	u, err := s.db.ActiveUser(ctx, RowID(signature), subject, chain, userID)
	if err != nil {
		return nil, MapError(err)
	}
	return u, nil
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
	return MapError(s.db.CreateRefreshChain(ctx, record(ref.Chain, r, refreshExpiry(r), data),
		RowID(ref.Signature), s.now().Truncate(time.Microsecond)))
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
	// PrevHash is the token the newest replaced; "" for a chain not yet
	// rotated. RotatedAt is when the newest was written.
	PrevHash  string
	RotatedAt time.Time
	// User is the chain's user, without the password hash; nil if gone.
	User *storage.User
}

// Is reports whether the token ref is the chain's newest.
func (c *Chain) Is(ref token.RefreshRef) bool {
	return ref.Generation == c.Generation && subtle.ConstantTimeCompare([]byte(RowID(ref.Signature)), []byte(c.Hash)) == 1
}

// Replaced reports whether the token ref is the one the newest replaced.
func (c *Chain) Replaced(ref token.RefreshRef) bool {
	return ref.Generation == c.Generation-1 && c.PrevHash != "" &&
		subtle.ConstantTimeCompare([]byte(RowID(ref.Signature)), []byte(c.PrevHash)) == 1
}

// Chain reads the chain whose id is chain, with its user, or nil if there
// is none.
func (s *Store) Chain(ctx context.Context, chain string) (*Chain, error) {
	c, err := s.db.RefreshChainWithUser(ctx, chain)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, MapError(err)
	}
	return &Chain{Active: c.Active, Request: c.Request, Generation: c.Generation, Hash: c.Hash,
		PrevHash: c.PrevHash, RotatedAt: c.RotatedAt, User: c.User}, nil
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
// one stays on record as well. It is one conditional UPDATE by key,
// without a transaction (storage.Store.RotateRefreshChain): it writes only
// while presented is the chain's newest, the chain active (not revoked)
// and the user there, so of a refresh racing a revocation or an erasure
// nothing outlives either, and of two rotations of one token one writes
// and the other gets ErrRevoked (and reads the chain again to tell why).
// rotated_at is in whole microseconds, as MySQL keeps it, so that the
// leeway is measured alike on every engine.
func (s *Store) Rotate(ctx context.Context, presented, next token.RefreshRef, accessSignature string, r fosite.Requester, data []byte) error {
	userID, _ := token.UserID(r.GetSession().GetSubject())
	ok, err := s.db.RotateRefreshChain(ctx, storage.ChainRotation{
		Chain: presented.Chain, PresentedHash: RowID(presented.Signature), PresentedGeneration: presented.Generation,
		RequestID: r.GetID(), UserID: userID,
		NextHash: RowID(next.Signature), NextGeneration: next.Generation,
		RotatedAt: s.now().Truncate(time.Microsecond), Access: RowID(accessSignature),
		ExpiresAt: refreshExpiry(r), Request: data,
	})
	return written(ok, err)
}

// written is the error of one of the conditional statements of a refresh
// grant: a storage error mapped (MapError), and a statement whose
// condition found no row ErrRevoked.
func written(ok bool, err error) error {
	if err != nil {
		return MapError(err)
	}
	if !ok {
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
	ok, err := s.db.ReissueAccessToken(ctx, record(RowID(accessSignature), r, r.GetSession().GetExpiresAt(fosite.AccessToken), data),
		next.Chain, RowID(next.Signature), next.Generation)
	return written(ok, err)
}

// RevokeGrant ends a grant, its refresh and access tokens, in one
// transaction (or the one ctx carries).
func (s *Store) RevokeGrant(ctx context.Context, requestID string) error {
	return MapError(s.db.InTx(ctx, func(ctx context.Context) error {
		if err := s.db.RevokeRefreshChains(ctx, requestID); err != nil {
			return err
		}
		return s.db.RevokeAccessTokens(ctx, requestID)
	}))
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage: the
// chain whose newest token this is (a token.RefreshRef) is deleted.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	ref, ok := token.ParseRefreshRef(signature)
	if !ok {
		return fmt.Errorf("oauth: refresh token: %w", fosite.ErrNotFound)
	}
	return MapError(s.db.DeleteRefreshChain(ctx, ref.Chain, RowID(ref.Signature)))
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
	ended, err := s.db.EndRefreshChain(ctx, ref.Chain, requestID, RowID(ref.Signature))
	if err != nil {
		return MapError(err)
	}
	if !ended {
		return fmt.Errorf("oauth: refresh token already rotated: %w", fosite.ErrNotFound)
	}
	return nil
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage: the grant's
// chain becomes inactive, and with it every token of the chain. The row
// stays until the chain expires, so that presenting any of them is still
// recognised.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return MapError(s.db.RevokeRefreshChains(ctx, requestID))
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage: every access
// token of the grant is forgotten, so introspection and this service's
// endpoints refuse it (a third party verifying the JWT offline accepts it
// until it expires; access tokens are short-lived for that reason).
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	return MapError(s.db.RevokeAccessTokens(ctx, requestID))
}

// RevokeSubject ends every grant of a subject, as after a password reset:
// its chains and the access tokens they record in one update.
func (s *Store) RevokeSubject(ctx context.Context, subject string) error {
	return MapError(s.db.RevokeSubjectTokens(ctx, subject))
}

// DeleteExpired removes token, authorization code and PKCE rows that
// expired before t. A chain is kept until its newest token expires even
// when revoked, and a code row until its own expiry even when used, for
// reuse detection.
func (s *Store) DeleteExpired(ctx context.Context, t time.Time) (int, error) {
	n, err := s.db.DeleteExpiredTokens(ctx, t)
	return n, MapError(err)
}

// MapError maps storage errors to the ones fosite understands: a missing
// row is fosite.ErrNotFound, a lost race between transactions (MySQL
// deadlock or lock timeout, SQLite busy) is fosite.ErrSerializationFailure,
// which fosite answers with a retryable error, and a row for a user who is
// gone is ErrUserGone.
func MapError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrTokenUserGone):
		return fmt.Errorf("%w: %w", ErrUserGone, err)
	case errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("%w: %w", fosite.ErrNotFound, err)
	case errors.Is(err, storage.ErrRetryable):
		return fmt.Errorf("%w: %w", fosite.ErrSerializationFailure, err)
	}
	return err
}
