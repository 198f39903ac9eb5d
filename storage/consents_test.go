package storage

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func consentRow(userID int64, clientID string, scopes ...string) Consent {
	return Consent{UserID: userID, ClientID: clientID, Scopes: scopes, CreatedAt: sessionsT0, UpdatedAt: sessionsT0}
}

// TestConsentCreateAndRead: a consent reads back by user and client at
// version 0; another user's or client's is not found; one for a user that
// does not exist is not stored.
func TestConsentCreateAndRead(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		sessionsUsers(t, s, 7, 8)
		if err := s.CreateConsent(ctx, consentRow(7, "web", "openid", "profile")); err != nil {
			t.Fatal(err)
		}
		got, err := s.ConsentOf(ctx, 7, "web")
		if err != nil {
			t.Fatal(err)
		}
		if got.UserID != 7 || got.ClientID != "web" || !slices.Equal(got.Scopes, []string{"openid", "profile"}) ||
			got.Version != 0 || !got.CreatedAt.Equal(sessionsT0) || !got.UpdatedAt.Equal(sessionsT0) {
			t.Errorf("read back %+v", got)
		}
		for _, k := range []struct {
			user   int64
			client string
		}{{7, "cli"}, {8, "web"}} {
			if _, err := s.ConsentOf(ctx, k.user, k.client); !errors.Is(err, ErrNotFound) {
				t.Errorf("ConsentOf(%d, %s): %v, want ErrNotFound", k.user, k.client, err)
			}
		}
		if err := s.CreateConsent(ctx, consentRow(99, "web", "openid")); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing user: %v, want ErrNotFound", err)
		}
		if _, err := s.ConsentOf(ctx, 99, "web"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a consent of a missing user was stored: %v", err)
		}
	})
}

// TestConsentConcurrentCreate: of inserts racing for one user and client,
// exactly one wins and every other says ErrConflict (what Grant retries
// on), whatever the engine reports.
func TestConsentConcurrentCreate(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		sessionsUsers(t, s, 7)
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				errs[i] = s.CreateConsent(ctx, consentRow(7, "web", "openid"))
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrConflict):
				t.Errorf("insert %d: %v, want ErrConflict", i, err)
			}
		}
		if won != 1 {
			t.Errorf("%d inserts won, want 1", won)
		}
		if err := s.CreateConsent(ctx, consentRow(7, "web", "email")); !errors.Is(err, ErrConflict) {
			t.Errorf("insert after the race: %v, want ErrConflict", err)
		}
	})
}

// TestConsentUpdateScopes: an update applies only at the version read,
// and moves the version on, so that of two writers who read the same
// version only the first changes the row.
func TestConsentUpdateScopes(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		sessionsUsers(t, s, 7)
		if err := s.CreateConsent(ctx, consentRow(7, "web", "openid")); err != nil {
			t.Fatal(err)
		}
		read, err := s.ConsentOf(ctx, 7, "web")
		if err != nil {
			t.Fatal(err)
		}
		later := sessionsT0.Add(time.Hour)
		if ok, err := s.UpdateConsentScopes(ctx, read.ID, read.Version, []string{"openid", "email"}, later); err != nil || !ok {
			t.Fatalf("first update: %v, %v", ok, err)
		}
		if ok, err := s.UpdateConsentScopes(ctx, read.ID, read.Version, []string{"openid", "profile"}, later); err != nil || ok {
			t.Fatalf("update at a stale version: %v, %v; want false", ok, err)
		}
		got, err := s.ConsentOf(ctx, 7, "web")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Scopes, []string{"openid", "email"}) || got.Version != read.Version+1 ||
			!got.UpdatedAt.Equal(later) || !got.CreatedAt.Equal(sessionsT0) {
			t.Errorf("after the updates: %+v", got)
		}
	})
}

// TestDeleteUserConsents: a user's consents go, inside a transaction
// too; another user's stay.
func TestDeleteUserConsents(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		sessionsUsers(t, s, 7, 8)
		for _, c := range []Consent{consentRow(7, "web"), consentRow(7, "cli"), consentRow(8, "web")} {
			if err := s.CreateConsent(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.InTx(ctx, func(ctx context.Context) error { return s.DeleteUserConsents(ctx, 7) }); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			user   int64
			client string
			want   bool
		}{{7, "web", false}, {7, "cli", false}, {8, "web", true}} {
			_, err := s.ConsentOf(ctx, c.user, c.client)
			if (err == nil) != c.want || (err != nil && !errors.Is(err, ErrNotFound)) {
				t.Errorf("ConsentOf(%d, %s) after the deletion: %v", c.user, c.client, err)
			}
		}
		if err := s.DeleteUserConsents(ctx, 7); err != nil {
			t.Errorf("deleting again: %v", err)
		}
	})
}
