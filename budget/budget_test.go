package budget

import (
	"context"
	"errors"
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
