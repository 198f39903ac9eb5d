package profile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"time"

	"idp/account"
	"idp/mail"
	"idp/ratelimit"
	"idp/storage"
)

// Transactor runs fn in a transaction its context carries, which the
// calls made with that context join (*storage.Store); a transaction that
// lost a race (a deadlock, a serialization failure, a busy SQLite) fails
// with storage.ErrRetryable.
type Transactor interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// PictureDeletions deletes picture objects that no row names any more,
// retrying until storage confirms (*picture.DeletionQueue).
type PictureDeletions interface {
	// Enqueue records the deletion on the transaction ctx carries.
	Enqueue(ctx context.Context, key string) error
	// DeleteNow tries a queued deletion at once; on failure it stays
	// queued.
	DeleteNow(ctx context.Context, key string) error
	// DeleteOrQueue deletes an object, queueing the deletion when storage
	// fails.
	DeleteOrQueue(ctx context.Context, key string) error
}

// ReauthWindow is how recent a token's authentication (auth_time) must be
// for an erasure without the password.
const ReauthWindow = 5 * time.Minute

// eraseAttempts bounds the retries of an erasure that lost a race against
// another transaction (a deadlock or serialization failure on MySQL or
// PostgreSQL, a busy SQLite).
const eraseAttempts = 3

// Erase deletes the account userID and everything held about it, in one
// transaction: the user row and every row of the user (see
// account.Service.Erase), with the deletion of its picture object and a
// notice to its address queued in the same transaction. The picture is
// deleted from storage once the transaction has committed; if storage
// fails, the queue retries until it succeeds. Erasing an account that is
// gone already is not an error. The caller has authenticated the user
// (the /v1 handler by the password or a fresh login, the account page by
// its own re-authentication).
func (s *Server) Erase(ctx context.Context, userID int64) error {
	var pictureKey string
	var erased bool
	err := storage.Retry(ctx, eraseAttempts, func() error {
		pictureKey, erased = "", false
		return s.transactions.InTx(ctx, func(ctx context.Context) error {
			u, err := s.accounts.Erase(ctx, userID)
			if errors.Is(err, account.ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			if u.HasPicture() {
				if err := s.deletions.Enqueue(ctx, u.PictureKey); err != nil {
					return err
				}
				pictureKey = u.PictureKey
			}
			if err := s.mailer.Enqueue(ctx, s.goodbyeMail(u.Email)); err != nil {
				return err
			}
			erased = true
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("profile: erase account: %w", err)
	}
	if !erased {
		return nil
	}
	s.cfg.ObserveEvent("account_erased")
	s.log.InfoContext(ctx, "account erased", "user", userID)
	if pictureKey != "" {
		if err := s.deletions.DeleteNow(context.WithoutCancel(ctx), pictureKey); err != nil {
			s.log.WarnContext(ctx, "delete an erased account's picture; queued for retry", "user", userID, "err", err)
		}
	}
	return nil
}

// goodbyeMail tells the address that its account is gone. It holds no
// text the user chose, and names no account: it outlives the one it is
// about.
func (s *Server) goodbyeMail(to string) mail.Message {
	text := fmt.Sprintf("Hello,\n\nyour account at %s has been deleted, with everything it held. "+
		"The username and this address can be used for a new account.\n\n"+
		"If you did not ask for this, someone knew your password or was signed in as you: "+
		"the account cannot be restored, but you can create a new one.\n", s.cfg.Issuer)
	body := fmt.Sprintf("<p>Hello,</p><p>your account at %s has been deleted, with everything it held. "+
		"The username and this address can be used for a new account.</p>"+
		"<p>If you did not ask for this, someone knew your password or was signed in as you: "+
		"the account cannot be restored, but you can create a new one.</p>", html.EscapeString(s.cfg.Issuer))
	return mail.Message{To: to, Subject: "Your account has been deleted", Text: text, HTML: body}
}

// handleEraseProfile is DELETE /v1/profile: with the password in a JSON
// body { "password" }, or with no password (no body, or an empty object)
// when the token's login (auth_time) is under ReauthWindow old. A wrong
// password counts toward the lock-out like a failed login.
func (s *Server) handleEraseProfile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := principal(r)
	u := p.User
	var pw string
	var hasPassword bool
	if r.ContentLength > maxJSONBytes {
		writeProblem(w, problem(http.StatusRequestEntityTooLarge, "too-large", "Body too large", "A JSON body is at most 64 KiB."))
		return
	}
	// An empty body, with or without a length, is no password.
	body := bufio.NewReader(r.Body)
	if _, err := body.Peek(1); err != io.EOF {
		raw, ok := readObject(w, body)
		if !ok {
			return
		}
		fields, errs := stringFields(raw, "password")
		if len(errs) > 0 {
			writeProblem(w, validationProblem(errs))
			return
		}
		pw, hasPassword = fields["password"]
	}
	if !hasPassword {
		if p.AuthTime.IsZero() || s.now().Sub(p.AuthTime) >= ReauthWindow {
			pr := problem(http.StatusForbidden, "reauthentication-required", "Password required",
				"Deleting the account needs the password, or a login less than 5 minutes old.")
			pr.Errors = []FieldError{{Field: "password", Code: "required", Message: "Send the account's password."}}
			writeProblem(w, pr)
			return
		}
	} else {
		_, err := s.accounts.CheckPassword(ctx, u.ID, pw, ratelimit.ClientAddr(ctx))
		var locked *account.LockedError
		switch {
		case errors.As(err, &locked):
			w.Header().Set("Retry-After", ratelimit.RetryAfter(locked.RetryAfter))
			writeProblem(w, problem(http.StatusTooManyRequests, "locked", "Temporarily locked",
				"Too many wrong passwords; retry after "+ratelimit.RetryAfter(locked.RetryAfter)+" seconds."))
			return
		case errors.Is(err, account.ErrInvalidCredentials):
			pr := problem(http.StatusBadRequest, "wrong-password", "Wrong password", "The password is wrong.")
			pr.Errors = []FieldError{{Field: "password", Code: "wrong", Message: "The password is wrong."}}
			writeProblem(w, pr)
			return
		case errors.Is(err, account.ErrNotFound):
			staleToken(w) // erased meanwhile: what any later request of this token gets
			return
		case err != nil:
			s.fail(w, r, "erase account: check password", err)
			return
		}
	}
	if err := s.Erase(ctx, u.ID); err != nil {
		s.fail(w, r, "erase account", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) now() time.Time { return s.cfg.Now() }

// onceDeletions deletes at once and does not retry: what a Server built
// without a deletion queue (tests of other features) does.
type onceDeletions struct {
	store interface {
		Delete(ctx context.Context, key string) error
	}
}

func (o onceDeletions) Enqueue(context.Context, string) error { return nil }
func (o onceDeletions) DeleteNow(ctx context.Context, key string) error {
	return o.store.Delete(ctx, key)
}
func (o onceDeletions) DeleteOrQueue(ctx context.Context, key string) error {
	return o.store.Delete(ctx, key)
}
