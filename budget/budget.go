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
	"sync"
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
	return sync.OnceFunc(func() { b.sem.Release(n) }), nil
}
