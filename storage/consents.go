package storage

import (
	"context"
	"time"

	"idp/ent"
	"idp/ent/consent"
)

// Consent is what a user has allowed a client: the scopes granted so far.
// Version changes with every write, so that concurrent grants can each add
// to what the others wrote (UpdateConsentScopes).
type Consent struct {
	ID        int64
	UserID    int64
	ClientID  string
	Scopes    []string
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

func consentOf(row *ent.Consent) *Consent {
	return &Consent{
		ID:        int64(row.ID),
		UserID:    row.UserID,
		ClientID:  row.ClientID,
		Scopes:    row.Scopes,
		Version:   row.Version,
		CreatedAt: row.CreatedAt,
		UpdatedAt: row.UpdatedAt,
	}
}

// ConsentOf is userID's consent to clientID, by the unique index on the
// two; ErrNotFound when there is none.
func (s *Store) ConsentOf(ctx context.Context, userID int64, clientID string) (*Consent, error) {
	row, err := s.client(ctx).Consent.Query().
		Where(consent.UserID(userID), consent.ClientID(clientID)).
		Only(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	return consentOf(row), nil
}

// CreateConsent stores the first consent of c.UserID to c.ClientID, at
// version 0 and only while the user exists (the insert holds the user's
// row, as CreateSession does): ErrNotFound when the user is gone,
// ErrConflict when a concurrent grant created the row first.
func (s *Store) CreateConsent(ctx context.Context, c Consent) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.holdUser(ctx, c.UserID); err != nil {
			return err
		}
		return wrap(s.client(ctx).Consent.Create().
			SetUserID(c.UserID).
			SetClientID(c.ClientID).
			SetScopes(c.Scopes).
			SetCreatedAt(c.CreatedAt).
			SetUpdatedAt(c.UpdatedAt).
			Exec(ctx))
	})
}

// UpdateConsentScopes replaces the scopes of consent id provided it is
// still at version, moving it to the next version, and reports whether it
// was: false when a concurrent write changed (or removed) the row since it
// was read.
func (s *Store) UpdateConsentScopes(ctx context.Context, id, version int64, scopes []string, at time.Time) (bool, error) {
	n, err := s.client(ctx).Consent.Update().
		Where(consent.ID(int(id)), consent.Version(version)).
		SetScopes(scopes).
		SetVersion(version + 1).
		SetUpdatedAt(at).
		Save(ctx)
	if err != nil {
		return false, wrap(err)
	}
	return n == 1, nil
}

// DeleteUserConsents removes every consent of userID.
func (s *Store) DeleteUserConsents(ctx context.Context, userID int64) error {
	_, err := s.client(ctx).Consent.Delete().Where(consent.UserID(userID)).Exec(ctx)
	return wrap(err)
}
