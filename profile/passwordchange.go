package profile

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/ory/fosite"

	"idp/oauth"
	"idp/ratelimit"
	"idp/storage"
)

// errUnauthorizedClient: the calling client is not registered for the
// password grant, whose tokens a password change hands back.
var errUnauthorizedClient = errors.New("profile: the client may not use the password grant")

// PasswordChange is what a password change needs besides the user.
type PasswordChange struct {
	// Current is the password now, checked through the login lock-out;
	// New the one to set, checked by the signup rules.
	Current, New string
	// From is the client's address, for the lock-out.
	From string
	// KeepSession is the id of a browser session to keep (the account
	// page's own); every other browser session of the user ends. Empty:
	// they all end.
	KeepSession string
	// Client, when set, gets a fresh token response for the user with
	// Scopes (narrowed to what the client may have), issued after every
	// older grant was revoked. Nil: no tokens are issued.
	Client fosite.Client
	Scopes []string
}

// handlePasswordChange sets a new password for the caller and answers
// with fresh tokens for the calling client (see ChangePassword).
func (s *Server) handlePasswordChange(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	in, ok := readJSONObject(w, r, "current_password", "new_password")
	if !ok {
		return
	}
	p := principal(r)
	client, err := s.tokens.Client(ctx, p.ClientID)
	if errors.Is(err, fosite.ErrNotFound) {
		staleToken(w) // the client was removed since the token was issued
		return
	} else if err != nil {
		s.fail(w, r, "password change: read client", err)
		return
	}
	// The fresh grant is a login from this client: it records its user agent.
	ctx = oauth.WithUserAgent(ctx, r.UserAgent())
	tokens, err := s.ChangePassword(ctx, p.User, PasswordChange{
		Current: in["current_password"], New: in["new_password"], From: ratelimit.ClientAddr(ctx),
		Client: client, Scopes: p.Scopes,
	})
	if err != nil {
		s.changeFailed(w, r, "password change", "current_password", err)
		return
	}
	writeJSON(w, http.StatusOK, tokens)
}

// ChangePassword sets u's password to in.New once in.Current is proven,
// then ends every other login of the user: every refresh token is revoked,
// access tokens issued before are refused at this service, and every
// browser session but in.KeepSession ends. A notice is mailed. When
// in.Client is set, the fresh token response for it is returned, so that
// the caller stays signed in. All of it commits in one transaction. It is
// the one implementation behind POST /v1/password/change and the account
// page.
//
// Its errors: *ValidationError for a missing current password or a new one
// the signup rules refuse (or equal to the current one);
// account.ErrInvalidCredentials for a wrong current password, which counts
// toward the lock-out; *account.LockedError while the account is locked;
// errUnauthorizedClient when in.Client may not use the password grant
// (nothing is changed then); anything else is the service's.
func (s *Server) ChangePassword(ctx context.Context, u *storage.User, in PasswordChange) (map[string]any, error) {
	var errs []FieldError
	if in.Current == "" {
		errs = append(errs, FieldError{Field: "current_password", Code: "required", Message: "The current password is required."})
	}
	if fe, ok := s.checkPassword(in.New, true, u.Username, u.Email); !ok {
		fe.Field = "new_password"
		errs = append(errs, fe)
	}
	if len(errs) > 0 {
		return nil, &ValidationError{Errors: errs}
	}
	if in.Client != nil && !in.Client.GetGrantTypes().Has(oauth.GrantPassword) {
		return nil, errUnauthorizedClient
	}
	u, err := s.accounts.CheckPassword(ctx, u.ID, in.Current, in.From)
	if err != nil {
		return nil, err
	}
	if in.New == in.Current {
		return nil, &ValidationError{Errors: []FieldError{{Field: "new_password", Code: "unchanged", Message: "The new password must differ from the current one."}}}
	}
	hash, err := s.accounts.Hasher().Hash(ctx, in.New)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	var tokens map[string]any
	err = s.accounts.InTx(ctx, func(ctx context.Context) error {
		if err := s.accounts.SetPassword(ctx, u.ID, hash); err != nil {
			return err
		}
		if err := s.tokens.RevokeSubject(ctx, strconv.FormatInt(u.ID, 10)); err != nil {
			return err
		}
		if s.sessions != nil {
			if err := s.sessions.DeleteUserExcept(ctx, u.ID, in.KeepSession); err != nil {
				return err
			}
		}
		if err := s.mailer.Enqueue(ctx, s.changedMail(u)); err != nil {
			return fmt.Errorf("queue password change notice: %w", err)
		}
		if in.Client != nil {
			var err error
			if tokens, err = s.tokens.IssueTokens(ctx, in.Client, u.ID, in.Scopes); err != nil {
				return fmt.Errorf("issue tokens: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("change password: %w", err)
	}
	s.cfg.ObserveEvent("password_changed")
	return tokens, nil
}
