package storage

import (
	"context"
	"fmt"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"idp/ent/consent"
	"idp/ent/loginthrottle"
	"idp/ent/onetimecode"
	"idp/ent/outboxmessage"
	"idp/ent/passkey"
	"idp/ent/predicate"
)

// ExportQuery says whose rows an export reads. The key formats and the
// codes' policy belong to the packages that write the rows, so they are
// given, not known here.
type ExportQuery struct {
	UserID int64
	// Email is the address whose mail in the outbox is read, beside the
	// mail written for the user wherever it went.
	Email string
	// ThrottleKey is the key of the account's login throttles: the
	// throttle with that id (all addresses together) and those with id
	// ThrottleKey+"|"+address.
	ThrottleKey string
	// Now and MaxAttempts tell a one-time code that is still usable: one
	// expiring after Now, with fewer than MaxAttempts wrong tries.
	Now         time.Time
	MaxAttempts int
}

// ExportRecords are the rows of a user that an export shows besides the
// user and its sessions. No secret is read: no code hash, no mail body.
type ExportRecords struct {
	Consents       []ExportConsent // by client id
	LoginThrottles []ExportThrottle
	PendingCodes   []ExportCode    // by purpose
	Mail           []ExportMail    // oldest first
	Passkeys       []ExportPasskey // oldest first
}

// ExportConsent is a remembered consent.
type ExportConsent struct {
	ClientID             string
	Scopes               []string
	CreatedAt, UpdatedAt time.Time
}

// ExportThrottle is a count of failed logins of the account.
type ExportThrottle struct {
	// Key is the throttle's id: ExportQuery.ThrottleKey, alone or with
	// "|" and an address.
	Key         string
	Failures    int
	LockedUntil *time.Time // nil: not locked
	UpdatedAt   time.Time
}

// ExportCode is a usable one-time code: its purpose and life, nothing of
// the code.
type ExportCode struct {
	Purpose              string
	NewEmail             string // the address an email change would move to; "" for other codes
	CreatedAt, ExpiresAt time.Time
}

// ExportMail is a message in the outbox: everything but its body, which
// may carry a code.
type ExportMail struct {
	To        string
	Subject   string
	State     string
	CreatedAt time.Time
	SentAt    *time.Time // nil: not sent
}

// ExportPasskey is a WebAuthn credential. All of it is public: the private
// key never leaves the authenticator.
type ExportPasskey struct {
	ID                          string
	Name                        string
	CreatedAt                   time.Time
	LastUsedAt                  *time.Time // nil: never used
	CredentialID, PublicKey     []byte
	AAGUID                      []byte
	SignCount                   uint32
	BackupEligible, BackupState bool
	Transports                  []string
}

// ExportUser reads the rows q names, one query per table. A failure to
// read any part fails the whole: a partial export would claim to be
// complete. The slices are empty, not nil, when there is no row.
func (s *Store) ExportUser(ctx context.Context, q ExportQuery) (*ExportRecords, error) {
	c := s.client(ctx)
	out := &ExportRecords{Consents: []ExportConsent{}, LoginThrottles: []ExportThrottle{},
		PendingCodes: []ExportCode{}, Mail: []ExportMail{}, Passkeys: []ExportPasskey{}}

	consents, err := c.Consent.Query().Where(consent.UserID(q.UserID)).Order(consent.ByClientID()).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("storage: export consents: %w", wrap(err))
	}
	for _, x := range consents {
		out.Consents = append(out.Consents, ExportConsent{ClientID: x.ClientID, Scopes: x.Scopes, CreatedAt: x.CreatedAt, UpdatedAt: x.UpdatedAt})
	}

	// The prefix ends with the bar, so that user 1 does not read user 12's.
	throttles, err := c.LoginThrottle.Query().
		Where(loginthrottle.Or(loginthrottle.ID(q.ThrottleKey), predicate.LoginThrottle(entsql.FieldHasPrefix(loginthrottle.FieldID, q.ThrottleKey+"|")))).
		Order(loginthrottle.ByID()).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("storage: export login throttles: %w", wrap(err))
	}
	for _, t := range throttles {
		out.LoginThrottles = append(out.LoginThrottles, ExportThrottle{Key: t.ID, Failures: t.Failures, LockedUntil: t.LockedUntil, UpdatedAt: t.UpdatedAt})
	}

	// Only the columns shown are read: the hash never leaves the database.
	codes, err := c.OneTimeCode.Query().
		Where(onetimecode.UserID(q.UserID), onetimecode.ExpiresAtGT(q.Now), onetimecode.AttemptsLT(q.MaxAttempts)).
		Order(onetimecode.ByPurpose()).
		Select(onetimecode.FieldPurpose, onetimecode.FieldNewEmail, onetimecode.FieldCreatedAt, onetimecode.FieldExpiresAt).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("storage: export one-time codes: %w", wrap(err))
	}
	for _, x := range codes {
		e := ExportCode{Purpose: string(x.Purpose), CreatedAt: x.CreatedAt, ExpiresAt: x.ExpiresAt}
		if x.NewEmail != nil {
			e.NewEmail = *x.NewEmail
		}
		out.PendingCodes = append(out.PendingCodes, e)
	}

	// The mail an erasure would take (EraseUser). Neither body is read:
	// they may carry codes.
	mails, err := c.OutboxMessage.Query().
		Where(userMail(q.UserID, q.Email)).
		Order(outboxmessage.ByCreatedAt(), outboxmessage.ByID()).
		Select(outboxmessage.FieldRecipient, outboxmessage.FieldSubject, outboxmessage.FieldState, outboxmessage.FieldCreatedAt, outboxmessage.FieldSentAt).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("storage: export mail: %w", wrap(err))
	}
	for _, m := range mails {
		out.Mail = append(out.Mail, ExportMail{To: m.Recipient, Subject: m.Subject, State: string(m.State), CreatedAt: m.CreatedAt, SentAt: m.SentAt})
	}

	passkeys, err := c.Passkey.Query().Where(passkey.UserID(q.UserID)).Order(passkey.ByCreatedAt(), passkey.ByID()).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("storage: export passkeys: %w", wrap(err))
	}
	for _, p := range passkeys {
		out.Passkeys = append(out.Passkeys, ExportPasskey{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt, LastUsedAt: p.LastUsedAt,
			CredentialID: p.CredentialID, PublicKey: p.PublicKey, AAGUID: p.Aaguid, SignCount: p.SignCount,
			BackupEligible: p.BackupEligible, BackupState: p.BackupState, Transports: p.Transports})
	}
	return out, nil
}
