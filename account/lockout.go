package account

import (
	"context"
	"fmt"
	"time"

	"idp/ent"
	"idp/ent/loginthrottle"
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

// throttle reads the failure record of key; nil when there is none.
func (s *Service) throttle(ctx context.Context, key string) (*ent.LoginThrottle, error) {
	t, err := s.client(ctx).LoginThrottle.Get(ctx, key)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("account: read login throttle: %w", err)
	}
	return t, nil
}

func (s *Service) locked(t *ent.LoginThrottle) error {
	if t == nil || t.LockedUntil == nil {
		return nil
	}
	if wait := t.LockedUntil.Sub(s.opts.Now()); wait > 0 {
		return &LockedError{RetryAfter: wait}
	}
	return nil
}

// failed records a failed login of key and locks it from the threshold on:
// LockBase at the threshold, doubling with each further failure, up to
// LockMax. It returns the error the login answers with:
// ErrInvalidCredentials, so the failure that sets a lock reads like any
// other, or an error of the database.
func (s *Service) failed(ctx context.Context, key string, prev *ent.LoginThrottle) error {
	if s.opts.OnLoginFailed != nil {
		s.opts.OnLoginFailed()
	}
	now := s.opts.Now()
	c := s.client(ctx).LoginThrottle
	var err error
	if prev == nil || now.Sub(prev.UpdatedAt) > throttleMemory {
		err = c.Create().SetID(key).SetFailures(1).SetUpdatedAt(now).
			OnConflictColumns(loginthrottle.FieldID).
			Update(func(u *ent.LoginThrottleUpsert) {
				u.SetFailures(1).ClearLockedUntil().SetUpdatedAt(now)
			}).Exec(ctx)
	} else {
		// Concurrent failures each count: the increment is the database's.
		err = c.UpdateOneID(key).AddFailures(1).SetUpdatedAt(now).Exec(ctx)
	}
	if err != nil {
		return fmt.Errorf("account: record failed login: %w", err)
	}
	t, err := c.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("account: record failed login: %w", err)
	}
	if over := t.Failures - s.opts.LockThreshold; over >= 0 {
		lock := s.opts.LockBase << min(over, 30)
		if lock > s.opts.LockMax || lock <= 0 {
			lock = s.opts.LockMax
		}
		if err := c.UpdateOneID(key).SetLockedUntil(now.Add(lock)).Exec(ctx); err != nil {
			return fmt.Errorf("account: lock: %w", err)
		}
		if s.opts.OnLockout != nil {
			s.opts.OnLockout()
		}
	}
	return ErrInvalidCredentials
}

// clearThrottle forgets the failures of key after a successful login.
func (s *Service) clearThrottle(ctx context.Context, key string) {
	if err := s.client(ctx).LoginThrottle.DeleteOneID(key).Exec(ctx); err != nil && !ent.IsNotFound(err) {
		s.log.WarnContext(ctx, "clear login throttle", "err", err)
	}
}

// DeleteStaleThrottles removes failure records not touched for a day and no
// longer locking; run it now and then.
func (s *Service) DeleteStaleThrottles(ctx context.Context) (int, error) {
	cutoff := s.opts.Now().Add(-throttleMemory)
	return s.db.LoginThrottle.Delete().Where(
		loginthrottle.UpdatedAtLT(cutoff),
		loginthrottle.Or(loginthrottle.LockedUntilIsNil(), loginthrottle.LockedUntilLT(s.opts.Now())),
	).Exec(ctx)
}
