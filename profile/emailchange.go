package profile

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"time"

	"idp/account"
	"idp/mail"
	"idp/oauth"
	"idp/ratelimit"
	"idp/storage"
)

// EmailChangeMailsPerHour caps the email change requests that send mail,
// per account: each mails an address the caller chose. More requests are
// accepted and silently dropped.
const EmailChangeMailsPerHour = 3

func emailChangeQuota() ratelimit.Rule {
	return ratelimit.Rule{Name: "email-change-mail", Limit: EmailChangeMailsPerHour, Window: time.Hour}
}

// handleEmailChange asks for the caller's address to change (see
// RequestEmailChange): 202, whether or not the new address is free.
func (s *Server) handleEmailChange(w http.ResponseWriter, r *http.Request) {
	in, ok := readJSONObject(w, r, "new_email", "password")
	if !ok {
		return
	}
	err := s.RequestEmailChange(r.Context(), principal(r).User, in["new_email"], in["password"], ratelimit.ClientAddr(r.Context()))
	if err != nil {
		s.changeFailed(w, r, "email change", "password", err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// RequestEmailChange starts moving u to newEmail: it checks password, from
// the client address from, through the login lock-out, then mails a code
// to newEmail and a notice to the present address. The address changes
// only when the code is used (ConfirmEmail); until then nothing about the
// account changes. It is the one implementation behind POST
// /v1/email/change and the account page.
//
// Whether newEmail belongs to another account is not looked at: the answer
// is the same either way, and only the holder of the code learns it, from
// ConfirmEmail. Past EmailChangeMailsPerHour an hour nothing is mailed,
// and the error is still nil.
//
// Its errors: *ValidationError for a missing or invalid new_email (or the
// present address) or a missing password; account.ErrInvalidCredentials
// for a wrong password, which counts toward the lock-out;
// *account.LockedError while the account is locked; anything else is the
// service's.
func (s *Server) RequestEmailChange(ctx context.Context, u *storage.User, newEmail, password, from string) error {
	email, errs := checkNewEmail(u, newEmail)
	if password == "" {
		errs = append(errs, FieldError{Field: "password", Code: "required", Message: "The password is required."})
	}
	if len(errs) > 0 {
		return &ValidationError{Errors: errs}
	}
	u, err := s.accounts.CheckPassword(ctx, u.ID, password, from)
	if err != nil {
		return err
	}
	return s.startEmailChange(ctx, u, email)
}

// StartEmailChange is RequestEmailChange for a caller who proved who they
// are moments ago (the account page, within minutes of the login): the
// same rules, mails and quota, without the password.
func (s *Server) StartEmailChange(ctx context.Context, u *storage.User, newEmail string) error {
	email, errs := checkNewEmail(u, newEmail)
	if len(errs) > 0 {
		return &ValidationError{Errors: errs}
	}
	return s.startEmailChange(ctx, u, email)
}

// checkNewEmail is the signup rule for a new address, normalised.
func checkNewEmail(u *storage.User, newEmail string) (string, []FieldError) {
	var errs []FieldError
	email, err := account.NormalizeEmail(newEmail)
	switch {
	case email == "":
		errs = append(errs, FieldError{Field: "new_email", Code: "required", Message: "An email address is required."})
	case err != nil || !validEmail(email):
		errs = append(errs, FieldError{Field: "new_email", Code: "invalid", Message: "This is not a valid email address."})
	case email == account.NormalizeLogin(u.Email):
		errs = append(errs, FieldError{Field: "new_email", Code: "unchanged", Message: "This is the account's address already."})
	}
	return email, errs
}

// startEmailChange issues the code for email and queues its mails, within
// the quota.
func (s *Server) startEmailChange(ctx context.Context, u *storage.User, email string) error {
	allowed, _, err := s.limiter.Allow(ctx, emailChangeQuota(), "user:"+strconv.FormatInt(u.ID, 10))
	if err != nil || !allowed {
		return err
	}
	err = s.accounts.InTx(ctx, func(ctx context.Context) error {
		code, err := s.accounts.IssueEmailChangeCode(ctx, u.ID, email)
		if err != nil {
			return err
		}
		if err := s.mailer.Enqueue(ctx, s.emailChangeCodeMail(u, email, code)); err != nil {
			return fmt.Errorf("queue email change code: %w", err)
		}
		if err := s.mailer.Enqueue(ctx, s.emailChangeNotice(u)); err != nil {
			return fmt.Errorf("queue email change notice: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.cfg.ObserveEvent("email_change_requested")
	return nil
}

// ConfirmEmail uses a code mailed to the caller: the code of an email
// change moves u to the new address, verified (changed is true); the code
// mailed at signup or by a resend verifies the present address. It is the
// one implementation behind POST /v1/email/verify and the account page.
//
// A wrong, used, expired or dead code is account.ErrBadCode, the same for
// every case. An address taken by another account by the time the change
// is confirmed is an error wrapping account.ErrTaken, and nothing changes.
func (s *Server) ConfirmEmail(ctx context.Context, u *storage.User, code string) (changed bool, err error) {
	changed, err = s.accounts.ConfirmEmail(ctx, u.ID, code)
	if err != nil {
		return false, err
	}
	if changed {
		s.cfg.ObserveEvent("email_changed")
	} else {
		s.cfg.ObserveEvent("email_verified")
	}
	return changed, nil
}

// changeFailed answers an error of RequestEmailChange or ChangePassword;
// pwField names the field of the password that was checked.
func (s *Server) changeFailed(w http.ResponseWriter, r *http.Request, what, pwField string, err error) {
	var invalid *ValidationError
	var locked *account.LockedError
	switch {
	case errors.As(err, &invalid):
		writeProblem(w, validationProblem(invalid.Errors))
	case errors.As(err, &locked):
		// What the token endpoint answers a locked login, as a problem.
		w.Header().Set("Retry-After", ratelimit.RetryAfter(locked.RetryAfter))
		writeProblem(w, problem(http.StatusTooManyRequests, "locked", "Account temporarily locked",
			"The account is temporarily locked after too many wrong passwords; retry after "+ratelimit.RetryAfter(locked.RetryAfter)+" seconds."))
	case errors.Is(err, account.ErrInvalidCredentials):
		p := problem(http.StatusBadRequest, "invalid-password", "Wrong password", "The password is wrong.")
		p.Errors = []FieldError{{Field: pwField, Code: "invalid", Message: "The password is wrong."}}
		writeProblem(w, p)
	case errors.Is(err, account.ErrNotFound):
		staleToken(w) // the account was erased since the token was checked
	case errors.Is(err, errUnauthorizedClient):
		writeProblem(w, problem(http.StatusForbidden, "unauthorized-client", "Client may not receive tokens here",
			"This client is not registered for the password grant, whose tokens a password change returns."))
	default:
		s.fail(w, r, what, err)
	}
}

// emailChangeCodeMail carries the code to the new address. Like every
// security mail, it holds no text a user chose.
func (s *Server) emailChangeCodeMail(u *storage.User, to, code string) mail.Message {
	text := fmt.Sprintf("Hello,\n\nsomeone, hopefully you, asked to move an account at %s to this email address. To confirm that the address is yours, use this code:\n\n"+
		"Your code: %s\n\nIt works once, for 24 hours. If you did not ask for it, ignore this mail: nothing changes without the code.\n",
		s.cfg.Issuer, code)
	body := fmt.Sprintf("<p>Hello,</p><p>someone, hopefully you, asked to move an account at %s to this email address. To confirm that the address is yours, use this code:</p>"+
		"<p>Your code: <b style=\"font-size:1.4em;letter-spacing:.1em\">%s</b></p>"+
		"<p>It works once, for 24 hours. If you did not ask for it, ignore this mail: nothing changes without the code.</p>",
		html.EscapeString(s.cfg.Issuer), code)
	return mail.Message{To: to, Subject: "Confirm your new email address", Text: text, HTML: body, UserID: u.ID}
}

// emailChangeNotice tells the present address. It does not name the new
// one: that is text the requester chose.
func (s *Server) emailChangeNotice(u *storage.User) mail.Message {
	text := fmt.Sprintf("Hello,\n\nsomeone signed in to the account of this email address at %s asked to change its address. "+
		"The change happens only if the code mailed to the new address is used.\n\n"+
		"If this was not you, reset your password at once: that signs everyone out and cancels the change.\n", s.cfg.Issuer)
	body := fmt.Sprintf("<p>Hello,</p><p>someone signed in to the account of this email address at %s asked to change its address. "+
		"The change happens only if the code mailed to the new address is used.</p>"+
		"<p>If this was not you, reset your password at once: that signs everyone out and cancels the change.</p>",
		html.EscapeString(s.cfg.Issuer))
	return mail.Message{To: u.Email, Subject: "A change of your email address was requested", Text: text, HTML: body, UserID: u.ID}
}

// staleToken answers a token that was valid when checked but whose user
// or client is gone since, as requireToken answers an invalid one.
func staleToken(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", oauth.BearerChallenge(oauth.ErrInvalidToken, oauth.ScopeProfile))
	writeProblem(w, problem(http.StatusUnauthorized, "invalid-token", "Invalid token",
		"The access token is missing, invalid, expired or revoked."))
}
