// Package fake holds the test doubles that several packages' tests share:
// a clock that moves only when told, fake-gcs-server with the picture
// bucket, a SendGrid API server that checks what the real client sends, and
// crafted images. It is imported by tests only, so fake-gcs-server never
// enters the binary.
package fake

import (
	"sync"
	"time"
)

// Clock is a clock for tests. Made by NewClock it stands still and moves
// only by Advance and Set, so a test that counts within a window cannot
// straddle two on a slow run; made by NewRunningClock it is the real time
// plus whatever Advance added, for tests that also wait on real timers.
// It is safe for concurrent use; pass its Now method as a package's clock.
type Clock struct {
	mu      sync.Mutex
	t       time.Time
	running bool
	offset  time.Duration
}

// NewClock returns a clock stopped at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// NewRunningClock returns a clock that runs with the real time.
func NewRunningClock() *Clock { return &Clock{running: true} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return time.Now().Add(c.offset)
	}
	return c.t
}

// Advance moves the clock by d (back, for a negative d).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		c.offset += d
	} else {
		c.t = c.t.Add(d)
	}
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		c.offset = time.Until(t)
	} else {
		c.t = t
	}
}
