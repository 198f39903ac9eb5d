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
	"idp/ratelimit"
	"idp/storage"
)

// VerifyMailsPerHour caps the verification mails POST
// /v1/email/verify/resend sends per account; more requests are accepted
// and silently dropped.
const VerifyMailsPerHour = 3

func verifyQuota() ratelimit.Rule {
	return ratelimit.Rule{Name: "verify-mail", Limit: VerifyMailsPerHour, Window: time.Hour}
}

// handleVerifyEmail verifies the caller's address with the code mailed to
// it, or confirms a pending email change with the code mailed to the new
// address (see ConfirmEmail). Every reason the code does not work is the
// same 400 as a reset's; a new address taken meanwhile is 409.
func (s *Server) handleVerifyEmail(w http.ResponseWriter, r *http.Request) {
	in, ok := readJSONObject(w, r, "code")
	if !ok {
		return
	}
	_, err := s.ConfirmEmail(r.Context(), principal(r).User, in["code"])
	switch {
	case errors.Is(err, account.ErrBadCode), errors.Is(err, account.ErrNotFound):
		badCode(w)
	case errors.Is(err, account.ErrTaken):
		// Only the holder of a code mailed to the address learns this.
		writeProblem(w, takenProblem("email"))
	case err != nil:
		s.fail(w, r, "verify email", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// handleResendVerification mails the caller a new verification code,
// replacing the old one, within verifyQuota; past it, and for an address
// already verified, it sends nothing and answers the same 202.
func (s *Server) handleResendVerification(w http.ResponseWriter, r *http.Request) {
	if err := s.ResendVerification(r.Context(), principal(r).User); err != nil {
		s.fail(w, r, "resend verification", err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// ResendVerification mails u a new verification code when the address is
// not verified yet and the quota allows; a nil error says nothing about
// whether a mail was sent.
func (s *Server) ResendVerification(ctx context.Context, u *storage.User) error {
	if u.EmailVerified {
		return nil
	}
	allowed, _, err := s.limiter.Allow(ctx, verifyQuota(), "user:"+strconv.FormatInt(u.ID, 10))
	if err != nil || !allowed {
		return err
	}
	return s.accounts.InTx(ctx, func(ctx context.Context) error {
		return s.sendVerification(ctx, u)
	})
}

// sendVerification issues a verification code for u and queues the mail
// that carries it, on the transaction ctx carries.
func (s *Server) sendVerification(ctx context.Context, u *storage.User) error {
	code, err := s.accounts.IssueCode(ctx, u.ID, account.PurposeVerify)
	if err != nil {
		return err
	}
	if err := s.mailer.Enqueue(ctx, s.verifyMail(u, code)); err != nil {
		return fmt.Errorf("queue verification mail: %w", err)
	}
	return nil
}

// verifyMail carries a verification code; like resetMail, it holds no text
// a user chose.
func (s *Server) verifyMail(u *storage.User, code string) mail.Message {
	text := fmt.Sprintf("Hello,\n\nan account at %s was created with this email address. To confirm that the address is yours, use this code:\n\n"+
		"Your code: %s\n\nIt works once, for 24 hours. If you did not create the account, ignore this mail.\n",
		s.cfg.Issuer, code)
	body := fmt.Sprintf("<p>Hello,</p><p>an account at %s was created with this email address. To confirm that the address is yours, use this code:</p>"+
		"<p>Your code: <b style=\"font-size:1.4em;letter-spacing:.1em\">%s</b></p>"+
		"<p>It works once, for 24 hours. If you did not create the account, ignore this mail.</p>",
		html.EscapeString(s.cfg.Issuer), code)
	return mail.Message{To: u.Email, Subject: "Confirm your email address", Text: text, HTML: body, UserID: u.ID}
}
