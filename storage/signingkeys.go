package storage

import (
	"context"
	"time"

	"idp/ent"
	"idp/ent/signingkey"
)

// The states of a signing key, which are also the names of the two slots
// (a retired key holds none).
const (
	SigningKeyNext    = "next"
	SigningKeyActive  = "active"
	SigningKeyRetired = "retired"
)

// SigningKey is one row of the signing key table: an RSA key whose private
// part is sealed with the key-encryption key.
type SigningKey struct {
	ID    string // the kid
	State string // SigningKeyNext, SigningKeyActive or SigningKeyRetired
	// Slot is SigningKeyNext or SigningKeyActive for the keys in those
	// states and empty for retired keys. Its unique index guarantees at
	// most one next and one active key: a second insert or promotion into
	// a slot fails with ErrConflict.
	Slot        string
	Algorithm   string
	PrivateKey  []byte // sealed
	PublicJWK   []byte
	CreatedAt   time.Time
	ActivatesAt time.Time
	ActivatedAt *time.Time
	RetiredAt   *time.Time
}

func signingKeyOf(r *ent.SigningKey) *SigningKey {
	k := &SigningKey{
		ID:          r.ID,
		State:       string(r.State),
		Algorithm:   r.Algorithm,
		PrivateKey:  r.PrivateKey,
		PublicJWK:   r.PublicJwk,
		CreatedAt:   r.CreatedAt,
		ActivatesAt: r.ActivatesAt,
		ActivatedAt: r.ActivatedAt,
		RetiredAt:   r.RetiredAt,
	}
	if r.Slot != nil {
		k.Slot = *r.Slot
	}
	return k
}

// SigningKeys returns every signing key, oldest first.
func (s *Store) SigningKeys(ctx context.Context) ([]*SigningKey, error) {
	rows, err := s.client(ctx).SigningKey.Query().
		Order(signingkey.ByCreatedAt(), signingkey.ByID()).
		All(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]*SigningKey, len(rows))
	for i, r := range rows {
		out[i] = signingKeyOf(r)
	}
	return out, nil
}

// SigningKey returns the key kid, or ErrNotFound.
func (s *Store) SigningKey(ctx context.Context, kid string) (*SigningKey, error) {
	r, err := s.client(ctx).SigningKey.Get(ctx, kid)
	if err != nil {
		return nil, wrap(err)
	}
	return signingKeyOf(r), nil
}

// CreateSigningKey inserts k. When k takes a slot another key holds, it
// fails with ErrConflict: of processes racing to create a key for a slot,
// exactly one succeeds.
func (s *Store) CreateSigningKey(ctx context.Context, k *SigningKey) error {
	c := s.client(ctx).SigningKey.Create().
		SetID(k.ID).
		SetState(signingkey.State(k.State)).
		SetAlgorithm(k.Algorithm).
		SetPrivateKey(k.PrivateKey).
		SetPublicJwk(k.PublicJWK).
		SetCreatedAt(k.CreatedAt).
		SetActivatesAt(k.ActivatesAt).
		SetNillableActivatedAt(k.ActivatedAt).
		SetNillableRetiredAt(k.RetiredAt)
	if k.Slot != "" {
		c.SetSlot(k.Slot)
	}
	return wrap(c.Exec(ctx))
}

// SigningKeyHoldsSlot reports whether the key kid still holds slot.
func (s *Store) SigningKeyHoldsSlot(ctx context.Context, kid, slot string) (bool, error) {
	ok, err := s.client(ctx).SigningKey.Query().
		Where(signingkey.ID(kid), signingkey.Slot(slot)).
		Exist(ctx)
	return ok, wrap(err)
}

// RetireActiveSigningKey retires kid and frees the active slot, provided kid
// still holds it; it reports whether it did (one conditional UPDATE, so of
// processes retiring at once exactly one sees true).
func (s *Store) RetireActiveSigningKey(ctx context.Context, kid string, now time.Time) (bool, error) {
	n, err := s.client(ctx).SigningKey.Update().
		Where(signingkey.ID(kid), signingkey.Slot(SigningKeyActive)).
		SetState(signingkey.StateRetired).
		ClearSlot().
		SetRetiredAt(now).
		Save(ctx)
	return n == 1, wrap(err)
}

// ActivateNextSigningKey moves kid from the next slot to the active one,
// provided it still holds the next slot, and reports whether it did. It fails
// with ErrConflict while another key holds the active slot. activatesAt, when
// not nil, also moves the key's activation time (an early promotion).
func (s *Store) ActivateNextSigningKey(ctx context.Context, kid string, now time.Time, activatesAt *time.Time) (bool, error) {
	n, err := s.client(ctx).SigningKey.Update().
		Where(signingkey.ID(kid), signingkey.Slot(SigningKeyNext)).
		SetState(signingkey.StateActive).
		SetSlot(SigningKeyActive).
		SetActivatedAt(now).
		SetNillableActivatesAt(activatesAt).
		Save(ctx)
	return n == 1, wrap(err)
}

// SetNextSigningKeyActivation moves the activation of kid to at, provided kid
// is still the next key.
func (s *Store) SetNextSigningKeyActivation(ctx context.Context, kid string, at time.Time) error {
	return wrap(s.client(ctx).SigningKey.Update().
		Where(signingkey.ID(kid), signingkey.Slot(SigningKeyNext)).
		SetActivatesAt(at).Exec(ctx))
}

// DeleteRetiredSigningKeys deletes those of kids that are retired and
// returns how many. The caller picks the kids past their retention: the
// times are compared in Go rather than in SQL, where SQLite would compare
// them as text.
func (s *Store) DeleteRetiredSigningKeys(ctx context.Context, kids []string) (int, error) {
	if len(kids) == 0 {
		return 0, nil
	}
	n, err := s.client(ctx).SigningKey.Delete().
		Where(signingkey.IDIn(kids...), signingkey.StateEQ(signingkey.StateRetired)).
		Exec(ctx)
	return n, wrap(err)
}
