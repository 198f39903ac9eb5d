// Package budget is the memory budget shared by the expensive operations:
// password hashes and picture decodes. Each takes the bytes it will hold from
// one Budget before it starts, so that a flood of either, or of both, holds
// no more than the budget's size at once; a caller that cannot get its bytes
// within its wait bound is turned away (503) instead of queueing without end.
package budget

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// ErrBusy means the bytes did not become free within the wait bound, or the
// caller's context ended first. Callers map it to their own busy error.
var ErrBusy = errors.New("budget: memory budget exhausted")

// Budget is a byte-weighted semaphore. It is safe for concurrent use.
type Budget struct {
	size int64
	sem  *semaphore.Weighted
	// waiting counts the callers of Acquire that found too few bytes free.
	waiting atomic.Int64
	// garbage is set by Discarded.
	garbage atomic.Bool

	mu sync.Mutex
	// caches give back what their idle caches hold (Cache).
	caches []func()
}

// Cache registers give, which gives back the bytes of the budget that a
// cache holds without using them (the password hasher's kept buffers hold
// their bytes between hashes, so that the memory they occupy is counted).
// Acquire calls every give when it finds too few bytes free, before it
// waits, so that an idle cache never turns away the operation that needs
// its bytes.
func (b *Budget) Cache(give func()) {
	b.mu.Lock()
	b.caches = append(b.caches, give)
	b.mu.Unlock()
}

// Contended reports whether a caller of Acquire is short of bytes: a cache
// should then give back its bytes as soon as it stops using them, instead of
// keeping them for its next use.
func (b *Budget) Contended() bool { return b.waiting.Load() > 0 }

// Discarded tells the budget that memory whose bytes are being given back
// is garbage not yet collected (a cache dropped a buffer for a caller that
// needs its bytes, a decode ended). The next caller to get bytes first runs
// a collection, so that what it allocates reuses that memory instead of
// adding to it: the heap would otherwise hold both until the collector got
// round to it, past the budget by as much as was given back. (A large
// allocation jumps past the collector's goal before the collector starts;
// the memory limit's scavenging can only return pages already free.)
func (b *Budget) Discarded() { b.garbage.Store(true) }

// grant returns the release of n bytes just taken, after collecting what
// Discarded announced.
func (b *Budget) grant(n int64) func() {
	if b.garbage.Swap(false) {
		runtime.GC()
	}
	return sync.OnceFunc(func() { b.sem.Release(n) })
}

// reclaim asks every cache for the bytes it holds unused.
func (b *Budget) reclaim() {
	b.mu.Lock()
	caches := b.caches
	b.mu.Unlock()
	for _, give := range caches {
		give()
	}
}

// New returns a budget of size bytes (at least 1).
func New(size int64) *Budget {
	size = max(size, 1)
	return &Budget{size: size, sem: semaphore.NewWeighted(size)}
}

// Size is the budget in bytes.
func (b *Budget) Size() int64 { return b.size }

// Acquire takes n bytes, waiting at most wait (wait <= 0: not at all) and no
// longer than ctx allows; the returned func gives them back, once. Waiters
// are served in order, so a large request is not starved by a stream of
// small ones (and small ones wait behind it).
//
// A request for more than the whole budget takes the whole budget: it runs
// alone rather than never. The memory held then exceeds the size by that
// one request's excess.
func (b *Budget) Acquire(ctx context.Context, n int64, wait time.Duration) (release func(), err error) {
	n = min(max(n, 0), b.size)
	// A caller that has gone gets nothing, even with bytes free.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBusy, err)
	}
	if !b.sem.TryAcquire(n) {
		// Counted as waiting before the caches are asked: a cache that
		// stops using its bytes after reclaim has looked then sees the
		// contention and gives them back at once.
		b.waiting.Add(1)
		defer b.waiting.Add(-1)
		b.reclaim()
		if b.sem.TryAcquire(n) {
			return b.grant(n), nil
		}
		if wait <= 0 {
			return nil, ErrBusy
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		err := b.sem.Acquire(wctx, n)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
			}
			return nil, ErrBusy
		}
	}
	return b.grant(n), nil
}
