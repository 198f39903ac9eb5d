package storage

import (
	"context"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"idp/ent"
	"idp/ent/loginthrottle"
	"idp/ent/predicate"
)

// LoginThrottle counts the failed logins of one key: an account's or an
// unknown login name's, from every client address or from one.
type LoginThrottle struct {
	Key      string
	Failures int
	// LockedUntil is when the lock the failures earned ends; zero when
	// none was imposed.
	LockedUntil time.Time
	UpdatedAt   time.Time
}

func throttleOf(r *ent.LoginThrottle) *LoginThrottle {
	t := &LoginThrottle{Key: r.ID, Failures: r.Failures, UpdatedAt: r.UpdatedAt}
	if r.LockedUntil != nil {
		t.LockedUntil = *r.LockedUntil
	}
	return t
}

// LoginThrottles returns the records of the keys that have one, in one
// query.
func (s *Store) LoginThrottles(ctx context.Context, keys ...string) ([]*LoginThrottle, error) {
	rows, err := s.client(ctx).LoginThrottle.Query().Where(loginthrottle.IDIn(keys...)).All(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]*LoginThrottle, len(rows))
	for i, r := range rows {
		out[i] = throttleOf(r)
	}
	return out, nil
}

// StartLoginThrottle counts a failure for key at now in a new record, or,
// when a concurrent failure created the record first, as one more on it:
// failures that arrive together each count (an upsert that adds).
func (s *Store) StartLoginThrottle(ctx context.Context, key string, now time.Time) error {
	return wrap(s.client(ctx).LoginThrottle.Create().SetID(key).SetFailures(1).SetUpdatedAt(now).
		OnConflictColumns(loginthrottle.FieldID).
		Update(func(u *ent.LoginThrottleUpsert) {
			u.AddFailures(1).SetUpdatedAt(now)
		}).Exec(ctx))
}

// RestartLoginThrottle starts key's record afresh, one failure at now and
// unlocked, if it was last touched before staleBefore (its failures are
// forgotten), and reports whether it did. False: the record is gone, or a
// concurrent failure touched it since, and this failure is to be added.
func (s *Store) RestartLoginThrottle(ctx context.Context, key string, now, staleBefore time.Time) (bool, error) {
	n, err := s.client(ctx).LoginThrottle.Update().
		Where(loginthrottle.ID(key), loginthrottle.UpdatedAtLT(staleBefore)).
		SetFailures(1).ClearLockedUntil().SetUpdatedAt(now).Save(ctx)
	return n > 0, wrap(err)
}

// AddLoginFailure adds one failure to key's record, the increment being
// the database's so that concurrent failures each count. ErrNotFound when
// the record is gone (a success deleted it meanwhile).
func (s *Store) AddLoginFailure(ctx context.Context, key string, now time.Time) error {
	return wrap(s.client(ctx).LoginThrottle.UpdateOneID(key).AddFailures(1).SetUpdatedAt(now).Exec(ctx))
}

// LockLogin locks key's record until until. ErrNotFound when the record is
// gone.
func (s *Store) LockLogin(ctx context.Context, key string, until time.Time) error {
	return wrap(s.client(ctx).LoginThrottle.UpdateOneID(key).SetLockedUntil(until).Exec(ctx))
}

// DeleteLoginThrottles deletes the records of keys.
func (s *Store) DeleteLoginThrottles(ctx context.Context, keys ...string) error {
	_, err := s.client(ctx).LoginThrottle.Delete().Where(loginthrottle.IDIn(keys...)).Exec(ctx)
	return wrap(err)
}

// DeleteLoginThrottlesOf deletes the record of key and those of key from
// every address (key|<address>).
func (s *Store) DeleteLoginThrottlesOf(ctx context.Context, key string) error {
	_, err := s.client(ctx).LoginThrottle.Delete().Where(loginthrottle.Or(
		loginthrottle.ID(key),
		predicate.LoginThrottle(entsql.FieldHasPrefix(loginthrottle.FieldID, key+"|")),
	)).Exec(ctx)
	return wrap(err)
}

// DeleteStaleLoginThrottles removes the records not touched since cutoff
// that no longer lock at now, and reports how many.
func (s *Store) DeleteStaleLoginThrottles(ctx context.Context, cutoff, now time.Time) (int, error) {
	stale := loginthrottle.And(
		loginthrottle.UpdatedAtLT(cutoff),
		loginthrottle.Or(loginthrottle.LockedUntilIsNil(), loginthrottle.LockedUntilLT(now)),
	)
	return deleteInBatches(ctx,
		func(ctx context.Context, limit int) ([]string, error) {
			return s.db.LoginThrottle.Query().Where(stale).Limit(limit).IDs(ctx)
		},
		func(ctx context.Context, ids []string) (int, error) {
			return s.db.LoginThrottle.Delete().Where(loginthrottle.IDIn(ids...), stale).Exec(ctx)
		})
}
