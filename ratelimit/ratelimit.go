// Package ratelimit counts requests per client in fixed windows kept in the
// database, so that every server process shares one count, and resolves the
// client address behind trusted proxies.
package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"entgo.io/ent/dialect"

	"idp/database"
	"idp/ent/ratelimitwindow"
)

// Rule is one limit: at most Limit requests per Window for each key. A zero
// Limit turns the rule off.
type Rule struct {
	Name   string
	Limit  int64
	Window time.Duration
}

// Limiter counts requests in the database.
type Limiter struct {
	db  *database.DB
	log *slog.Logger
	now func() time.Time
}

// New returns a Limiter on db. now may be nil (time.Now).
func New(db *database.DB, log *slog.Logger, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Limiter{db: db, log: log, now: now}
}

// Allow counts one request of key under rule. It reports whether the request
// is within the limit and, when it is not, how long until the window ends.
// The count is one statement: an upsert that returns the new count.
func (l *Limiter) Allow(ctx context.Context, rule Rule, key string) (bool, time.Duration, error) {
	if rule.Limit <= 0 {
		return true, 0, nil
	}
	now := l.now().UTC()
	start := now.Truncate(rule.Window)
	end := start.Add(rule.Window)
	id := rule.Name + "|" + key + "|" + strconv.FormatInt(start.Unix(), 10)
	if len(id) > 300 {
		id = id[:300]
	}
	n, err := l.increment(ctx, id, end.Add(rule.Window))
	if err != nil {
		return true, 0, fmt.Errorf("ratelimit: %w", err)
	}
	if n > rule.Limit {
		return false, end.Sub(now), nil
	}
	return true, 0, nil
}

// increment adds one to the window's count and returns the new count.
// MySQL has no RETURNING: LAST_INSERT_ID(expr) hands the value back in the
// statement's result instead.
func (l *Limiter) increment(ctx context.Context, id string, expires time.Time) (int64, error) {
	expires = expires.Truncate(time.Microsecond)
	if l.db.Dialect == dialect.MySQL {
		res, err := l.db.SQL.ExecContext(ctx,
			"INSERT INTO rate_limit_windows (id, count, expires_at) VALUES (?, LAST_INSERT_ID(1), ?) "+
				"ON DUPLICATE KEY UPDATE count = LAST_INSERT_ID(count + 1)", id, expires)
		if err != nil {
			return 0, err
		}
		return res.LastInsertId()
	}
	var n int64
	err := l.db.SQL.QueryRowContext(ctx,
		"INSERT INTO rate_limit_windows (id, count, expires_at) VALUES (?, 1, ?) "+
			"ON CONFLICT(id) DO UPDATE SET count = count + 1 RETURNING count", id, expires).Scan(&n)
	return n, err
}

// DeleteExpired removes windows that ended; run it now and then.
func (l *Limiter) DeleteExpired(ctx context.Context) (int, error) {
	return l.db.Ent.RateLimitWindow.Delete().Where(ratelimitwindow.ExpiresAtLT(l.now())).Exec(ctx)
}

// Middleware limits the requests of each client address under rule. A
// refused request is answered by deny, which writes the endpoint's own error
// format with the Retry-After it is given. When the count cannot be taken
// (the database is down) the request goes through: it will fail on its own,
// and a limiter should not be what takes the service down.
func (l *Limiter) Middleware(rule Rule, clientIP func(*http.Request) string, deny func(w http.ResponseWriter, r *http.Request, retryAfter time.Duration)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if rule.Limit <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ok, wait, err := l.Allow(r.Context(), rule, clientIP(r))
			if err != nil {
				l.log.WarnContext(r.Context(), "rate limit unavailable", "rule", rule.Name, "err", err)
			}
			if !ok {
				w.Header().Set("Retry-After", RetryAfter(wait))
				deny(w, r, wait)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RetryAfter formats a wait as Retry-After seconds, rounded up, at least 1.
func RetryAfter(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(s, 1), 10)
}

// sanitize keeps keys printable and bounded.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e || r == '|' {
			return '_'
		}
		return r
	}, s)
}

// Guard limits routes per client address: PerMinute requests per minute for
// each client and route. A nil Guard, or PerMinute 0, limits nothing.
type Guard struct {
	Limiter   *Limiter
	PerMinute int64
	ClientIP  func(*http.Request) string
}

// Limit returns the middleware for the route called name; deny writes the
// route's own refusal (its error format), after Retry-After is set.
func (g *Guard) Limit(name string, deny func(w http.ResponseWriter, r *http.Request, retryAfter time.Duration)) func(http.Handler) http.Handler {
	if g == nil || g.PerMinute <= 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	return g.Limiter.Middleware(Rule{Name: name, Limit: g.PerMinute, Window: time.Minute}, g.ClientIP, deny)
}
