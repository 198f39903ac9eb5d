// Package consent remembers what each user has allowed each client: the
// scopes granted so far, so that the consent page is shown again only for
// scopes not yet granted.
package consent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"idp/account"
	"idp/storage"
)

// maxAttempts bounds Grant's retries when concurrent grants keep changing
// the row under it.
const maxAttempts = 8

// errContended is Grant's error when it lost every attempt.
var errContended = errors.New("consent: grant kept losing to concurrent grants")

// Storage is what a Store needs of the database: *storage.Store.
type Storage interface {
	ConsentOf(ctx context.Context, userID int64, clientID string) (*storage.Consent, error)
	CreateConsent(ctx context.Context, c storage.Consent) error
	UpdateConsentScopes(ctx context.Context, id, version int64, scopes []string, at time.Time) (bool, error)
	DeleteUserConsents(ctx context.Context, userID int64) error
}

// Store keeps consents in the database.
type Store struct {
	db  Storage
	now func() time.Time
}

// NewStore returns a Store on db.
func NewStore(db Storage, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, now: now}
}

// Covers reports whether userID has granted clientID every one of scopes
// before. An empty list is covered only once the user has allowed the
// client something (an empty request included): even a request for no
// scope tells the client who the user is, so a client the user never
// allowed is not covered by any.
func (s *Store) Covers(ctx context.Context, userID int64, clientID string, scopes []string) (bool, error) {
	row, err := s.db.ConsentOf(ctx, userID, clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("consent: read: %w", err)
	}
	for _, sc := range scopes {
		if !slices.Contains(row.Scopes, sc) {
			return false, nil
		}
	}
	return true, nil
}

// Grant records that userID allowed clientID scopes, in addition to what
// it allowed before. Concurrent grants each keep what the others add: a
// row is created once (the unique index on user and client decides which
// insert wins) and then changed only by a write conditional on the version
// that was read, retried on a lost race. Run it outside a transaction: in
// one, a retry on MySQL would read the same stale snapshot again. A grant
// of no scope is recorded too (a row without scopes), so that Covers
// covers an empty request from then on.
func (s *Store) Grant(ctx context.Context, userID int64, clientID string, scopes []string) error {
	for range maxAttempts {
		row, err := s.db.ConsentOf(ctx, userID, clientID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			now := s.now()
			// Only while the user exists: storage holds the user's row
			// for the insert, so a consent racing the account's erasure
			// leaves no row behind.
			err := s.db.CreateConsent(ctx, storage.Consent{
				UserID:    userID,
				ClientID:  clientID,
				Scopes:    union(nil, scopes),
				CreatedAt: now,
				UpdatedAt: now,
			})
			switch {
			case errors.Is(err, storage.ErrConflict):
				continue // a concurrent grant created it: add to that
			case errors.Is(err, storage.ErrNotFound):
				return fmt.Errorf("consent: create: %w: %w", account.ErrNotFound, err)
			case err != nil:
				return fmt.Errorf("consent: create: %w", err)
			}
			return nil
		case err != nil:
			return fmt.Errorf("consent: read: %w", err)
		}
		merged := union(row.Scopes, scopes)
		if len(merged) == len(row.Scopes) {
			return nil // nothing new
		}
		ok, err := s.db.UpdateConsentScopes(ctx, row.ID, row.Version, merged, s.now())
		if err != nil {
			return fmt.Errorf("consent: update: %w", err)
		}
		if ok {
			return nil
		}
		// A concurrent grant changed the row since it was read: merge again.
	}
	return errContended
}

// DeleteUser forgets every consent of a user (erasure); it runs in the
// transaction ctx carries, if any.
func (s *Store) DeleteUser(ctx context.Context, userID int64) error {
	if err := s.db.DeleteUserConsents(ctx, userID); err != nil {
		return fmt.Errorf("consent: delete user's consents: %w", err)
	}
	return nil
}

// union is have followed by the scopes of add it lacks, without repeats.
func union(have, add []string) []string {
	out := slices.Clone(have)
	for _, sc := range add {
		if sc != "" && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}
