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

	"idp/ent"
	"idp/ent/passwordresetcode"
)

// ErrBadCode is the one answer for a wrong, used, expired or dead reset code.
var ErrBadCode = errors.New("account: the reset code is not valid")

// MaxCodeAttempts is how many wrong tries kill a reset code.
const MaxCodeAttempts = 5

// codeDigits is the length of a reset code: 10^8 possibilities against five
// tries per code.
const codeDigits = 8

// IssueResetCode makes a new reset code for the user, replacing any older
// one, and returns it. Only its HMAC is stored. It runs on the transaction
// ctx carries, so the code and the mail that carries it commit together.
func (s *Service) IssueResetCode(ctx context.Context, userID int64) (string, error) {
	if len(s.opts.CodeKey) < 32 {
		return "", errors.New("account: no reset code key configured")
	}
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
	if err != nil {
		return "", err
	}
	code := fmt.Sprintf("%0*d", codeDigits, n.Int64())
	now := s.opts.Now()
	err = s.client(ctx).PasswordResetCode.Create().
		SetUserID(userID).
		SetCodeHash(s.codeHash(userID, code)).
		SetAttempts(0).
		SetExpiresAt(now.Add(s.opts.CodeTTL)).
		SetCreatedAt(now).
		OnConflictColumns(passwordresetcode.FieldUserID).
		UpdateNewValues().
		Exec(ctx)
	if err != nil {
		return "", fmt.Errorf("account: store reset code: %w", err)
	}
	return code, nil
}

// codeHash binds a code to its user, so that a code hash copied to another
// user's row is worthless.
func (s *Service) codeHash(userID int64, code string) []byte {
	m := hmac.New(sha256.New, s.opts.CodeKey)
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], uint64(userID))
	m.Write(id[:])
	m.Write([]byte(code))
	return m.Sum(nil)
}

// CheckResetCode reports whether code is the user's live reset code, without
// using it up. A wrong code counts one of the MaxCodeAttempts tries. Every
// failure is ErrBadCode.
func (s *Service) CheckResetCode(ctx context.Context, userID int64, code string) error {
	if len(code) != codeDigits {
		// Still a try: otherwise malformed guesses would be free probes.
		return s.wrongCode(ctx, userID)
	}
	row, err := s.client(ctx).PasswordResetCode.Query().Where(passwordresetcode.UserID(userID)).Only(ctx)
	if ent.IsNotFound(err) {
		return ErrBadCode
	} else if err != nil {
		return fmt.Errorf("account: read reset code: %w", err)
	}
	if row.Attempts >= MaxCodeAttempts || !s.opts.Now().Before(row.ExpiresAt) {
		return ErrBadCode
	}
	if !hmac.Equal(row.CodeHash, s.codeHash(userID, code)) {
		return s.wrongCode(ctx, userID)
	}
	return nil
}

// HasLiveResetCode reports whether the user holds a reset code that still
// works: issued, not expired, with tries left. When none does, a mail
// quota must not stand between the owner and a new code.
func (s *Service) HasLiveResetCode(ctx context.Context, userID int64) (bool, error) {
	ok, err := s.client(ctx).PasswordResetCode.Query().Where(
		passwordresetcode.UserID(userID),
		passwordresetcode.AttemptsLT(MaxCodeAttempts),
		passwordresetcode.ExpiresAtGT(s.opts.Now()),
	).Exist(ctx)
	if err != nil {
		return false, fmt.Errorf("account: read reset code: %w", err)
	}
	return ok, nil
}

func (s *Service) wrongCode(ctx context.Context, userID int64) error {
	_, err := s.client(ctx).PasswordResetCode.Update().
		Where(passwordresetcode.UserID(userID)).
		AddAttempts(1).
		Save(ctx)
	if err != nil {
		return fmt.Errorf("account: count a wrong code: %w", err)
	}
	return ErrBadCode
}

// ConsumeResetCode uses the code up: it deletes the row only while the code
// still matches, is live and has tries left, so that of two concurrent
// resets with one code exactly one succeeds.
func (s *Service) ConsumeResetCode(ctx context.Context, userID int64, code string) error {
	n, err := s.client(ctx).PasswordResetCode.Delete().Where(
		passwordresetcode.UserID(userID),
		passwordresetcode.CodeHash(s.codeHash(userID, code)),
		passwordresetcode.AttemptsLT(MaxCodeAttempts),
		passwordresetcode.ExpiresAtGT(s.opts.Now()),
	).Exec(ctx)
	if err != nil {
		return fmt.Errorf("account: use reset code: %w", err)
	}
	if n == 0 {
		return ErrBadCode
	}
	return nil
}

// SetPassword stores a new password hash and marks the change, so that
// tokens issued before it stop working at this service; it also lifts
// every lock-out of the account, on every address, since whoever reset the
// password proved control of the email.
func (s *Service) SetPassword(ctx context.Context, userID int64, hash string) error {
	now := s.opts.Now()
	err := s.client(ctx).User.UpdateOneID(userID).
		SetPasswordHash(hash).
		SetPasswordChangedAt(now).
		Exec(ctx)
	if ent.IsNotFound(err) {
		return ErrNotFound
	} else if err != nil {
		return fmt.Errorf("account: set password: %w", err)
	}
	return s.clearUserThrottles(ctx, userID)
}

// DeleteExpiredCodes removes reset codes past their lifetime.
func (s *Service) DeleteExpiredCodes(ctx context.Context) (int, error) {
	return s.db.PasswordResetCode.Delete().Where(passwordresetcode.ExpiresAtLT(s.opts.Now())).Exec(ctx)
}
