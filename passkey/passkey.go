// Package passkey keeps users' WebAuthn credentials (passkeys: discoverable
// credentials with user verification) and runs the two ceremonies that use
// them, registration and sign-in, on top of github.com/go-webauthn/webauthn.
// The ceremonies' state (the challenge and what it expects) lives in the
// database, bound to the ceremony and, for a registration, to the user, so
// that every replica can finish what another began and a challenge is used
// at most once.
package passkey

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"idp/mail"
	"idp/storage"
)

// ChallengeTTL is how long a ceremony may take.
const ChallengeTTL = 5 * time.Minute

// MaxNameLen is the longest passkey name, in characters.
const MaxNameLen = 64

// Errors of the Service. A refused ceremony wraps ErrRejected (and the
// library's *protocol.Error, whose Details say why).
var (
	ErrNotFound  = errors.New("passkey: not found")
	ErrChallenge = errors.New("passkey: unknown, used or expired challenge")
	ErrRejected  = errors.New("passkey: credential refused")
	ErrName      = errors.New("passkey: invalid name")
	// ErrCloned is a sign count that did not grow: the credential may
	// have been copied, so the assertion is refused.
	ErrCloned = fmt.Errorf("%w: the sign count went backwards", ErrRejected)
)

// Config is the relying party.
type Config struct {
	// Issuer is the public base URL: its host is the RP ID, its origin the
	// first allowed origin.
	Issuer string
	// Origins are further allowed origins (IDP_WEBAUTHN_ORIGINS), such as
	// an Android app's android:apk-key-hash:….
	Origins []string
	// DisplayName is the relying party's name shown by authenticators.
	DisplayName string
	// Mailer tells the account's address of each passkey added, in the
	// transaction that stores it; nil mails nothing.
	Mailer Mailer
	Now    func() time.Time
}

// Mailer queues mail (*mail.Outbox), on the transaction ctx carries.
type Mailer interface {
	Enqueue(ctx context.Context, m mail.Message) error
}

// WebAuthnConfig is the library's configuration for c: the issuer's host
// as RP ID, its origin plus c.Origins, resident keys and user verification
// required, no attestation.
func (c Config) WebAuthnConfig() (*webauthn.Config, error) {
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("passkey: issuer %q is not an absolute URL", c.Issuer)
	}
	origins := []string{u.Scheme + "://" + u.Host}
	for _, o := range c.Origins {
		if o = strings.TrimSpace(o); o != "" {
			origins = append(origins, o)
		}
	}
	name := c.DisplayName
	if name == "" {
		name = u.Hostname()
	}
	return &webauthn.Config{
		RPID:                  u.Hostname(),
		RPDisplayName:         name,
		RPOrigins:             origins,
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: protocol.ResidentKeyRequired(),
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			UserVerification:   protocol.VerificationRequired,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: false, Timeout: ChallengeTTL, TimeoutUVD: ChallengeTTL},
			Registration: webauthn.TimeoutConfig{Enforce: false, Timeout: ChallengeTTL, TimeoutUVD: ChallengeTTL},
		},
	}, nil
}

// Storage is what a Service needs of the database: *storage.Store.
type Storage interface {
	PasskeyUser(ctx context.Context, userID int64) (*storage.User, []storage.Passkey, error)
	UserPasskeys(ctx context.Context, userID int64) ([]storage.Passkey, error)
	CreatePasskey(ctx context.Context, p storage.Passkey) (*storage.Passkey, error)
	RenamePasskey(ctx context.Context, userID int64, id, name string) (*storage.Passkey, error)
	DeletePasskey(ctx context.Context, userID int64, id string) error
	RecordPasskeyUse(ctx context.Context, id string, use storage.PasskeyUse) error
	CreateWebAuthnChallenge(ctx context.Context, ch storage.WebAuthnChallenge) error
	TakeWebAuthnChallenge(ctx context.Context, id string, ceremony storage.WebAuthnCeremony, userID *int64, now time.Time) (*storage.WebAuthnChallenge, error)
	RegistrationChallenges(ctx context.Context, userID int64, now time.Time) ([]storage.WebAuthnChallenge, error)
	DeleteExpiredWebAuthnChallenges(ctx context.Context, now time.Time) (int, error)
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// Service keeps passkeys and runs the ceremonies.
type Service struct {
	db     Storage
	wa     *webauthn.WebAuthn
	issuer string
	mailer Mailer
	now    func() time.Time
}

// New returns the service for cfg. It fails when the issuer's host cannot
// be an RP ID (an IP address) or an origin is malformed.
func New(db Storage, cfg Config) (*Service, error) {
	wc, err := cfg.WebAuthnConfig()
	if err != nil {
		return nil, err
	}
	if protocol.ValidateRPID(wc.RPID) != nil || isIP(wc.RPID) {
		return nil, fmt.Errorf("passkey: the issuer's host %q cannot be a WebAuthn RP ID (it must be a name)", wc.RPID)
	}
	wa, err := webauthn.New(wc)
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Service{db: db, wa: wa, issuer: cfg.Issuer, mailer: cfg.Mailer, now: now}, nil
}

func isIP(host string) bool {
	return strings.Contains(host, ":") || strings.Trim(host, "0123456789.") == ""
}

// Passkey is a stored credential's public parts.
type Passkey struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	CreatedAt      time.Time  `json:"created_at"`
	LastUsedAt     *time.Time `json:"last_used_at"`
	AAGUID         string     `json:"-"`
	BackupEligible bool       `json:"-"`
	BackupState    bool       `json:"-"`
	Transports     []string   `json:"-"`
	CredentialID   []byte     `json:"-"`
	PublicKey      []byte     `json:"-"`
	SignCount      uint32     `json:"-"`
}

func fromStored(p *storage.Passkey) Passkey {
	k := Passkey{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt.UTC(), BackupEligible: p.BackupEligible,
		BackupState: p.BackupState, Transports: p.Transports, CredentialID: p.CredentialID,
		PublicKey: p.PublicKey, SignCount: p.SignCount}
	if p.LastUsedAt != nil {
		t := p.LastUsedAt.UTC()
		k.LastUsedAt = &t
	}
	if len(p.AAGUID) == 16 {
		h := hex.EncodeToString(p.AAGUID)
		k.AAGUID = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	}
	return k
}

// waUser is a user as the library sees it. The user handle is the user id
// in decimal: ids are never given out again, so a handle names one account
// for ever, and it tells an authenticator's holder nothing they lack.
type waUser struct {
	id    int64
	name  string
	email string // where the notice of a new passkey goes
	creds []webauthn.Credential
}

func (u *waUser) WebAuthnID() []byte                         { return []byte(strconv.FormatInt(u.id, 10)) }
func (u *waUser) WebAuthnName() string                       { return u.name }
func (u *waUser) WebAuthnDisplayName() string                { return u.name }
func (u *waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func credentialOf(p *storage.Passkey) webauthn.Credential {
	ts := make([]protocol.AuthenticatorTransport, len(p.Transports))
	for i, t := range p.Transports {
		ts[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID: p.CredentialID, PublicKey: p.PublicKey, AttestationType: p.AttestationType, Transport: ts,
		Flags: webauthn.CredentialFlags{UserPresent: p.UserPresent, UserVerified: p.UserVerified,
			BackupEligible: p.BackupEligible, BackupState: p.BackupState},
		Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount},
	}
}

// loadUser reads the user and their credentials; ErrNotFound when the
// account is gone.
func (s *Service) loadUser(ctx context.Context, userID int64) (*waUser, []storage.Passkey, error) {
	u, ps, err := s.db.PasskeyUser(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, ErrNotFound
	} else if err != nil {
		return nil, nil, fmt.Errorf("passkey: read user and passkeys: %w", err)
	}
	wu := &waUser{id: userID, name: u.Username, email: u.Email}
	for i := range ps {
		wu.creds = append(wu.creds, credentialOf(&ps[i]))
	}
	return wu, ps, nil
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// storeChallenge keeps the library's session data for one ceremony. The
// library's own expiry is cleared: it reads the wall clock, and this
// package's (ChallengeTTL on s.now) is the one that counts.
func (s *Service) storeChallenge(ctx context.Context, ceremony storage.WebAuthnCeremony, userID *int64, sd *webauthn.SessionData) (string, error) {
	sd.Expires = time.Time{}
	data, err := json.Marshal(sd)
	if err != nil {
		return "", fmt.Errorf("passkey: encode session: %w", err)
	}
	id := randomID()
	now := s.now()
	err = s.db.CreateWebAuthnChallenge(ctx, storage.WebAuthnChallenge{ID: id, Ceremony: ceremony, UserID: userID,
		SessionData: data, CreatedAt: now, ExpiresAt: now.Add(ChallengeTTL)})
	if err != nil {
		return "", fmt.Errorf("passkey: store challenge: %w", err)
	}
	return id, nil
}

// consumeChallenge takes the challenge id of the ceremony (and, for a
// registration, of userID) out of the store: whoever deletes the row owns
// it, so two concurrent finishes cannot both use it. A challenge of
// another ceremony or user is left alone and refused.
func (s *Service) consumeChallenge(ctx context.Context, id string, ceremony storage.WebAuthnCeremony, userID *int64) (*webauthn.SessionData, error) {
	if id == "" || len(id) > 32 {
		return nil, ErrChallenge
	}
	ch, err := s.db.TakeWebAuthnChallenge(ctx, id, ceremony, userID, s.now())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrChallenge
	} else if err != nil {
		return nil, fmt.Errorf("passkey: consume challenge: %w", err)
	}
	var sd webauthn.SessionData
	if err := json.Unmarshal(ch.SessionData, &sd); err != nil {
		return nil, fmt.Errorf("passkey: decode session: %w", err)
	}
	return &sd, nil
}

// registrationChallengeID is the newest live registration challenge of
// userID: the /v1 API has no cookie to name a ceremony, so a registration
// is found by its user and matched by the challenge the response signed.
func (s *Service) registrationChallengeID(ctx context.Context, userID int64, clientDataJSON []byte) (string, error) {
	var cd struct {
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(clientDataJSON, &cd); err != nil || cd.Challenge == "" {
		return "", fmt.Errorf("%w: %w", ErrRejected, protocol.ErrBadRequest.WithDetails("clientDataJSON has no challenge"))
	}
	chs, err := s.db.RegistrationChallenges(ctx, userID, s.now())
	if err != nil {
		return "", fmt.Errorf("passkey: read challenges: %w", err)
	}
	for _, ch := range chs {
		var sd webauthn.SessionData
		if json.Unmarshal(ch.SessionData, &sd) == nil && sd.Challenge == cd.Challenge {
			return ch.ID, nil
		}
	}
	return "", ErrChallenge
}

// BeginRegistration starts adding a passkey for userID and returns the
// PublicKeyCredentialCreationOptions (as {"publicKey": …}) for
// navigator.credentials.create. The user's passkeys are excluded, so one
// authenticator does not register twice.
func (s *Service) BeginRegistration(ctx context.Context, userID int64) (json.RawMessage, error) {
	wu, _, err := s.loadUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	var exclude []protocol.CredentialDescriptor
	for _, c := range wu.creds {
		exclude = append(exclude, c.Descriptor())
	}
	creation, sd, err := s.wa.BeginRegistration(wu, webauthn.WithExclusions(exclude))
	if err != nil {
		return nil, fmt.Errorf("passkey: begin registration: %w", err)
	}
	if _, err := s.storeChallenge(ctx, storage.WebAuthnRegistration, &userID, sd); err != nil {
		return nil, err
	}
	return json.Marshal(creation)
}

// FinishRegistration verifies response (a RegistrationResponseJSON) against
// a live registration challenge of userID and stores the passkey under
// name (empty: a default name).
func (s *Service) FinishRegistration(ctx context.Context, userID int64, response []byte, name string) (Passkey, error) {
	name, err := cleanName(name)
	if err != nil {
		return Passkey{}, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return Passkey{}, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	id, err := s.registrationChallengeID(ctx, userID, parsed.Raw.AttestationResponse.ClientDataJSON)
	if err != nil {
		return Passkey{}, err
	}
	sd, err := s.consumeChallenge(ctx, id, storage.WebAuthnRegistration, &userID)
	if err != nil {
		return Passkey{}, err
	}
	wu, _, err := s.loadUser(ctx, userID)
	if err != nil {
		return Passkey{}, err
	}
	cred, err := s.wa.CreateCredential(wu, *sd, parsed)
	if err != nil {
		return Passkey{}, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	if name == "" {
		name = "Passkey"
	}
	ts := make([]string, len(cred.Transport))
	for i, t := range cred.Transport {
		ts[i] = string(t)
	}
	// The notice commits with the passkey: a passkey signs in without the
	// password and outlives a reset, so one added by whoever held a session
	// must not go unannounced.
	var p *storage.Passkey
	err = s.db.InTx(ctx, func(ctx context.Context) error {
		var err error
		p, err = s.db.CreatePasskey(ctx, storage.Passkey{ID: randomID(), UserID: userID, CredentialID: cred.ID,
			PublicKey: cred.PublicKey, AttestationType: cred.AttestationType,
			AAGUID: cred.Authenticator.AAGUID, SignCount: cred.Authenticator.SignCount,
			UserPresent: cred.Flags.UserPresent, UserVerified: cred.Flags.UserVerified,
			BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
			Transports: ts, Name: name, CreatedAt: s.now()})
		if err != nil || s.mailer == nil {
			return err
		}
		if err := s.mailer.Enqueue(ctx, s.addedMail(userID, wu.email)); err != nil {
			return fmt.Errorf("passkey: queue notice: %w", err)
		}
		return nil
	})
	if errors.Is(err, storage.ErrConflict) {
		return Passkey{}, fmt.Errorf("%w: %w", ErrRejected, protocol.ErrBadRequest.WithDetails("this credential is registered already"))
	} else if err != nil {
		return Passkey{}, fmt.Errorf("passkey: store: %w", err)
	}
	return fromStored(p), nil
}

// addedMail tells the account's address that a passkey was added. Like
// every security mail it holds no text a user chose (not the passkey's
// name).
func (s *Service) addedMail(userID int64, to string) mail.Message {
	account := strings.TrimRight(s.issuer, "/") + "/account"
	text := fmt.Sprintf("Hello,\n\na passkey was added to your account at %s. It signs in without the password.\n\n"+
		"If this was not you, delete it on your account page (%s) and reset your password at once.\n", s.issuer, account)
	body := fmt.Sprintf("<p>Hello,</p><p>a passkey was added to your account at %s. It signs in without the password.</p>"+
		"<p>If this was not you, delete it on your <a href=\"%s\">account page</a> and reset your password at once.</p>",
		html.EscapeString(s.issuer), html.EscapeString(account))
	return mail.Message{To: to, Subject: PasskeyAddedSubject, Text: text, HTML: body, UserID: userID}
}

// PasskeyAddedSubject is the subject of the mail that tells of a new
// passkey.
const PasskeyAddedSubject = "A passkey was added to your account"

func cleanName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameLen || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", ErrName
	}
	return name, nil
}

// List is userID's passkeys, oldest first.
func (s *Service) List(ctx context.Context, userID int64) ([]Passkey, error) {
	ps, err := s.db.UserPasskeys(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("passkey: list: %w", err)
	}
	out := make([]Passkey, len(ps))
	for i := range ps {
		out[i] = fromStored(&ps[i])
	}
	return out, nil
}

// Rename names userID's passkey id; ErrNotFound when it is not theirs.
func (s *Service) Rename(ctx context.Context, userID int64, id, name string) (Passkey, error) {
	name, err := cleanName(name)
	if err != nil || name == "" {
		return Passkey{}, ErrName
	}
	p, err := s.db.RenamePasskey(ctx, userID, id, name)
	if errors.Is(err, storage.ErrNotFound) {
		return Passkey{}, ErrNotFound
	} else if err != nil {
		return Passkey{}, fmt.Errorf("passkey: rename: %w", err)
	}
	return fromStored(p), nil
}

// Delete removes userID's passkey id; ErrNotFound when it is not theirs.
func (s *Service) Delete(ctx context.Context, userID int64, id string) error {
	err := s.db.DeletePasskey(ctx, userID, id)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotFound
	} else if err != nil {
		return fmt.Errorf("passkey: delete: %w", err)
	}
	return nil
}

// BeginLogin starts a discoverable sign-in (mediation "conditional" for
// autofill, "" for a modal one) and returns the challenge's id, which the
// caller binds to the browser, and the
// PublicKeyCredentialRequestOptions (as {"publicKey": …, "mediation": …}).
func (s *Service) BeginLogin(ctx context.Context, mediation string) (string, json.RawMessage, error) {
	assertion, sd, err := s.wa.BeginDiscoverableMediatedLogin(protocol.CredentialMediationRequirement(mediation),
		webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return "", nil, fmt.Errorf("passkey: begin login: %w", err)
	}
	id, err := s.storeChallenge(ctx, storage.WebAuthnLogin, nil, sd)
	if err != nil {
		return "", nil, err
	}
	body, err := json.Marshal(assertion)
	return id, body, err
}

// FinishLogin verifies response (an AuthenticationResponseJSON) against
// the login challenge challengeID and returns the user it signs in. The
// passkey must still exist and belong to the user its handle names, and
// its sign count must grow (or stay 0); the new count, flags and last use
// are stored.
func (s *Service) FinishLogin(ctx context.Context, challengeID string, response []byte) (int64, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	sd, err := s.consumeChallenge(ctx, challengeID, storage.WebAuthnLogin, nil)
	if err != nil {
		return 0, err
	}
	var stored *storage.Passkey
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		uid, err := strconv.ParseInt(string(userHandle), 10, 64)
		if err != nil || strconv.FormatInt(uid, 10) != string(userHandle) {
			return nil, ErrNotFound
		}
		wu, ps, err := s.loadUser(ctx, uid)
		if err != nil {
			return nil, err
		}
		for i := range ps {
			if bytes.Equal(ps[i].CredentialID, rawID) {
				stored = &ps[i]
			}
		}
		if stored == nil {
			return nil, ErrNotFound
		}
		return wu, nil
	}
	u, cred, err := s.wa.ValidatePasskeyLogin(handler, *sd, parsed)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	if cred.Authenticator.CloneWarning {
		return 0, ErrCloned
	}
	now := s.now()
	err = s.db.RecordPasskeyUse(ctx, stored.ID, storage.PasskeyUse{SignCount: cred.Authenticator.SignCount,
		UserPresent: cred.Flags.UserPresent, UserVerified: cred.Flags.UserVerified,
		BackupState: cred.Flags.BackupState, At: now})
	if errors.Is(err, storage.ErrNotFound) { // deleted meanwhile
		return 0, fmt.Errorf("%w: %w", ErrRejected, ErrNotFound)
	} else if err != nil {
		return 0, fmt.Errorf("passkey: store use: %w", err)
	}
	return u.(*waUser).id, nil
}

// DeleteExpired drops the challenges whose ceremony was never finished.
func (s *Service) DeleteExpired(ctx context.Context) (int, error) {
	n, err := s.db.DeleteExpiredWebAuthnChallenges(ctx, s.now())
	if err != nil {
		return 0, fmt.Errorf("passkey: sweep challenges: %w", err)
	}
	return n, nil
}

// Reason is what a refused ceremony's error says to a client: the
// library's description, never an internal error.
func Reason(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		r := pe.Details
		if r == "" {
			r = pe.Type
		}
		if pe.DevInfo != "" {
			r += " (" + pe.DevInfo + ")"
		}
		return r
	}
	switch {
	case errors.Is(err, ErrChallenge):
		return "The challenge is unknown, used or expired."
	case errors.Is(err, ErrCloned):
		return "The sign count went backwards."
	}
	return "The credential was refused."
}
