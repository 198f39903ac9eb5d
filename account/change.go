package account

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"

	"idp/storage"
)

// PurposeEmailChange codes move the account to the address stored with
// them (they live Options.VerifyCodeTTL, as they go to a mailbox too).
const PurposeEmailChange Purpose = Purpose(storage.CodeEmailChange)

// CheckPassword checks the password of a user who is already signed in
// (a change of the email address or of the password asks for it again),
// from the client address from, through the lock-out of Authenticate: a
// locked account answers *LockedError without the password being checked,
// a wrong password is ErrInvalidCredentials and counts toward the
// lock-out, a right one clears the failures of that address as a login
// does. It returns the user as stored now (a token's user carries no
// password hash). Overload gives password.ErrBusy.
func (s *Service) CheckPassword(ctx context.Context, userID int64, pw, from string) (*storage.User, error) {
	u, err := s.Get(ctx, userID)
	if err != nil {
		return nil, err
	}
	keys := keysOf(u.Username, u, from)
	throttle, err := s.throttles(ctx, keys)
	if err != nil {
		return nil, err
	}
	if err := s.locked(throttle); err != nil {
		return nil, err
	}
	return s.checkHash(ctx, u, pw, keys, throttle)
}

// IssueEmailChangeCode makes a code that, once used at ConfirmEmail, moves
// the user to newEmail (normalised here), replacing any older change code
// and the address it named: the newest request wins. It runs on the
// transaction ctx carries, so the code and its mails commit together.
// Whether newEmail belongs to another account is not looked at: that is
// told only to whoever holds the code, at ConfirmEmail.
func (s *Service) IssueEmailChangeCode(ctx context.Context, userID int64, newEmail string) (string, error) {
	email, err := NormalizeEmail(newEmail)
	if err != nil {
		return "", err
	}
	// The code and its address are one row, written in one statement.
	return s.issueCode(ctx, userID, PurposeEmailChange, email)
}

// PendingEmail is the address a live email change code of the user would
// move them to; ErrNotFound when none is pending.
func (s *Service) PendingEmail(ctx context.Context, userID int64) (string, error) {
	row, err := s.store.LiveCodeOf(ctx, userID, storage.CodeEmailChange, s.opts.Now(), MaxCodeAttempts)
	if errors.Is(err, storage.ErrNotFound) || err == nil && row.NewEmail == "" {
		return "", ErrNotFound
	} else if err != nil {
		return "", fmt.Errorf("account: read email change code: %w", err)
	}
	return row.NewEmail, nil
}

// ConfirmEmail uses a mailed code of the user, whichever it is: the code
// of a pending email change moves the account to its new address and marks
// it verified (changed is true); a verification code marks the present
// address verified, as VerifyEmail does. A code that is neither is
// ErrBadCode, alike for wrong, used, expired and dead codes, and counts a
// try against each live code of the two, so that holding both gives no
// more guesses per code than holding one.
//
// When the new address belongs to another account by now, the error wraps
// ErrTaken (a *TakenError on "email") and nothing changes: the unique
// index decides between two accounts confirming one address at once.
func (s *Service) ConfirmEmail(ctx context.Context, userID int64, code string) (changed bool, err error) {
	rows, err := s.store.CodesOf(ctx, userID, storage.CodeVerify, storage.CodeEmailChange)
	if err != nil {
		return false, fmt.Errorf("account: read codes: %w", err)
	}
	var match *storage.Code
	now := s.opts.Now()
	for _, row := range rows {
		p := Purpose(row.Purpose)
		live := row.Live(now, MaxCodeAttempts)
		// Both are compared, so that the time taken does not tell which
		// purpose the code had.
		if hmac.Equal(row.Hash, s.codeHash(userID, p, code)) && live && len(code) == codeDigits {
			match = row
		}
	}
	if match == nil {
		for _, row := range rows {
			if err := s.store.CountCodeAttempt(ctx, userID, row.Purpose); err != nil {
				return false, fmt.Errorf("account: count a wrong code: %w", err)
			}
		}
		return false, ErrBadCode
	}
	if match.Purpose == storage.CodeVerify {
		return false, s.store.InTx(ctx, func(ctx context.Context) error {
			if err := s.ConsumeCode(ctx, userID, PurposeVerify, code); err != nil {
				return err
			}
			return s.MarkEmailVerified(ctx, userID)
		})
	}
	if match.NewEmail == "" {
		return false, ErrBadCode // a row of an email change always names one
	}
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.ConsumeCode(ctx, userID, PurposeEmailChange, code); err != nil {
			return err
		}
		// The unique index sees only the exact spelling; an account kept
		// under an older spelling of the address holds it too.
		if taken, err := s.EmailTaken(ctx, userID, match.NewEmail); err != nil {
			return err
		} else if taken {
			return &TakenError{Field: "email"}
		}
		err := s.store.ChangeEmail(ctx, userID, match.NewEmail)
		switch {
		case errors.Is(err, storage.ErrConflict):
			return takenError(err)
		case errors.Is(err, storage.ErrNotFound):
			return ErrNotFound
		case err != nil:
			return fmt.Errorf("account: change email: %w", err)
		}
		// Codes mailed to the old address have nothing left to prove, and
		// a reset code must not reach an address the account left.
		if err := s.store.DeleteCodes(ctx, userID, storage.CodeVerify, storage.CodeReset); err != nil {
			return fmt.Errorf("account: drop the old address's codes: %w", err)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return true, nil
}

// EmailTaken reports whether an account other than userID holds email, in
// any of its stored spellings.
func (s *Service) EmailTaken(ctx context.Context, userID int64, email string) (bool, error) {
	forms := emailSpellings(email, NormalizeLogin(email))
	ok, err := s.store.EmailTaken(ctx, userID, forms...)
	if err != nil {
		return false, fmt.Errorf("account: look up email: %w", err)
	}
	return ok, nil
}
