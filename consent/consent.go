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

	"entgo.io/ent/dialect/sql/sqlgraph"

	"idp/account"
	"idp/database"
	"idp/ent"
	"idp/ent/consent"
)

// maxAttempts bounds Grant's retries when concurrent grants keep changing
// the row under it.
const maxAttempts = 8

// errContended is Grant's error when it lost every attempt.
var errContended = errors.New("consent: grant kept losing to concurrent grants")

// Store keeps consents in the database.
type Store struct {
	db  *ent.Client
	now func() time.Time
}

// NewStore returns a Store on db.
func NewStore(db *ent.Client, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, now: now}
}

func (s *Store) client(ctx context.Context) *ent.Client { return database.Client(ctx, s.db) }

// Covers reports whether userID has granted clientID every one of scopes
// before; an empty list is always covered.
func (s *Store) Covers(ctx context.Context, userID int64, clientID string, scopes []string) (bool, error) {
	row, err := s.client(ctx).Consent.Query().
		Where(consent.UserID(userID), consent.ClientID(clientID)).
		Only(ctx)
	if ent.IsNotFound(err) {
		return len(scopes) == 0, nil
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
// one, a retry on MySQL would read the same stale snapshot again.
func (s *Store) Grant(ctx context.Context, userID int64, clientID string, scopes []string) error {
	c := s.client(ctx)
	for range maxAttempts {
		row, err := c.Consent.Query().Where(consent.UserID(userID), consent.ClientID(clientID)).Only(ctx)
		switch {
		case ent.IsNotFound(err):
			now := s.now()
			// Only while the user exists: a consent racing the account's
			// erasure leaves no row behind (account.HoldUser).
			err := database.InTx(ctx, s.db, func(ctx context.Context) error {
				if err := account.HoldUser(ctx, userID); err != nil {
					return err
				}
				return database.Client(ctx, s.db).Consent.Create().
					SetUserID(userID).
					SetClientID(clientID).
					SetScopes(union(nil, scopes)).
					SetCreatedAt(now).
					SetUpdatedAt(now).
					Exec(ctx)
			})
			if sqlgraph.IsUniqueConstraintError(err) {
				continue // a concurrent grant created it: add to that
			}
			if err != nil {
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
		n, err := c.Consent.Update().
			Where(consent.ID(row.ID), consent.Version(row.Version)).
			SetScopes(merged).
			SetVersion(row.Version + 1).
			SetUpdatedAt(s.now()).
			Save(ctx)
		if err != nil {
			return fmt.Errorf("consent: update: %w", err)
		}
		if n == 1 {
			return nil
		}
		// A concurrent grant changed the row since it was read: merge again.
	}
	return errContended
}

// DeleteUser forgets every consent of a user (erasure); it runs in the
// transaction ctx carries, if any.
func (s *Store) DeleteUser(ctx context.Context, userID int64) error {
	if _, err := s.client(ctx).Consent.Delete().Where(consent.UserID(userID)).Exec(ctx); err != nil {
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
