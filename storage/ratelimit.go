package storage

import (
	"context"
	"time"

	"entgo.io/ent/dialect"

	"idp/ent/ratelimitwindow"
)

// AddToRateLimitWindow adds by to the count of the window id, creating it
// to expire at expires, and returns the new count. It is one statement,
// an upsert that hands back the count: it runs on every request that takes
// a batch of tokens. MySQL has no RETURNING: LAST_INSERT_ID(expr) hands
// the value back in the statement's result instead.
func (s *Store) AddToRateLimitWindow(ctx context.Context, id string, by int64, expires time.Time) (int64, error) {
	expires = expires.Truncate(time.Microsecond)
	if s.dialect == dialect.MySQL {
		res, err := s.sql.ExecContext(ctx,
			"INSERT INTO rate_limit_windows (id, count, expires_at) VALUES (?, LAST_INSERT_ID(?), ?) "+
				"ON DUPLICATE KEY UPDATE count = LAST_INSERT_ID(count + ?)", id, by, expires, by)
		if err != nil {
			return 0, wrap(err)
		}
		n, err := res.LastInsertId()
		return n, wrap(err)
	}
	var n int64
	err := s.sql.QueryRowContext(ctx, s.rebind(
		"INSERT INTO rate_limit_windows AS w (id, count, expires_at) VALUES (?, ?, ?) "+
			"ON CONFLICT(id) DO UPDATE SET count = w.count + excluded.count RETURNING count"), id, by, expires).Scan(&n)
	return n, wrap(err)
}

// DeleteRateLimitWindowsBefore deletes the windows that expired before now,
// in batches (deleteInBatches), and returns how many.
func (s *Store) DeleteRateLimitWindowsBefore(ctx context.Context, now time.Time) (int, error) {
	ended := ratelimitwindow.ExpiresAtLT(now)
	return deleteInBatches(ctx,
		func(ctx context.Context, limit int) ([]string, error) {
			return s.client(ctx).RateLimitWindow.Query().Where(ended).Limit(limit).IDs(ctx)
		},
		func(ctx context.Context, ids []string) (int, error) {
			return s.client(ctx).RateLimitWindow.Delete().Where(ratelimitwindow.IDIn(ids...), ended).Exec(ctx)
		})
}
