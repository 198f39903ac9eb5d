package keys

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/storage"
)

// syncBuffer is a log destination the Run goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRun: Run steps at once (here bootstrapping the first key), steps again
// every RefreshInterval, and returns when its context ends. A failing step is
// logged and does not stop it: the next step retries.
func TestRun(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		// Every step reads the clock once before anything else; the
		// clock ends the context on the third step, so the test needs
		// no sleeps.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		opts := testOptions(newClock())
		opts.RefreshInterval = time.Millisecond
		now := opts.Now
		var m *Manager
		var loadedBy atomic.Int64 // the Now call by which the keys were loaded
		var calls atomic.Int64
		opts.Now = func() time.Time {
			n := calls.Add(1)
			if m.snap.Load().active != nil {
				loadedBy.CompareAndSwap(0, n)
				if n >= loadedBy.Load()+2 {
					cancel()
				}
			}
			return now()
		}
		m = newManager(t, storage.New(db), opts)
		runAndWait(t, ctx, m)
		checkTable(t, storage.New(db))
		if m.snap.Load().active == nil {
			t.Fatal("Run did not load the keys")
		}
		if ctx.Err() == nil {
			t.Error("Run returned before its context ended: it did not keep stepping")
		}

		// A step that fails (the database is gone) is logged, and Run
		// keeps stepping until its context ends.
		var logs syncBuffer
		ctx2, cancel2 := context.WithCancel(context.Background())
		defer cancel2()
		broken := testOptions(newClock())
		broken.RefreshInterval = time.Millisecond
		broken.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		var steps atomic.Int64
		clock := broken.Now
		broken.Now = func() time.Time {
			if steps.Add(1) >= 3 {
				cancel2()
			}
			return clock()
		}
		closedDB := databasetest.Open(t, databasetest.SQLiteURL(t))
		bm := newManager(t, storage.New(closedDB), broken)
		closedDB.Close()
		runAndWait(t, ctx2, bm)
		if ctx2.Err() == nil {
			t.Error("Run stopped at a failing step instead of retrying")
		}
		if n := strings.Count(logs.String(), "rotation step failed"); n < 1 {
			t.Errorf("the failing steps were not logged: %q", logs.String())
		}

		// An already-ended context returns at once, without a step.
		var stepped atomic.Bool
		idle := testOptions(newClock())
		idleNow := idle.Now
		idle.Now = func() time.Time { stepped.Store(true); return idleNow() }
		runAndWait(t, ctx, newManager(t, storage.New(db), idle))
		if stepped.Load() {
			t.Error("Run stepped with an ended context")
		}
	})
}

// runAndWait runs m.Run(ctx) and fails the test if it does not return
// within a few seconds of what the test arranged.
func runAndWait(t *testing.T, ctx context.Context, m *Manager) {
	t.Helper()
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
