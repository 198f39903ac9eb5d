package account

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"time"

	"idp/storage"
)

// ErrBadCode is the one answer for a wrong, used, expired or dead code.
var ErrBadCode = errors.New("account: the code is not valid")

// MaxCodeAttempts is how many wrong tries kill a code.
const MaxCodeAttempts = 5

// codeDigits is the length of a code: 10^8 possibilities against five
// tries per code.
const codeDigits = 8

// Purpose is what a one-time code is for. A user holds at most one live
// code per purpose; codes of different purposes never stand in for each
// other.
type Purpose string

const (
	// PurposeReset codes reset the password (they live Options.CodeTTL).
	PurposeReset Purpose = Purpose(storage.CodeReset)
	// PurposeVerify codes verify the email address (they live
	// Options.VerifyCodeTTL).
	PurposeVerify Purpose = Purpose(storage.CodeVerify)
)

func (s *Service) codeTTL(p Purpose) time.Duration {
	if p == PurposeVerify || p == PurposeEmailChange {
		return s.opts.VerifyCodeTTL
	}
	return s.opts.CodeTTL
}

// IssueCode makes a new code of purpose p for the user, replacing any
// older one of that purpose, and returns it. Only its HMAC is stored. It
// runs on the transaction ctx carries, so the code and the mail that
// carries it commit together.
func (s *Service) IssueCode(ctx context.Context, userID int64, p Purpose) (string, error) {
	return s.issueCode(ctx, userID, p, "")
}

// issueCode is IssueCode storing newEmail with the code (an email change's).
func (s *Service) issueCode(ctx context.Context, userID int64, p Purpose, newEmail string) (string, error) {
	if len(s.opts.CodeKey) < 32 {
		return "", errors.New("account: no code key configured")
	}
	switch p {
	case PurposeReset, PurposeVerify, PurposeEmailChange:
	default:
		return "", fmt.Errorf("account: unknown code purpose %q", p)
	}
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
	if err != nil {
		return "", err
	}
	code := fmt.Sprintf("%0*d", codeDigits, n.Int64())
	now := s.opts.Now()
	err = s.store.PutCode(ctx, storage.Code{
		UserID:    userID,
		Purpose:   storage.CodePurpose(p),
		Hash:      s.codeHash(userID, p, code),
		ExpiresAt: now.Add(s.codeTTL(p)),
		CreatedAt: now,
		NewEmail:  newEmail,
	})
	if err != nil {
		return "", fmt.Errorf("account: store %s code: %w", p, err)
	}
	return code, nil
}

// codeHash binds a code to its user and purpose, so that a code hash
// copied to another user's row, or from a verification row to a reset
// row, is worthless.
func (s *Service) codeHash(userID int64, p Purpose, code string) []byte {
	m := hmac.New(sha256.New, s.opts.CodeKey)
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], uint64(userID))
	m.Write(id[:])
	m.Write([]byte(p))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return m.Sum(nil)
}

// CheckCode reports whether code is the user's live code of purpose p,
// without using it up. A wrong code counts one of the MaxCodeAttempts
// tries. Every failure is ErrBadCode.
func (s *Service) CheckCode(ctx context.Context, userID int64, p Purpose, code string) error {
	if len(code) != codeDigits {
		// Still a try: otherwise malformed guesses would be free probes.
		return s.wrongCode(ctx, userID, p)
	}
	row, err := s.store.CodeOf(ctx, userID, storage.CodePurpose(p))
	if errors.Is(err, storage.ErrNotFound) {
		return ErrBadCode
	} else if err != nil {
		return fmt.Errorf("account: read %s code: %w", p, err)
	}
	if !row.Live(s.opts.Now(), MaxCodeAttempts) {
		return ErrBadCode
	}
	if !hmac.Equal(row.Hash, s.codeHash(userID, p, code)) {
		return s.wrongCode(ctx, userID, p)
	}
	return nil
}

// HasLiveCode reports whether the user holds a code of purpose p that
// still works: issued, not expired, with tries left. When none does, a
// mail quota must not stand between the owner and a new code.
func (s *Service) HasLiveCode(ctx context.Context, userID int64, p Purpose) (bool, error) {
	ok, err := s.store.HasLiveCode(ctx, userID, storage.CodePurpose(p), s.opts.Now(), MaxCodeAttempts)
	if err != nil {
		return false, fmt.Errorf("account: read %s code: %w", p, err)
	}
	return ok, nil
}

func (s *Service) wrongCode(ctx context.Context, userID int64, p Purpose) error {
	if err := s.store.CountCodeAttempt(ctx, userID, storage.CodePurpose(p)); err != nil {
		return fmt.Errorf("account: count a wrong code: %w", err)
	}
	return ErrBadCode
}

// ConsumeCode uses the code up: it deletes the row only while the code
// still matches, is live and has tries left, so that of two concurrent
// uses of one code exactly one succeeds.
func (s *Service) ConsumeCode(ctx context.Context, userID int64, p Purpose, code string) error {
	ok, err := s.store.ConsumeCode(ctx, userID, storage.CodePurpose(p), s.codeHash(userID, p, code), s.opts.Now(), MaxCodeAttempts)
	if err != nil {
		return fmt.Errorf("account: use %s code: %w", p, err)
	}
	if !ok {
		return ErrBadCode
	}
	return nil
}

// IssueResetCode is IssueCode for a password reset.
func (s *Service) IssueResetCode(ctx context.Context, userID int64) (string, error) {
	return s.IssueCode(ctx, userID, PurposeReset)
}

// CheckResetCode is CheckCode for a password reset.
func (s *Service) CheckResetCode(ctx context.Context, userID int64, code string) error {
	return s.CheckCode(ctx, userID, PurposeReset, code)
}

// HasLiveResetCode is HasLiveCode for a password reset.
func (s *Service) HasLiveResetCode(ctx context.Context, userID int64) (bool, error) {
	return s.HasLiveCode(ctx, userID, PurposeReset)
}

// ConsumeResetCode is ConsumeCode for a password reset.
func (s *Service) ConsumeResetCode(ctx context.Context, userID int64, code string) error {
	return s.ConsumeCode(ctx, userID, PurposeReset, code)
}

// VerifyEmail marks the user's address verified with a mailed code of
// PurposeVerify: a wrong code counts a try; a wrong, used, expired or dead
// code is ErrBadCode. The code is used up and the flag set in one
// transaction (ctx's, or one of its own).
func (s *Service) VerifyEmail(ctx context.Context, userID int64, code string) error {
	if err := s.CheckCode(ctx, userID, PurposeVerify, code); err != nil {
		return err
	}
	return s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.ConsumeCode(ctx, userID, PurposeVerify, code); err != nil {
			return err
		}
		return s.MarkEmailVerified(ctx, userID)
	})
}

// MarkEmailVerified records that the owner proved control of the address
// (a verification code, or a password reset by a mailed code). A live
// verification code has nothing left to prove and is removed.
func (s *Service) MarkEmailVerified(ctx context.Context, userID int64) error {
	err := s.store.SetEmailVerified(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotFound
	} else if err != nil {
		return fmt.Errorf("account: mark email verified: %w", err)
	}
	if err := s.store.DeleteCodes(ctx, userID, storage.CodeVerify); err != nil {
		return fmt.Errorf("account: drop verification code: %w", err)
	}
	return nil
}

// SetPassword stores a new password hash and marks the change, so that
// tokens issued before it stop working at this service; it also lifts
// every lock-out of the account, on every address, since whoever reset the
// password proved control of the email, and drops an email change under
// way: a new password is how an owner takes the account back, and the
// change's notice tells them so, so a change started by whoever had the
// account before must not outlive it (a passkey of theirs would still
// sign them in to confirm it).
func (s *Service) SetPassword(ctx context.Context, userID int64, hash string) error {
	now := s.opts.Now()
	err := s.store.SetPassword(ctx, userID, hash, now)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotFound
	} else if err != nil {
		return fmt.Errorf("account: set password: %w", err)
	}
	if err := s.store.DeleteCodes(ctx, userID, storage.CodeEmailChange); err != nil {
		return fmt.Errorf("account: drop email change: %w", err)
	}
	return s.clearUserThrottles(ctx, userID)
}

// DeleteExpiredCodes removes codes of every purpose past their lifetime.
func (s *Service) DeleteExpiredCodes(ctx context.Context) (int, error) {
	return s.store.DeleteExpiredCodes(ctx, s.opts.Now())
}
