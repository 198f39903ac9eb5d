package account

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"idp/storage"
)

// LockedError is returned while an account is locked after failed logins.
type LockedError struct {
	RetryAfter time.Duration
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("account: locked after too many failed logins; retry in %s", e.RetryAfter.Round(time.Second))
}

// throttleMemory is how long failures are remembered without a new one: an
// account that mistypes now and then never adds up to a lock.
const throttleMemory = 24 * time.Hour

// Bounds of the parts of a throttle key, so that every key fits the
// table's 300 characters.
const (
	maxKeyName = 200
	maxKeyAddr = 64
)

// loginKeys name the two failure records a login counts against: the
// account's (or unknown name's) own, across every address, and the one of
// that account from the client's address.
type loginKeys struct {
	account, address string
}

// keysOf are the throttle keys of a login from the address from: user:<id>
// and user:<id>|<from> for an account, login:<name> and login:<name>|<from>
// for an unknown name, so that unknown names lock exactly like accounts.
func keysOf(login string, u *storage.User, from string) loginKeys {
	var k string
	if u != nil {
		k = userKey(u.ID)
	} else {
		if len(login) > maxKeyName {
			sum := sha256.Sum256([]byte(login))
			login = "sha256:" + hex.EncodeToString(sum[:])
		}
		k = "login:" + login
	}
	if len(from) > maxKeyAddr {
		from = from[:maxKeyAddr]
	}
	return loginKeys{account: k, address: k + "|" + from}
}

func userKey(id int64) string { return "user:" + strconv.FormatInt(id, 10) }

// throttles are the failure records of a login's keys; nil when absent.
type throttles struct {
	account, address *storage.LoginThrottle
}

// throttles reads both records of keys in one query.
func (s *Service) throttles(ctx context.Context, keys loginKeys) (throttles, error) {
	rows, err := s.store.LoginThrottles(ctx, keys.account, keys.address)
	if err != nil {
		return throttles{}, fmt.Errorf("account: read login throttle: %w", err)
	}
	var t throttles
	for _, r := range rows {
		switch r.Key {
		case keys.account:
			t.account = r
		case keys.address:
			t.address = r
		}
	}
	return t, nil
}

// locked answers *LockedError while either record locks, with the longer
// of the two waits.
func (s *Service) locked(t throttles) error {
	now := s.opts.Now()
	var wait time.Duration
	for _, r := range []*storage.LoginThrottle{t.account, t.address} {
		if r != nil && !r.LockedUntil.IsZero() {
			wait = max(wait, r.LockedUntil.Sub(now))
		}
	}
	if wait > 0 {
		return &LockedError{RetryAfter: wait}
	}
	return nil
}

// failed records a failed login against both keys: from LockThreshold
// failures the address is locked, from AccountLockThreshold the account
// everywhere; each lock is LockBase at its threshold, doubling with each
// further failure, up to LockMax. It returns the error the login answers
// with: ErrInvalidCredentials, so the failure that sets a lock reads like
// any other, or an error of the database.
func (s *Service) failed(ctx context.Context, keys loginKeys, prev throttles) error {
	if s.opts.OnLoginFailed != nil {
		s.opts.OnLoginFailed()
	}
	now := s.opts.Now()
	for _, r := range []struct {
		key  string
		prev *storage.LoginThrottle
	}{{keys.account, prev.account}, {keys.address, prev.address}} {
		if err := s.countFailure(ctx, r.key, r.prev, now); err != nil {
			return err
		}
	}
	t, err := s.throttles(ctx, keys)
	if err != nil {
		return err
	}
	for _, r := range []struct {
		row       *storage.LoginThrottle
		threshold int
	}{{t.account, s.opts.AccountLockThreshold}, {t.address, s.opts.LockThreshold}} {
		if r.row == nil {
			continue // deleted meanwhile by a success: nothing to lock
		}
		over := r.row.Failures - r.threshold
		if over < 0 {
			continue
		}
		lock := s.opts.LockBase << min(over, 30)
		if lock > s.opts.LockMax || lock <= 0 {
			lock = s.opts.LockMax
		}
		if err := s.store.LockLogin(ctx, r.row.Key, now.Add(lock)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("account: lock: %w", err)
		}
		if s.opts.OnLockout != nil {
			s.opts.OnLockout()
		}
	}
	return ErrInvalidCredentials
}

// countFailure adds one failure to the record of key, starting it afresh
// when there was none or it was forgotten. prev was read before the
// password was hashed, so concurrent failures all saw the same prev: every
// write here is one the database resolves (an upsert that adds, a restart
// conditional on the record still being stale, an increment), so that
// each of them counts.
func (s *Service) countFailure(ctx context.Context, key string, prev *storage.LoginThrottle, now time.Time) error {
	var err error
	switch {
	case prev == nil:
		err = s.store.StartLoginThrottle(ctx, key, now)
	case now.Sub(prev.UpdatedAt) > throttleMemory:
		var restarted bool
		restarted, err = s.store.RestartLoginThrottle(ctx, key, now, now.Add(-throttleMemory))
		if err == nil && !restarted {
			err = s.addFailure(ctx, key, now)
		}
	default:
		err = s.addFailure(ctx, key, now)
	}
	if err != nil {
		return fmt.Errorf("account: record failed login: %w", err)
	}
	return nil
}

// addFailure adds one failure to key's record. A record deleted meanwhile
// (a success) is simply not counted.
func (s *Service) addFailure(ctx context.Context, key string, now time.Time) error {
	if err := s.store.AddLoginFailure(ctx, key, now); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}

// succeeded forgets, after a successful login, the failures of its address
// and the account's count across addresses; other addresses' records stay.
func (s *Service) succeeded(ctx context.Context, keys loginKeys, t throttles) {
	var ids []string
	if t.account != nil {
		ids = append(ids, keys.account)
	}
	if t.address != nil {
		ids = append(ids, keys.address)
	}
	if len(ids) == 0 {
		return
	}
	if err := s.store.DeleteLoginThrottles(ctx, ids...); err != nil {
		s.log.WarnContext(ctx, "clear login throttle", "err", err)
	}
}

// clearUserThrottles forgets every failure record of the user, on every
// address: what a reset by emailed code earns.
func (s *Service) clearUserThrottles(ctx context.Context, userID int64) error {
	if err := s.store.DeleteLoginThrottlesOf(ctx, userKey(userID)); err != nil {
		return fmt.Errorf("account: clear login throttles: %w", err)
	}
	return nil
}

// DeleteStaleThrottles removes failure records not touched for a day and no
// longer locking; run it now and then.
func (s *Service) DeleteStaleThrottles(ctx context.Context) (int, error) {
	now := s.opts.Now()
	return s.store.DeleteStaleLoginThrottles(ctx, now.Add(-throttleMemory), now)
}
