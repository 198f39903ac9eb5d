package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

var keyNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func testSigningKey(kid, state string, created time.Time) *SigningKey {
	k := &SigningKey{
		ID: kid, State: state, Algorithm: "RS256",
		PrivateKey: []byte("sealed-" + kid), PublicJWK: []byte(`{"kid":"` + kid + `"}`),
		CreatedAt: created, ActivatesAt: created,
	}
	if state != SigningKeyRetired {
		k.Slot = state
	}
	if state == SigningKeyActive {
		k.ActivatedAt = &created
	}
	return k
}

// TestSigningKeySlots: the slot index refuses a second active or next key
// with ErrConflict, and the conditional updates move keys between slots
// only while they hold the slot they were read in.
func TestSigningKeySlots(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.CreateSigningKey(ctx, testSigningKey("a", SigningKeyActive, keyNow)); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSigningKey(ctx, testSigningKey("a2", SigningKeyActive, keyNow)); !errors.Is(err, ErrConflict) {
			t.Fatalf("a second active key: %v, want ErrConflict", err)
		}
		if err := s.CreateSigningKey(ctx, testSigningKey("b", SigningKeyNext, keyNow.Add(time.Second))); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSigningKey(ctx, testSigningKey("b2", SigningKeyNext, keyNow)); !errors.Is(err, ErrConflict) {
			t.Fatalf("a second next key: %v, want ErrConflict", err)
		}
		if ok, err := s.SigningKeyHoldsSlot(ctx, "a", SigningKeyActive); !ok || err != nil {
			t.Fatalf("a holds active = %v, %v", ok, err)
		}
		if ok, err := s.SigningKeyHoldsSlot(ctx, "b", SigningKeyActive); ok || err != nil {
			t.Fatalf("b holds active = %v, %v", ok, err)
		}

		// The active slot is taken: activating the next key conflicts.
		promoted := keyNow.Add(time.Hour)
		if _, err := s.ActivateNextSigningKey(ctx, "b", promoted, nil); !errors.Is(err, ErrConflict) {
			t.Fatalf("activating while a is active: %v, want ErrConflict", err)
		}
		if ok, err := s.RetireActiveSigningKey(ctx, "a", promoted); !ok || err != nil {
			t.Fatalf("retire = %v, %v", ok, err)
		}
		if ok, err := s.RetireActiveSigningKey(ctx, "a", promoted); ok || err != nil {
			t.Fatalf("retiring twice = %v, %v; want false", ok, err)
		}
		if ok, err := s.ActivateNextSigningKey(ctx, "b", promoted, &promoted); !ok || err != nil {
			t.Fatalf("activate = %v, %v", ok, err)
		}
		if ok, err := s.ActivateNextSigningKey(ctx, "b", promoted, nil); ok || err != nil {
			t.Fatalf("activating twice = %v, %v; want false", ok, err)
		}

		rows, err := s.SigningKeys(ctx)
		if err != nil || len(rows) != 2 || rows[0].ID != "a" || rows[1].ID != "b" {
			t.Fatalf("SigningKeys = %+v, %v; want a then b", rows, err)
		}
		a, b := rows[0], rows[1]
		if a.State != SigningKeyRetired || a.Slot != "" || a.RetiredAt == nil || !a.RetiredAt.Equal(promoted) {
			t.Errorf("retired row = %+v", a)
		}
		if b.State != SigningKeyActive || b.Slot != SigningKeyActive || b.ActivatedAt == nil || !b.ActivatedAt.Equal(promoted) || !b.ActivatesAt.Equal(promoted) {
			t.Errorf("promoted row = %+v", b)
		}
		if string(b.PrivateKey) != "sealed-b" || string(b.PublicJWK) != `{"kid":"b"}` || b.Algorithm != "RS256" {
			t.Errorf("promoted row's material = %+v", b)
		}
	})
}

// TestSigningKeyActivationAndDeletion: only the next key's activation
// moves, and only retired keys are deleted.
func TestSigningKeyActivationAndDeletion(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for _, k := range []*SigningKey{
			testSigningKey("old", SigningKeyRetired, keyNow),
			testSigningKey("cur", SigningKeyActive, keyNow.Add(time.Second)),
			testSigningKey("nxt", SigningKeyNext, keyNow.Add(2*time.Second)),
		} {
			if err := s.CreateSigningKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		at := keyNow.Add(time.Hour)
		for _, kid := range []string{"cur", "nxt"} {
			if err := s.SetNextSigningKeyActivation(ctx, kid, at); err != nil {
				t.Fatal(err)
			}
		}
		if k, err := s.SigningKey(ctx, "nxt"); err != nil || !k.ActivatesAt.Equal(at) {
			t.Fatalf("next key = %+v, %v; want activation moved to %v", k, err, at)
		}
		if k, err := s.SigningKey(ctx, "cur"); err != nil || !k.ActivatesAt.Equal(keyNow.Add(time.Second)) {
			t.Fatalf("active key = %+v, %v; want its activation unchanged", k, err)
		}
		if _, err := s.SigningKey(ctx, "none"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing key: %v, want ErrNotFound", err)
		}

		n, err := s.DeleteRetiredSigningKeys(ctx, []string{"old", "cur", "nxt"})
		if err != nil || n != 1 {
			t.Fatalf("deleted %d, %v; want only the retired key", n, err)
		}
		if n, err := s.DeleteRetiredSigningKeys(ctx, nil); err != nil || n != 0 {
			t.Fatalf("no kids: %d, %v", n, err)
		}
		if rows, _ := s.SigningKeys(ctx); len(rows) != 2 {
			t.Fatalf("%d keys left, want 2", len(rows))
		}
	})
}
