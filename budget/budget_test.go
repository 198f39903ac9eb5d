package budget

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

func TestAcquire(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name    string
		size    int64
		held    int64 // taken before the request
		ctx     context.Context
		n       int64
		wait    time.Duration
		wantErr bool
	}{
		{"fits", 100, 0, ctx, 100, 0, false},
		{"fits beside another", 100, 40, ctx, 60, 0, false},
		{"zero bytes", 100, 100, ctx, 0, 0, false},
		{"does not fit, no wait", 100, 41, ctx, 60, 0, true},
		{"does not fit within the wait", 100, 41, ctx, 60, 20 * time.Millisecond, true},
		{"more than the whole budget, budget free", 100, 0, ctx, 1000, 0, false},
		{"more than the whole budget, budget partly held", 100, 1, ctx, 1000, 20 * time.Millisecond, true},
		{"caller gone, bytes free", 100, 0, cancelled, 1, time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := New(tc.size)
			if tc.held > 0 {
				if _, err := b.Acquire(ctx, tc.held, 0); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			release, err := b.Acquire(tc.ctx, tc.n, tc.wait)
			if took := time.Since(start); took > tc.wait+time.Second {
				t.Errorf("took %v with a wait bound of %v", took, tc.wait)
			}
			if tc.wantErr {
				if !errors.Is(err, ErrBusy) {
					t.Fatalf("err %v, want ErrBusy", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			release()
			release() // a second call gives nothing back twice
			// Everything but what was held before is free again, and no more.
			if r, err := b.Acquire(ctx, tc.size-tc.held, 0); err != nil {
				t.Errorf("after release: %v", err)
			} else if _, err := b.Acquire(ctx, 1, 0); tc.size > 0 && err == nil {
				t.Error("a double release returned bytes twice")
			} else {
				r()
			}
		})
	}
}

func TestAcquireWaitsForRelease(t *testing.T) {
	b := New(100)
	release, err := b.Acquire(context.Background(), 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, release)
	start := time.Now()
	r, err := b.Acquire(context.Background(), 30, 5*time.Second)
	if err != nil {
		t.Fatalf("waiter: %v", err)
	}
	defer r()
	if took := time.Since(start); took < 40*time.Millisecond {
		t.Errorf("got the bytes after %v, before they were released", took)
	}
}

func TestAcquireStopsWithTheContext(t *testing.T) {
	b := New(100)
	if _, err := b.Acquire(context.Background(), 100, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	start := time.Now()
	_, err := b.Acquire(ctx, 1, time.Minute)
	if !errors.Is(err, ErrBusy) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want ErrBusy wrapping context.Canceled", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("waited %v after the context ended", took)
	}
}

func TestNewClampsSize(t *testing.T) {
	if got := New(0).Size(); got != 1 {
		t.Errorf("New(0).Size() = %d, want 1", got)
	}
	if got := New(64 << 20).Size(); got != 64<<20 {
		t.Errorf("Size() = %d", got)
	}
}

// TestAcquireReclaimsCaches: bytes a cache holds unused are asked back
// before a caller that needs them waits, and a cache that gives nothing back
// leaves the caller waiting (and busy) as before; Contended is true exactly
// while a caller is short of bytes.
func TestAcquireReclaimsCaches(t *testing.T) {
	ctx := context.Background()
	b := New(100)
	cached, err := b.Acquire(ctx, 80, 0) // an idle cache's bytes
	if err != nil {
		t.Fatal(err)
	}
	var asked int
	var sawContended bool
	b.Cache(func() {
		asked++
		sawContended = b.Contended()
		cached()
	})
	if b.Contended() {
		t.Fatal("Contended before anyone waits")
	}
	release, err := b.Acquire(ctx, 100, 0)
	if err != nil {
		t.Fatalf("Acquire with the bytes in an idle cache: %v", err)
	}
	if asked != 1 || !sawContended {
		t.Fatalf("cache asked %d times (contended then: %v), want once and contended", asked, sawContended)
	}
	if b.Contended() {
		t.Error("Contended after the caller got its bytes")
	}
	// The cache has nothing left to give: the next caller waits and is busy.
	if _, err := b.Acquire(ctx, 1, 20*time.Millisecond); !errors.Is(err, ErrBusy) {
		t.Fatalf("Acquire with everything in use: %v, want ErrBusy", err)
	}
	if asked != 2 {
		t.Errorf("cache asked %d times, want 2", asked)
	}
	release()
	// Bytes that are free are taken without asking any cache.
	r, err := b.Acquire(ctx, 50, 0)
	if err != nil {
		t.Fatal(err)
	}
	r()
	if asked != 2 {
		t.Errorf("cache asked with the bytes free (%d times)", asked)
	}
}

// TestDiscardedIsCollectedBeforeTheBytesAreUsed: after a cache announces
// that it dropped memory, the next caller to get bytes has it collected
// first, once.
func TestDiscardedIsCollectedBeforeTheBytesAreUsed(t *testing.T) {
	ctx := context.Background()
	b := New(100)
	gcs := func() uint32 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.NumGC
	}
	b.Discarded()
	before := gcs()
	release, err := b.Acquire(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if got := gcs(); got == before {
		t.Fatal("no collection before the bytes given back were handed out")
	}
	if b.garbage.Load() {
		t.Error("the announcement outlived the collection")
	}
}
