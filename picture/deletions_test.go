package picture

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/storage"
)

// flakyStore is a Store whose Delete fails while down is set, and which
// records the keys it deleted.
type flakyStore struct {
	mu      sync.Mutex
	down    bool
	deleted []string
	tries   int
}

func (f *flakyStore) Put(context.Context, string, Image) error { return nil }
func (f *flakyStore) URL(context.Context, string) (string, error) {
	return "", errors.New("no URLs here")
}

func (f *flakyStore) Delete(_ context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	if f.down {
		return ErrUnavailable
	}
	f.deleted = append(f.deleted, key)
	return nil
}

func (f *flakyStore) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *flakyStore) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.deleted...)
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestDeletionQueue(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		clock := &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		store := &flakyStore{}
		st := storage.New(db)
		q := NewDeletionQueue(st, store, DeletionOptions{Now: clock.Now, MinBackoff: time.Minute, MaxBackoff: 10 * time.Minute})
		pending := func(want int) {
			t.Helper()
			n, err := q.Pending(ctx)
			if err != nil || n != want {
				t.Fatalf("pending = %d, %v; want %d", n, err, want)
			}
		}

		// A rolled-back transaction queues nothing.
		rolledBack, committed := NewKey("image/jpeg"), NewKey("image/png")
		errRollback := errors.New("roll back")
		err := st.InTx(ctx, func(ctx context.Context) error {
			if err := q.Enqueue(ctx, rolledBack); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatal(err)
		}
		pending(0)
		if err := q.Enqueue(ctx, "../etc/passwd"); !errors.Is(err, ErrBadKey) {
			t.Fatalf("bad key: %v", err)
		}

		// Queued in a transaction, twice: one row.
		if err := st.InTx(ctx, func(ctx context.Context) error {
			if err := q.Enqueue(ctx, committed); err != nil {
				return err
			}
			return q.Enqueue(ctx, committed)
		}); err != nil {
			t.Fatal(err)
		}
		pending(1)

		// Storage down: the attempt fails, the row stays, backed off.
		store.setDown(true)
		if err := q.DeleteNow(ctx, committed); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("DeleteNow while down: %v", err)
		}
		pending(1)
		if n, _, err := q.DeleteDue(ctx); n != 0 || err != nil {
			t.Fatalf("not due yet, yet DeleteDue = %d, %v", n, err)
		}
		clock.Add(time.Minute)
		if n, _, err := q.DeleteDue(ctx); n != 0 || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("still down: DeleteDue = %d, %v", n, err)
		}
		row, err := st.PictureDeletionByKey(ctx, committed)
		if err != nil || row.Attempts != 2 || row.LastError == "" || !row.NextAttemptAt.After(clock.Now()) {
			t.Fatalf("after two failures: %+v, %v", row, err)
		}

		// Back up: the next due pass deletes the object and the row.
		store.setDown(false)
		clock.Add(10 * time.Minute)
		if n, _, err := q.DeleteDue(ctx); n != 1 || err != nil {
			t.Fatalf("DeleteDue = %d, %v", n, err)
		}
		pending(0)
		if got := store.got(); len(got) != 1 || got[0] != committed {
			t.Fatalf("deleted %v, want [%s]", got, committed)
		}

		// DeleteOrQueue: deleted at once while storage works, queued while
		// it does not.
		direct, later := NewKey("image/gif"), NewKey("image/webp")
		if err := q.DeleteOrQueue(ctx, direct); err != nil {
			t.Fatal(err)
		}
		pending(0)
		store.setDown(true)
		if err := q.DeleteOrQueue(ctx, later); err != nil {
			t.Fatal(err)
		}
		pending(1)
		store.setDown(false)

		// The worker drains it, woken by nothing but its poll.
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		q.opts.PollInterval = 20 * time.Millisecond
		go func() { q.Run(runCtx); close(done) }()
		clock.Add(time.Hour)
		deadline := time.Now().Add(10 * time.Second)
		for n, _ := q.Pending(ctx); n > 0; n, _ = q.Pending(ctx) {
			if time.Now().After(deadline) {
				t.Fatal("the worker did not drain the queue")
			}
			time.Sleep(10 * time.Millisecond)
		}
		stop()
		<-done
		if got := store.got(); len(got) != 3 || got[2] != later {
			t.Fatalf("deleted %v", got)
		}
	})
}

func TestBackoff(t *testing.T) {
	for attempt, want := range map[int]time.Duration{1: 5 * time.Second, 2: 10 * time.Second, 4: 40 * time.Second, 30: time.Hour} {
		for range 20 {
			got := backoff(attempt, 5*time.Second, time.Hour)
			if got > want || got < want/2 {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s]", attempt, got, want/2, want)
			}
		}
	}
}

// claimLosingStore is the deletion queue's table whose claims first lose
// to another worker: as a deadlock's victim (MySQL) or to a claim that came
// first.
type claimLosingStore struct {
	*storage.Store
	deadlocks int // claims still to lose as a deadlock
	taken     int // claims still to find the row taken
}

func (s *claimLosingStore) ClaimPictureDeletion(ctx context.Context, id int64, read, until time.Time) (bool, error) {
	switch {
	case s.deadlocks > 0:
		s.deadlocks--
		return false, fmt.Errorf("%w: Error 1213 (40001): Deadlock found when trying to get lock; try restarting transaction", storage.ErrRetryable)
	case s.taken > 0:
		s.taken--
		return false, nil
	}
	return s.Store.ClaimPictureDeletion(ctx, id, read, until)
}

// TestDeleteDueLosingClaims: a claim that another worker wins, by a
// deadlock or by coming first, is neither a failed pass nor a deletion; the
// row stays due and the next pass deletes it.
func TestDeleteDueLosingClaims(t *testing.T) {
	for _, tc := range []struct {
		name            string
		deadlocks, take int
	}{
		{"deadlock victim", 1, 0},
		{"claimed by another worker", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			databasetest.Each(t, func(t *testing.T, db *database.DB) {
				ctx := context.Background()
				clock := &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
				objects := &flakyStore{}
				st := &claimLosingStore{Store: storage.New(db), deadlocks: tc.deadlocks, taken: tc.take}
				q := NewDeletionQueue(st, objects, DeletionOptions{Now: clock.Now})
				key := NewKey("image/jpeg")
				if err := q.Enqueue(ctx, key); err != nil {
					t.Fatal(err)
				}
				clock.Add(time.Hour)

				if n, _, err := q.DeleteDue(ctx); n != 0 || err != nil {
					t.Fatalf("claim lost: DeleteDue = %d, %v; want 0, nil", n, err)
				}
				if got := objects.got(); len(got) != 0 {
					t.Fatalf("deleted %v without the claim", got)
				}
				if n, _, err := q.DeleteDue(ctx); n != 1 || err != nil {
					t.Fatalf("next pass: DeleteDue = %d, %v; want 1, nil", n, err)
				}
				if got := objects.got(); len(got) != 1 || got[0] != key {
					t.Fatalf("deleted %v, want [%s]", got, key)
				}
			})
		})
	}
}
