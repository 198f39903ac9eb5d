package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"idp/ent"
	entpasskey "idp/ent/passkey"
	"idp/ent/user"
	"idp/ent/webauthnchallenge"
)

// Passkey is a user's stored WebAuthn credential, as the library's
// credential needs it plus its name and uses. Nothing here is secret.
type Passkey struct {
	ID              string
	UserID          int64
	CredentialID    []byte
	PublicKey       []byte // COSE key
	AttestationType string
	AAGUID          []byte // 16 bytes, or empty
	SignCount       uint32
	UserPresent     bool
	UserVerified    bool
	BackupEligible  bool
	BackupState     bool
	Transports      []string
	Name            string
	CreatedAt       time.Time
	LastUsedAt      *time.Time // nil until first used
}

func passkeyOf(p *ent.Passkey) Passkey {
	return Passkey{
		ID:              p.ID,
		UserID:          p.UserID,
		CredentialID:    p.CredentialID,
		PublicKey:       p.PublicKey,
		AttestationType: p.AttestationType,
		AAGUID:          p.Aaguid,
		SignCount:       p.SignCount,
		UserPresent:     p.UserPresent,
		UserVerified:    p.UserVerified,
		BackupEligible:  p.BackupEligible,
		BackupState:     p.BackupState,
		Transports:      p.Transports,
		Name:            p.Name,
		CreatedAt:       p.CreatedAt,
		LastUsedAt:      p.LastUsedAt,
	}
}

func passkeysOf(rows []*ent.Passkey) []Passkey {
	out := make([]Passkey, len(rows))
	for i, p := range rows {
		out[i] = passkeyOf(p)
	}
	return out
}

// PasskeyUse is what a sign-in with a passkey changes: the authenticator's
// new sign count and flags, and the time of use.
type PasskeyUse struct {
	SignCount    uint32
	UserPresent  bool
	UserVerified bool
	BackupState  bool
	At           time.Time
}

// WebAuthnCeremony names a WebAuthn ceremony.
type WebAuthnCeremony string

// The ceremonies.
const (
	WebAuthnRegistration WebAuthnCeremony = "registration"
	WebAuthnLogin        WebAuthnCeremony = "login"
)

// WebAuthnChallenge is one ceremony under way: the library's session data,
// kept so that any replica can finish it and it is used at most once.
type WebAuthnChallenge struct {
	ID       string
	Ceremony WebAuthnCeremony
	// UserID binds a registration to its user; nil for a (discoverable)
	// login, which names no user until the assertion does.
	UserID      *int64
	SessionData []byte
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// PasskeyUser is the user userID and their passkeys, oldest first: what
// a ceremony needs of the account. ErrNotFound when the user is gone.
func (s *Store) PasskeyUser(ctx context.Context, userID int64) (*User, []Passkey, error) {
	c := s.client(ctx)
	u, err := c.User.Query().Where(user.ID(userID)).Only(ctx)
	if err != nil {
		return nil, nil, wrap(err)
	}
	ps, err := c.Passkey.Query().Where(entpasskey.UserID(userID)).Order(ent.Asc(entpasskey.FieldCreatedAt)).All(ctx)
	if err != nil {
		return nil, nil, wrap(err)
	}
	return userOf(u), passkeysOf(ps), nil
}

// UserPasskeys are userID's passkeys, oldest first (then by id, so that
// the order is stable).
func (s *Store) UserPasskeys(ctx context.Context, userID int64) ([]Passkey, error) {
	ps, err := s.client(ctx).Passkey.Query().Where(entpasskey.UserID(userID)).
		Order(ent.Asc(entpasskey.FieldCreatedAt), ent.Asc(entpasskey.FieldID)).All(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	return passkeysOf(ps), nil
}

// CreatePasskey stores p and returns it as stored. The credential id can
// be too long for a unique index on MySQL, so its SHA-256 is the unique
// key: a credential registered already (by anyone) is ErrConflict.
func (s *Store) CreatePasskey(ctx context.Context, p Passkey) (*Passkey, error) {
	sum := sha256.Sum256(p.CredentialID)
	var row *ent.Passkey
	// Under the user's row, as every write for a user: a passkey stored
	// while the account is erased would outlive it (ErrNotFound instead).
	err := s.InTx(ctx, func(ctx context.Context) error {
		if err := s.holdUser(ctx, p.UserID); err != nil {
			return err
		}
		var err error
		row, err = s.client(ctx).Passkey.Create().SetID(p.ID).SetUserID(p.UserID).SetCredentialID(p.CredentialID).
			SetCredentialHash(hex.EncodeToString(sum[:])).SetPublicKey(p.PublicKey).SetAttestationType(p.AttestationType).
			SetAaguid(p.AAGUID).SetSignCount(p.SignCount).
			SetUserPresent(p.UserPresent).SetUserVerified(p.UserVerified).
			SetBackupEligible(p.BackupEligible).SetBackupState(p.BackupState).
			SetTransports(p.Transports).SetName(p.Name).SetCreatedAt(p.CreatedAt).SetNillableLastUsedAt(p.LastUsedAt).
			Save(ctx)
		return wrap(err)
	})
	if err != nil {
		return nil, err
	}
	out := passkeyOf(row)
	return &out, nil
}

// RenamePasskey names userID's passkey id and returns it; ErrNotFound
// when the user has no such passkey.
func (s *Store) RenamePasskey(ctx context.Context, userID int64, id, name string) (*Passkey, error) {
	c := s.client(ctx)
	n, err := c.Passkey.Update().Where(entpasskey.ID(id), entpasskey.UserID(userID)).SetName(name).Save(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: passkey of user %d", ErrNotFound, userID)
	}
	row, err := c.Passkey.Get(ctx, id)
	if err != nil {
		return nil, wrap(err)
	}
	out := passkeyOf(row)
	return &out, nil
}

// DeletePasskey removes userID's passkey id; ErrNotFound when the user has
// no such passkey.
func (s *Store) DeletePasskey(ctx context.Context, userID int64, id string) error {
	n, err := s.client(ctx).Passkey.Delete().Where(entpasskey.ID(id), entpasskey.UserID(userID)).Exec(ctx)
	if err != nil {
		return wrap(err)
	}
	if n == 0 {
		return fmt.Errorf("%w: passkey of user %d", ErrNotFound, userID)
	}
	return nil
}

// RecordPasskeyUse stores what a sign-in with passkey id changed;
// ErrNotFound when the passkey was deleted meanwhile.
func (s *Store) RecordPasskeyUse(ctx context.Context, id string, use PasskeyUse) error {
	n, err := s.client(ctx).Passkey.Update().Where(entpasskey.ID(id)).
		SetSignCount(use.SignCount).SetUserPresent(use.UserPresent).
		SetUserVerified(use.UserVerified).SetBackupState(use.BackupState).
		SetLastUsedAt(use.At).Save(ctx)
	if err != nil {
		return wrap(err)
	}
	if n == 0 {
		return fmt.Errorf("%w: passkey %s", ErrNotFound, id)
	}
	return nil
}

// CreateWebAuthnChallenge stores a ceremony's challenge.
func (s *Store) CreateWebAuthnChallenge(ctx context.Context, ch WebAuthnChallenge) error {
	return wrap(s.client(ctx).WebAuthnChallenge.Create().SetID(ch.ID).
		SetCeremony(webauthnchallenge.Ceremony(ch.Ceremony)).SetNillableUserID(ch.UserID).
		SetSessionData(ch.SessionData).SetCreatedAt(ch.CreatedAt).SetExpiresAt(ch.ExpiresAt).Exec(ctx))
}

// TakeWebAuthnChallenge removes and returns the challenge id, provided it
// is of ceremony, of userID (nil: of no user) and expires after now.
// Whoever deletes the row owns it, so two concurrent takes cannot both
// have it; a challenge of another ceremony or user is left alone.
// ErrNotFound otherwise.
func (s *Store) TakeWebAuthnChallenge(ctx context.Context, id string, ceremony WebAuthnCeremony, userID *int64, now time.Time) (*WebAuthnChallenge, error) {
	c := s.client(ctx)
	q := c.WebAuthnChallenge.Query().Where(webauthnchallenge.ID(id),
		webauthnchallenge.CeremonyEQ(webauthnchallenge.Ceremony(ceremony)), webauthnchallenge.ExpiresAtGT(now))
	if userID != nil {
		q = q.Where(webauthnchallenge.UserID(*userID))
	} else {
		q = q.Where(webauthnchallenge.UserIDIsNil())
	}
	row, err := q.Only(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	n, err := c.WebAuthnChallenge.Delete().Where(webauthnchallenge.ID(id)).Exec(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	if n != 1 {
		return nil, fmt.Errorf("%w: challenge taken meanwhile", ErrNotFound)
	}
	ch := webAuthnChallengeOf(row)
	return &ch, nil
}

// RegistrationChallenges are userID's registration challenges that expire
// after now.
func (s *Store) RegistrationChallenges(ctx context.Context, userID int64, now time.Time) ([]WebAuthnChallenge, error) {
	rows, err := s.client(ctx).WebAuthnChallenge.Query().
		Where(webauthnchallenge.UserID(userID), webauthnchallenge.CeremonyEQ(webauthnchallenge.CeremonyRegistration), webauthnchallenge.ExpiresAtGT(now)).
		All(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]WebAuthnChallenge, len(rows))
	for i, row := range rows {
		out[i] = webAuthnChallengeOf(row)
	}
	return out, nil
}

// DeleteExpiredWebAuthnChallenges removes the challenges that expire at or
// before now (ceremonies never finished), in batches (deleteInBatches, by
// the index on expires_at), and returns how many.
func (s *Store) DeleteExpiredWebAuthnChallenges(ctx context.Context, now time.Time) (int, error) {
	expired := webauthnchallenge.ExpiresAtLTE(now)
	return deleteInBatches(ctx,
		func(ctx context.Context, limit int) ([]string, error) {
			return s.client(ctx).WebAuthnChallenge.Query().Where(expired).Limit(limit).IDs(ctx)
		},
		func(ctx context.Context, ids []string) (int, error) {
			return s.client(ctx).WebAuthnChallenge.Delete().Where(webauthnchallenge.IDIn(ids...), expired).Exec(ctx)
		})
}

func webAuthnChallengeOf(row *ent.WebAuthnChallenge) WebAuthnChallenge {
	return WebAuthnChallenge{
		ID:          row.ID,
		Ceremony:    WebAuthnCeremony(row.Ceremony),
		UserID:      row.UserID,
		SessionData: row.SessionData,
		CreatedAt:   row.CreatedAt,
		ExpiresAt:   row.ExpiresAt,
	}
}
