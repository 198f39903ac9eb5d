// Package session keeps signed-in browsers: a cookie carries a random
// token, and the session it names lives in the database, where every
// replica finds it. Only the token's SHA-256 is stored, so a copy of the
// database signs no one in. A session ends at an absolute lifetime after
// sign-in, or earlier when the browser stays away longer than the idle
// lifetime.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"idp/account"
	"idp/storage"
)

// Default lifetimes (IDP_SESSION_TTL and IDP_SESSION_IDLE_TTL).
const (
	DefaultTTL     = 14 * 24 * time.Hour
	DefaultIdleTTL = 3 * 24 * time.Hour
)

// seenEvery is how stale LastSeenAt may get: a lookup writes it at most
// once a minute per session, so that every page view is not a write.
const seenEvery = time.Minute

// maxUserAgent bounds the stored user agent, in bytes.
const maxUserAgent = 255

// tokenLen is the length of a token: 32 random bytes in unpadded base64url.
var tokenLen = base64.RawURLEncoding.EncodedLen(32)

// ErrNotFound is Lookup's answer for a token that names no live session:
// unknown, malformed, expired or idle too long.
var ErrNotFound = errors.New("session: not found")

// Session is a signed-in browser.
type Session struct {
	// ID is the public name of the session (22 characters of base64url),
	// the OIDC sid; it is not a credential.
	ID       string
	UserID   int64
	AuthTime time.Time
	// Methods are how the user authenticated (amr values: "pwd", "hwk").
	Methods   []string
	UserAgent string
	// Remember is whether the cookie outlives the browser.
	Remember   bool
	CreatedAt  time.Time
	LastSeenAt time.Time
	// ExpiresAt is when the session ends unless seen again: the earlier of
	// the absolute end and LastSeenAt plus the idle lifetime.
	ExpiresAt time.Time
}

// Options are a Store's lifetimes and clock; zero values take the
// defaults.
type Options struct {
	TTL, IdleTTL time.Duration
	Now          func() time.Time
}

// Storage is what a Store needs of the database: *storage.Store.
type Storage interface {
	CreateSession(ctx context.Context, bs storage.BrowserSession) error
	SessionByTokenHash(ctx context.Context, tokenHash string) (*storage.BrowserSession, error)
	RecordSessionSeen(ctx context.Context, id string, at, staleBy time.Time) error
	DeleteSession(ctx context.Context, id string) error
	DeleteUserSession(ctx context.Context, userID int64, id string) error
	DeleteUserSessions(ctx context.Context, userID int64, keepID string) error
	UserSessions(ctx context.Context, userID int64, now, idleSince time.Time) ([]storage.BrowserSession, error)
	DeleteEndedSessions(ctx context.Context, now, idleSince time.Time) (int, error)
}

// Store keeps sessions in the database.
type Store struct {
	db           Storage
	ttl, idleTTL time.Duration
	now          func() time.Time
}

// NewStore returns a Store on db.
func NewStore(db Storage, opts Options) *Store {
	s := &Store{db: db, ttl: opts.TTL, idleTTL: opts.IdleTTL, now: opts.Now}
	if s.ttl <= 0 {
		s.ttl = DefaultTTL
	}
	if s.idleTTL <= 0 {
		s.idleTTL = DefaultIdleTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// clock is the current time as the databases keep it: UTC, whole
// microseconds, so that what Create returns equals what Lookup reads.
func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Create starts a session for userID and returns the token for its
// cookie. The token is not kept: only its hash is stored.
func (s *Store) Create(ctx context.Context, userID int64, methods []string, userAgent string, remember bool) (string, *Session, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", nil, err
	}
	now := s.clock()
	sess := &Session{
		ID:         base64.RawURLEncoding.EncodeToString(id[:]),
		UserID:     userID,
		AuthTime:   now,
		Methods:    append([]string(nil), methods...),
		UserAgent:  cleanUserAgent(userAgent),
		Remember:   remember,
		CreatedAt:  now,
		LastSeenAt: now,
	}
	absolute := now.Add(s.ttl)
	// Only while the user exists: storage holds the user's row for the
	// insert, so a login racing the account's erasure leaves no session
	// behind, and says ErrNotFound when the user is gone.
	err := s.db.CreateSession(ctx, storage.BrowserSession{
		ID:         sess.ID,
		TokenHash:  hashToken(token),
		UserID:     userID,
		AuthTime:   now,
		Methods:    sess.Methods,
		UserAgent:  sess.UserAgent,
		Remember:   remember,
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  absolute,
	})
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil, fmt.Errorf("session: create: %w: %w", account.ErrNotFound, err)
	}
	if err != nil {
		return "", nil, fmt.Errorf("session: create: %w", err)
	}
	sess.ExpiresAt = s.expiresAt(absolute, now)
	return token, sess, nil
}

// Lookup returns the live session token names, and records that it was
// seen (at most once a minute). Anything else is ErrNotFound.
func (s *Store) Lookup(ctx context.Context, token string) (*Session, error) {
	if !wellFormed(token) {
		return nil, ErrNotFound
	}
	row, err := s.db.SessionByTokenHash(ctx, hashToken(token))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("session: lookup: %w", err)
	}
	now := s.clock()
	if !now.Before(s.expiresAt(row.ExpiresAt, row.LastSeenAt)) {
		return nil, ErrNotFound
	}
	seen := row.LastSeenAt
	if now.Sub(seen) >= seenEvery {
		// Conditional, so that concurrent lookups of one session in the
		// same minute mostly leave the write to the first.
		if err := s.db.RecordSessionSeen(ctx, row.ID, now, now.Add(-seenEvery)); err != nil {
			return nil, fmt.Errorf("session: record last seen: %w", err)
		}
		seen = now
	}
	sess := s.fromRow(row, seen)
	return &sess, nil
}

// fromRow is the session a row holds, last seen at seen.
func (s *Store) fromRow(row *storage.BrowserSession, seen time.Time) Session {
	return Session{
		ID:         row.ID,
		UserID:     row.UserID,
		AuthTime:   row.AuthTime.UTC(),
		Methods:    row.Methods,
		UserAgent:  row.UserAgent,
		Remember:   row.Remember,
		CreatedAt:  row.CreatedAt.UTC(),
		LastSeenAt: seen.UTC(),
		ExpiresAt:  s.expiresAt(row.ExpiresAt, seen),
	}
}

// expiresAt is the end of a session with this absolute end, last seen at
// seen.
func (s *Store) expiresAt(absolute, seen time.Time) time.Time {
	idle := seen.Add(s.idleTTL)
	if idle.Before(absolute) {
		return idle.UTC()
	}
	return absolute.UTC()
}

// Delete ends the session id (sign-out). Ending one that is gone is not an
// error.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.db.DeleteSession(ctx, id); err != nil {
		return fmt.Errorf("session: delete: %w", err)
	}
	return nil
}

// DeleteUser ends every session of a user, as after a password reset or
// an erasure; it runs in the transaction ctx carries, if any.
func (s *Store) DeleteUser(ctx context.Context, userID int64) error {
	if err := s.db.DeleteUserSessions(ctx, userID, ""); err != nil {
		return fmt.Errorf("session: delete user's sessions: %w", err)
	}
	return nil
}

// DeleteExpired removes sessions past their absolute end or idle too
// long, and returns how many.
func (s *Store) DeleteExpired(ctx context.Context) (int, error) {
	now := s.clock()
	n, err := s.db.DeleteEndedSessions(ctx, now, now.Add(-s.idleTTL))
	if err != nil {
		return n, fmt.Errorf("session: delete expired: %w", err)
	}
	return n, nil
}

// hashToken is the stored form of a token.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// wellFormed reports whether token could be one Create made, so that a
// forged cookie of any size costs no query.
func wellFormed(token string) bool {
	if len(token) != tokenLen {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(token)
	return err == nil
}

// cleanUserAgent makes a user agent storable on every engine: valid UTF-8
// without control characters (PostgreSQL refuses NUL), at most
// maxUserAgent bytes, cut between characters.
func cleanUserAgent(ua string) string {
	ua = strings.ToValidUTF8(ua, "\uFFFD")
	ua = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, ua)
	if len(ua) <= maxUserAgent {
		return ua
	}
	n := maxUserAgent
	for n > 0 && !utf8.RuneStart(ua[n]) {
		n--
	}
	return ua[:n]
}
