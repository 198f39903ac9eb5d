// Package ratelimit counts requests per client in fixed windows kept in the
// database, so that every server process shares one count, and resolves the
// client address behind trusted proxies.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rule is one limit: at most Limit requests per Window for each key. A zero
// Limit turns the rule off.
type Rule struct {
	Name   string
	Limit  int64
	Window time.Duration
}

// Storage is where a Limiter keeps the shared counts; *storage.Store
// implements it.
type Storage interface {
	// AddToRateLimitWindow adds by to a window's count, creating the
	// window to expire at expires, and returns the new count, in one
	// statement.
	AddToRateLimitWindow(ctx context.Context, id string, by int64, expires time.Time) (int64, error)
	// DeleteRateLimitWindowsBefore deletes the windows expired before now.
	DeleteRateLimitWindowsBefore(ctx context.Context, now time.Time) (int, error)
}

// Limiter counts requests in the database. To keep a write off most
// requests, each process takes tokens from the shared count in batches of a
// tenth of the limit and hands them out locally; tokens a process holds when
// its window ends are lost, so the limit is enforced as at most Limit and at
// least Limit minus a batch per process.
type Limiter struct {
	db  Storage
	log *slog.Logger
	now func() time.Time

	mu     sync.Mutex
	leases map[string]*lease
}

// lease is the tokens of one rule and key this process holds for a window.
type lease struct {
	mu        sync.Mutex
	window    int64 // unix start of the window the tokens belong to
	left      int64
	exhausted bool // the shared count is past the limit for this window
}

// maxLeases bounds the local state; past it, it is dropped and rebuilt.
const maxLeases = 100_000

// maxKey is the longest key kept as it is. Keys come from clients (an
// unknown login, an address header), so a longer one is replaced by its
// hash: each lease and window row then costs a bounded size, and two long
// keys that share a prefix still count apart.
const maxKey = 128

// New returns a Limiter on db. now may be nil (time.Now).
func New(db Storage, log *slog.Logger, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Limiter{db: db, log: log, now: now, leases: make(map[string]*lease)}
}

func (l *Limiter) lease(id string) *lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls, ok := l.leases[id]
	if !ok {
		if len(l.leases) >= maxLeases {
			clear(l.leases)
		}
		ls = new(lease)
		l.leases[id] = ls
	}
	return ls
}

// Allow counts one request of key under rule. It reports whether the request
// is within the limit and, when it is not, how long until the window ends.
// Taking a batch of tokens is one statement: an upsert that returns the new
// count.
func (l *Limiter) Allow(ctx context.Context, rule Rule, key string) (bool, time.Duration, error) {
	if rule.Limit <= 0 {
		return true, 0, nil
	}
	now := l.now().UTC()
	start := now.Truncate(rule.Window)
	end := start.Add(rule.Window)
	if len(key) > maxKey {
		sum := sha256.Sum256([]byte(key))
		key = "sha256:" + hex.EncodeToString(sum[:])
	}
	name := rule.Name + "|" + key
	ls := l.lease(name)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.window != start.Unix() {
		ls.window, ls.left, ls.exhausted = start.Unix(), 0, false
	}
	if ls.left > 0 {
		ls.left--
		return true, 0, nil
	}
	if ls.exhausted {
		return false, end.Sub(now), nil
	}
	batch := max(1, rule.Limit/10)
	id := name + "|" + strconv.FormatInt(start.Unix(), 10)
	n, err := l.db.AddToRateLimitWindow(ctx, id, batch, end.Add(rule.Window))
	if err != nil {
		return true, 0, fmt.Errorf("ratelimit: %w", err)
	}
	// Of the batch just taken, the tokens up to the limit are ours.
	granted := min(batch, rule.Limit-(n-batch))
	if granted < batch {
		ls.exhausted = true
	}
	if granted <= 0 {
		return false, end.Sub(now), nil
	}
	ls.left = granted - 1
	return true, 0, nil
}

// DeleteExpired removes windows that ended, and this process's leases of
// them; run it now and then.
func (l *Limiter) DeleteExpired(ctx context.Context) (int, error) {
	l.mu.Lock()
	for id, ls := range l.leases {
		ls.mu.Lock()
		if ls.left == 0 {
			delete(l.leases, id)
		}
		ls.mu.Unlock()
	}
	l.mu.Unlock()
	n, err := l.db.DeleteRateLimitWindowsBefore(ctx, l.now())
	if err != nil {
		return n, fmt.Errorf("ratelimit: %w", err)
	}
	return n, nil
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
