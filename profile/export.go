package profile

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"idp/storage"
)

// ExportReader reads the rows of a user that the export shows besides the
// user and its sessions (*storage.Store).
type ExportReader interface {
	ExportUser(ctx context.Context, q storage.ExportQuery) (*storage.ExportRecords, error)
}

// Export is everything idp holds about a user (GDPR Art. 15 and 20), as one
// document, without a secret: no password hash, no token or its signature
// or row key, no code or its hash, no mail body (a body may carry a code).
// The reads are of rows the user owns, read-only, in the tables' own terms.
type Export struct {
	ExportedAt time.Time     `json:"exported_at"`
	Profile    ExportProfile `json:"profile"`
	// Sessions are the live logins, as GET /v1/sessions lists them.
	Sessions []ExportSession `json:"sessions"`
	// Consents are what the user has allowed each client.
	Consents []ExportConsent `json:"consents"`
	// LoginThrottles are the counts of failed logins kept for the
	// account, from all addresses together or from one.
	LoginThrottles []ExportThrottle `json:"login_throttles"`
	// PendingCodes are the one-time codes that could still be used: their
	// purpose and life, never the code or its hash.
	PendingCodes []ExportCode `json:"pending_codes"`
	// Mail is what the outbox holds for the user's address or wrote for
	// the user (the code of an email change goes to the new address): its
	// recipient, subject and times, never its body.
	Mail []ExportMail `json:"mail"`
	// Passkeys are the user's WebAuthn credentials. All of a passkey is
	// public (the private key never leaves the authenticator), so the
	// credential id and the COSE public key are shown too.
	Passkeys []ExportPasskey `json:"passkeys"`
}

// ExportPasskey is a passkey as the export shows it.
type ExportPasskey struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	CreatedAt      time.Time  `json:"created_at"`
	LastUsedAt     *time.Time `json:"last_used_at"`
	CredentialID   string     `json:"credential_id"`
	PublicKey      string     `json:"public_key"`
	AAGUID         string     `json:"aaguid"`
	SignCount      uint32     `json:"sign_count"`
	BackupEligible bool       `json:"backup_eligible"`
	BackupState    bool       `json:"backup_state"`
	Transports     []string   `json:"transports"`
}

// ExportProfile is the profile with what the API does not show every time.
type ExportProfile struct {
	Profile
	PasswordChangedAt time.Time `json:"password_changed_at"`
}

// ExportSession is a live login, as in Session, without Current: the
// document is about the account, not about the request that fetched it.
type ExportSession struct {
	ID         string    `json:"id"`
	ClientID   *string   `json:"client_id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	UserAgent  string    `json:"user_agent"`
}

// ExportConsent is a remembered consent.
type ExportConsent struct {
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ExportThrottle is a count of failed logins of the account.
type ExportThrottle struct {
	// From is the client address the count is for; "" for all addresses.
	From        string     `json:"from"`
	Failures    int        `json:"failures"`
	LockedUntil *time.Time `json:"locked_until"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

// ExportCode is a one-time code that is still usable: its purpose
// ("reset", "verify", …) and life, nothing of the code.
type ExportCode struct {
	Purpose string `json:"purpose"`
	// NewEmail is the address an email change code would move the account
	// to; absent for other codes.
	NewEmail  string    `json:"new_email,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ExportMail is a message of the user's in the outbox (waiting, or kept
// for a while after it was sent or given up on).
type ExportMail struct {
	To        string     `json:"to"`
	Subject   string     `json:"subject"`
	State     string     `json:"state"`
	CreatedAt time.Time  `json:"created_at"`
	SentAt    *time.Time `json:"sent_at"`
}

// digitRun is a run of digits as long as a one-time code: a subject is
// meant to carry none, but the outbox treats it as possibly secret, so the
// export blanks any.
var digitRun = regexp.MustCompile(`[0-9]{6,}`)

// maxLiveAttempts is a one-time code's wrong tries before it dies (account:
// 5); a code past it is not pending.
const maxLiveAttempts = 5

// Export gathers everything held about the user. A failure to read any
// part fails the whole: a partial export would claim to be complete.
func (s *Server) Export(ctx context.Context, userID int64) (Export, error) {
	u, err := s.accounts.Get(ctx, userID)
	if err != nil {
		return Export{}, err
	}
	now := s.cfg.Now().UTC()
	out := Export{
		ExportedAt: now.Truncate(time.Second),
		Profile:    ExportProfile{Profile: s.profileOf(ctx, u), PasswordChangedAt: u.PasswordChangedAt.UTC().Truncate(time.Second)},
		Sessions:   []ExportSession{}, Consents: []ExportConsent{}, LoginThrottles: []ExportThrottle{},
		PendingCodes: []ExportCode{}, Mail: []ExportMail{}, Passkeys: []ExportPasskey{},
	}

	sessions, err := s.Sessions(ctx, userID, Current{})
	if err != nil {
		return Export{}, err
	}
	for _, x := range sessions {
		out.Sessions = append(out.Sessions, ExportSession{ID: x.ID, ClientID: x.ClientID, CreatedAt: x.CreatedAt, LastUsedAt: x.LastUsedAt, UserAgent: x.UserAgent})
	}

	// The account's throttle keys (package account): user:<id>, alone or
	// with |<address>.
	key := "user:" + strconv.FormatInt(userID, 10)
	rec, err := s.exports.ExportUser(ctx, storage.ExportQuery{
		UserID: userID, Email: u.Email, ThrottleKey: key, Now: now, MaxAttempts: maxLiveAttempts,
	})
	if err != nil {
		return Export{}, err
	}
	for _, c := range rec.Consents {
		scopes := c.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		out.Consents = append(out.Consents, ExportConsent{ClientID: c.ClientID, Scopes: scopes,
			CreatedAt: c.CreatedAt.UTC().Truncate(time.Second), UpdatedAt: c.UpdatedAt.UTC().Truncate(time.Second)})
	}
	for _, t := range rec.LoginThrottles {
		e := ExportThrottle{From: strings.TrimPrefix(strings.TrimPrefix(t.Key, key), "|"), Failures: t.Failures,
			UpdatedAt: t.UpdatedAt.UTC().Truncate(time.Second)}
		if t.LockedUntil != nil {
			l := t.LockedUntil.UTC().Truncate(time.Second)
			e.LockedUntil = &l
		}
		out.LoginThrottles = append(out.LoginThrottles, e)
	}
	for _, c := range rec.PendingCodes {
		out.PendingCodes = append(out.PendingCodes, ExportCode{Purpose: c.Purpose, NewEmail: c.NewEmail,
			CreatedAt: c.CreatedAt.UTC().Truncate(time.Second), ExpiresAt: c.ExpiresAt.UTC().Truncate(time.Second)})
	}
	for _, m := range rec.Mail {
		e := ExportMail{To: m.To, Subject: digitRun.ReplaceAllString(m.Subject, "…"), State: m.State,
			CreatedAt: m.CreatedAt.UTC().Truncate(time.Second)}
		if m.SentAt != nil {
			t := m.SentAt.UTC().Truncate(time.Second)
			e.SentAt = &t
		}
		out.Mail = append(out.Mail, e)
	}
	for _, p := range rec.Passkeys {
		e := ExportPasskey{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt.UTC().Truncate(time.Second),
			CredentialID: base64.RawURLEncoding.EncodeToString(p.CredentialID), PublicKey: base64.RawURLEncoding.EncodeToString(p.PublicKey),
			AAGUID: hex.EncodeToString(p.AAGUID), SignCount: p.SignCount, BackupEligible: p.BackupEligible, BackupState: p.BackupState,
			Transports: p.Transports}
		if e.Transports == nil {
			e.Transports = []string{}
		}
		if p.LastUsedAt != nil {
			t := p.LastUsedAt.UTC().Truncate(time.Second)
			e.LastUsedAt = &t
		}
		out.Passkeys = append(out.Passkeys, e)
	}
	s.cfg.ObserveEvent("account_exported")
	return out, nil
}

func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	u := principal(r).User
	doc, err := s.Export(r.Context(), u.ID)
	if err != nil {
		s.fail(w, r, "export", err)
		return
	}
	if err := WriteExport(w, u.ID, doc); err != nil {
		s.fail(w, r, "export", err)
	}
}

// WriteExport answers with doc as the download idp-export-<userID>.json,
// never cached: the one form of the export, for the API and the account
// page alike. An error means nothing was written.
func WriteExport(w http.ResponseWriter, userID int64, doc Export) error {
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode export: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", `attachment; filename="idp-export-`+strconv.FormatInt(userID, 10)+`.json"`)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	return nil
}
