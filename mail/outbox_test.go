package mail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/fake"
	"idp/storage"
)

func newClock() *fake.Clock { return fake.NewClock(time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)) }

// newFakeSendGrid is fake.SendGrid answering the n-th request with
// status(n).
func newFakeSendGrid(t *testing.T, status func(n int) int) *fake.SendGrid {
	t.Helper()
	f := fake.NewSendGrid(t)
	f.Respond(status)
	return f
}

func always(code int) func(int) int { return func(int) int { return code } }

// sendGridSender is the real SendGrid sender pointed at f.
func sendGridSender(f *fake.SendGrid) *SendGrid {
	return NewSendGrid(fake.SendGridKey, Address{Name: "IdP", Email: "idp@example.com"}, WithSendGridHost(f.URL))
}

// senderFunc adapts a function to Sender.
type senderFunc func(ctx context.Context, m Message) error

func (f senderFunc) Send(ctx context.Context, m Message) error { return f(ctx, m) }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func testMessage(i int) Message {
	return Message{
		To:      fmt.Sprintf("user%d@example.com", i),
		Subject: "Your password reset code",
		Text:    fmt.Sprintf("Your code is %08d.", 10000000+i),
		HTML:    fmt.Sprintf("<p>Your code is <b>%08d</b>.</p>", 10000000+i),
	}
}

// onlyMessage returns the single row of the outbox table.
func onlyMessage(t *testing.T, db *storage.Store) *storage.OutboxMessage {
	t.Helper()
	ms, err := db.OutboxMessages(context.Background())
	if err != nil {
		t.Fatalf("outbox: %v", err)
	}
	if len(ms) != 1 {
		t.Fatalf("outbox holds %d messages, want 1", len(ms))
	}
	return ms[0]
}

func mustDeliver(t *testing.T, o *Outbox, want int) {
	t.Helper()
	n, err := o.DeliverDue(context.Background())
	if err != nil {
		t.Fatalf("DeliverDue: %v", err)
	}
	if n != want {
		t.Fatalf("DeliverDue sent %d, want %d", n, want)
	}
}

func TestEnqueueStoresMessage(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		c := newClock()
		o := NewOutbox(storage.New(db), senderFunc(func(context.Context, Message) error { return nil }), Options{Now: c.Now, Logger: discardLogger()})
		m := testMessage(1)
		m.UserID = 7
		if err := o.Enqueue(ctx, m); err != nil {
			t.Fatal(err)
		}
		row := onlyMessage(t, storage.New(db))
		if row.Recipient != m.To || row.UserID != m.UserID || row.Subject != m.Subject || row.Text != m.Text || row.HTML != m.HTML {
			t.Errorf("stored %+v, want %+v", row, m)
		}
		if row.State != storage.OutboxPending || row.Attempts != 0 || row.LeaseOwner != "" || row.SentAt != nil {
			t.Errorf("new message: state %s, attempts %d, lease %v, sent_at %v", row.State, row.Attempts, row.LeaseOwner, row.SentAt)
		}
		if !row.CreatedAt.Equal(c.Now()) || !row.NextAttemptAt.Equal(c.Now()) {
			t.Errorf("created_at %v, next_attempt_at %v; want both %v", row.CreatedAt, row.NextAttemptAt, c.Now())
		}
		if err := o.Enqueue(ctx, Message{To: "a@example.com", Subject: "s"}); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("Enqueue without a body = %v, want ErrInvalidMessage", err)
		}
	})
}

func TestDeliverMarksSentAndBlanksBodies(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		c := newClock()
		sg := newFakeSendGrid(t, always(http.StatusAccepted))
		o := NewOutbox(storage.New(db), sendGridSender(sg), Options{Now: c.Now, Logger: discardLogger()})
		if err := o.Enqueue(context.Background(), testMessage(1)); err != nil {
			t.Fatal(err)
		}
		mustDeliver(t, o, 1)
		row := onlyMessage(t, storage.New(db))
		if row.State != storage.OutboxSent || row.SentAt == nil || !row.SentAt.Equal(c.Now()) {
			t.Errorf("state %s, sent_at %v; want sent at %v", row.State, row.SentAt, c.Now())
		}
		if row.Text != "" || row.HTML != "" {
			t.Errorf("bodies kept after sending: %q, %q", row.Text, row.HTML)
		}
		if row.LeaseOwner != "" || row.LeaseUntil != nil || row.Attempts != 1 {
			t.Errorf("lease %v/%v, attempts %d; want released, 1", row.LeaseOwner, row.LeaseUntil, row.Attempts)
		}
		c.Advance(24 * time.Hour)
		mustDeliver(t, o, 0)
		if reqs, d := sg.Requests(), sg.Delivered(); reqs != 1 || d["user1@example.com"] != 1 {
			t.Errorf("server got %d requests, delivered %v; want one", reqs, d)
		}
	})
}

// TestOutage: SendGrid fails a few times, then recovers. Each failure
// schedules the next attempt further away; a pass before that time sends
// nothing; in the end the message is delivered exactly once.
func TestOutage(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		const failures = 4
		c := newClock()
		sg := newFakeSendGrid(t, func(n int) int {
			if n <= failures {
				return http.StatusInternalServerError
			}
			return http.StatusAccepted
		})
		opts := Options{Now: c.Now, Logger: discardLogger(), MinBackoff: 5 * time.Second, MaxBackoff: time.Hour}
		o := NewOutbox(storage.New(db), sendGridSender(sg), opts)
		if err := o.Enqueue(context.Background(), testMessage(1)); err != nil {
			t.Fatal(err)
		}
		var prevWait time.Duration
		for attempt := 1; attempt <= failures; attempt++ {
			mustDeliver(t, o, 0)
			row := onlyMessage(t, storage.New(db))
			if row.State != storage.OutboxPending || row.Attempts != attempt {
				t.Fatalf("after failure %d: state %s, attempts %d", attempt, row.State, row.Attempts)
			}
			if row.LeaseOwner != "" || row.LeaseUntil != nil {
				t.Errorf("after failure %d the lease was not released", attempt)
			}
			if row.LastError == "" || !strings.Contains(row.LastError, "500") {
				t.Errorf("last_error = %v, want the status", row.LastError)
			}
			wait := row.NextAttemptAt.Sub(c.Now())
			full := opts.MinBackoff << (attempt - 1)
			if wait < full/2 || wait > full {
				t.Errorf("wait after failure %d = %v, want within [%v, %v]", attempt, wait, full/2, full)
			}
			if wait <= prevWait {
				t.Errorf("wait after failure %d = %v, not longer than the previous %v", attempt, wait, prevWait)
			}
			prevWait = wait

			// Just before it is due, a pass leaves it alone.
			c.Set(row.NextAttemptAt.Add(-time.Microsecond))
			before, _ := sg.Requests(), sg.Delivered()
			mustDeliver(t, o, 0)
			if after, _ := sg.Requests(), sg.Delivered(); after != before {
				t.Fatalf("a message was sent before its next attempt was due")
			}
			c.Set(row.NextAttemptAt)
		}
		mustDeliver(t, o, 1)
		c.Advance(48 * time.Hour)
		mustDeliver(t, o, 0)

		reqs, delivered := sg.Requests(), sg.Delivered()
		if reqs != failures+1 || delivered["user1@example.com"] != 1 {
			t.Errorf("server got %d requests and delivered %v; want %d requests, one delivery", reqs, delivered, failures+1)
		}
		if row := onlyMessage(t, storage.New(db)); row.State != storage.OutboxSent || row.Attempts != failures+1 || row.LastError != "" {
			t.Errorf("final state %s, attempts %d, last_error %v", row.State, row.Attempts, row.LastError)
		}
		st, err := o.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st != (Stats{Sent: 1, Retried: failures}) {
			t.Errorf("Stats = %+v, want sent 1, retried %d, nothing pending", st, failures)
		}
	})
}

func TestPermanentFailure(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		c := newClock()
		sg := newFakeSendGrid(t, always(http.StatusBadRequest))
		o := NewOutbox(storage.New(db), sendGridSender(sg), Options{Now: c.Now, Logger: discardLogger()})
		if err := o.Enqueue(context.Background(), testMessage(1)); err != nil {
			t.Fatal(err)
		}
		mustDeliver(t, o, 0)
		row := onlyMessage(t, storage.New(db))
		if row.State != storage.OutboxFailed || row.FailedAt == nil || row.Attempts != 1 {
			t.Fatalf("after a 400: state %s, failed_at %v, attempts %d; want failed after 1", row.State, row.FailedAt, row.Attempts)
		}
		if row.LastError == "" || !strings.Contains(row.LastError, "400") {
			t.Errorf("last_error = %v", row.LastError)
		}
		for range 5 {
			c.Advance(2 * time.Hour)
			mustDeliver(t, o, 0)
		}
		if reqs, _ := sg.Requests(), sg.Delivered(); reqs != 1 {
			t.Errorf("a permanently failed message was retried: %d requests", reqs)
		}
		st, _ := o.Stats(context.Background())
		if st.Failed != 1 || st.Pending != 0 || st.Retried != 0 {
			t.Errorf("Stats = %+v", st)
		}
	})
}

func TestMaxAge(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		c := newClock()
		var sends atomic.Int32
		down := senderFunc(func(context.Context, Message) error {
			sends.Add(1)
			return errors.New("connection refused")
		})
		o := NewOutbox(storage.New(db), down, Options{Now: c.Now, Logger: discardLogger(),
			MinBackoff: 10 * time.Minute, MaxBackoff: 10 * time.Minute, MaxAge: time.Hour})
		if err := o.Enqueue(context.Background(), testMessage(1)); err != nil {
			t.Fatal(err)
		}
		start := c.Now()
		for i := 0; ; i++ {
			if i > 50 {
				t.Fatal("never gave up")
			}
			mustDeliver(t, o, 0)
			row := onlyMessage(t, storage.New(db))
			if row.State == storage.OutboxFailed {
				if age := c.Now().Sub(start); age < time.Hour {
					t.Errorf("gave up at age %v, before MaxAge", age)
				}
				if row.FailedAt == nil {
					t.Error("failed_at not set")
				}
				break
			}
			if c.Now().Sub(start) >= time.Hour {
				t.Fatalf("still %s at age %v, past MaxAge", row.State, c.Now().Sub(start))
			}
			c.Set(row.NextAttemptAt)
		}
		n := sends.Load()
		c.Advance(time.Hour)
		mustDeliver(t, o, 0)
		if sends.Load() != n {
			t.Error("a message that was given up on was sent again")
		}
	})
}

// TestRestart: a message enqueued by one process is delivered by another
// Outbox (a new process) on the same database.
func TestRestart(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		c := newClock()
		sg := newFakeSendGrid(t, always(http.StatusAccepted))
		first := NewOutbox(storage.New(db), sendGridSender(sg), Options{Now: c.Now, Logger: discardLogger()})
		if err := first.Enqueue(context.Background(), testMessage(1)); err != nil {
			t.Fatal(err)
		}
		// first never runs a pass: the process ends here.
		second := NewOutbox(storage.New(db), sendGridSender(sg), Options{Now: c.Now, Logger: discardLogger()})
		mustDeliver(t, second, 1)
		if _, d := sg.Requests(), sg.Delivered(); d["user1@example.com"] != 1 {
			t.Errorf("delivered %v", d)
		}
	})
}

// dieWhileDelivering runs one pass of o on its own goroutine and returns
// once that goroutine has ended; o's sender ends it with runtime.Goexit, so
// nothing after the send runs, as if the process had died there.
func dieWhileDelivering(t *testing.T, o *Outbox) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.DeliverDue(context.Background())
		t.Error("DeliverDue returned; the sender should have ended its goroutine")
	}()
	<-done
}

// TestDeadWorker: a process claims a message and dies, before or after
// sending it. The lease keeps other processes off the message until it
// expires; then another delivers it. Dying after the send means the message
// goes out twice: at least once, never lost.
func TestDeadWorker(t *testing.T) {
	tests := []struct {
		name          string
		sendBeforeDie bool
		wantDelivered int
	}{
		{"dies before sending", false, 1},
		{"dies after sending", true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			databasetest.Each(t, func(t *testing.T, db *database.DB) {
				c := newClock()
				sg := newFakeSendGrid(t, always(http.StatusAccepted))
				lease := time.Minute
				good := sendGridSender(sg)
				dying := NewOutbox(storage.New(db), senderFunc(func(ctx context.Context, m Message) error {
					if tt.sendBeforeDie {
						if err := good.Send(ctx, m); err != nil {
							t.Error(err)
						}
					}
					runtime.Goexit()
					return nil
				}), Options{Now: c.Now, Logger: discardLogger(), Lease: lease, Owner: "dying"})
				if err := dying.Enqueue(context.Background(), testMessage(1)); err != nil {
					t.Fatal(err)
				}
				dieWhileDelivering(t, dying)

				row := onlyMessage(t, storage.New(db))
				if row.LeaseOwner == "" || row.LeaseOwner != "dying" || row.State != storage.OutboxPending {
					t.Fatalf("after the crash: owner %v, state %s; want leased by the dead worker", row.LeaseOwner, row.State)
				}
				other := NewOutbox(storage.New(db), sendGridSender(sg), Options{Now: c.Now, Logger: discardLogger(), Lease: lease, Owner: "other"})
				mustDeliver(t, other, 0) // the lease still holds
				c.Advance(lease - time.Microsecond)
				mustDeliver(t, other, 0)
				c.Advance(time.Microsecond)
				mustDeliver(t, other, 1)

				if _, d := sg.Requests(), sg.Delivered(); d["user1@example.com"] != tt.wantDelivered {
					t.Errorf("delivered %d times, want %d", d["user1@example.com"], tt.wantDelivered)
				}
				row = onlyMessage(t, storage.New(db))
				if row.State != storage.OutboxSent || row.Attempts != 2 {
					t.Errorf("state %s, attempts %d; want sent on attempt 2", row.State, row.Attempts)
				}
			})
		})
	}
}

// TestLostLeaseDoesNotOverwrite: a worker whose lease expired and was taken
// over must not overwrite the new holder's state with its late failure.
func TestLostLeaseDoesNotOverwrite(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		c := newClock()
		lease := time.Minute
		sg := newFakeSendGrid(t, always(http.StatusAccepted))
		var slow *Outbox
		slow = NewOutbox(storage.New(db), senderFunc(func(ctx context.Context, m Message) error {
			// While this send hangs, the lease expires and another
			// worker delivers the message.
			c.Advance(lease)
			other := NewOutbox(storage.New(db), sendGridSender(sg), Options{Now: c.Now, Logger: discardLogger(), Lease: lease, Owner: "other"})
			mustDeliver(t, other, 1)
			return fmt.Errorf("%w: late rejection", ErrPermanent)
		}), Options{Now: c.Now, Logger: discardLogger(), Lease: lease, Owner: "slow"})
		if err := slow.Enqueue(ctx, testMessage(1)); err != nil {
			t.Fatal(err)
		}
		mustDeliver(t, slow, 0)
		if row := onlyMessage(t, storage.New(db)); row.State != storage.OutboxSent {
			t.Errorf("state %s: the late failure overwrote the delivery", row.State)
		}
	})
}

// deadlockingStore is the outbox table whose settling updates (sent, retry,
// failed) lose the first losses times to a deadlock, as MySQL reports one
// when another worker's claim of the same row takes its locks the other
// way round.
type deadlockingStore struct {
	*storage.Store
	losses atomic.Int32 // settling updates still to lose
	calls  atomic.Int32 // settling updates tried
}

func (s *deadlockingStore) lose() error {
	s.calls.Add(1)
	if s.losses.Add(-1) >= 0 {
		return fmt.Errorf("%w: Error 1213 (40001): Deadlock found when trying to get lock; try restarting transaction", storage.ErrRetryable)
	}
	return nil
}

func (s *deadlockingStore) MarkOutboxMessageSent(ctx context.Context, id int64, now time.Time) (bool, error) {
	if err := s.lose(); err != nil {
		return false, err
	}
	return s.Store.MarkOutboxMessageSent(ctx, id, now)
}

func (s *deadlockingStore) RetryOutboxMessage(ctx context.Context, id int64, owner string, attempt int, next time.Time, lastError string) (bool, error) {
	if err := s.lose(); err != nil {
		return false, err
	}
	return s.Store.RetryOutboxMessage(ctx, id, owner, attempt, next, lastError)
}

func (s *deadlockingStore) FailOutboxMessage(ctx context.Context, id int64, owner string, attempt int, now time.Time, lastError string) (bool, error) {
	if err := s.lose(); err != nil {
		return false, err
	}
	return s.Store.FailOutboxMessage(ctx, id, owner, attempt, now, lastError)
}

// TestSettleRetriesDeadlockVictims: a settling update the database rolled
// back as a deadlock's victim is run again, so a sent message is recorded
// sent (not mailed again when its lease expires) and a failed attempt is
// recorded; after settleAttempts losses the outbox gives up and leaves the
// message to its lease.
func TestSettleRetriesDeadlockVictims(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int   // SendGrid's answer
		losses int32 // deadlocks before the update goes through
		want   storage.OutboxState
		leased bool // still leased after the pass: the settle was given up
	}{
		{"sent", http.StatusAccepted, settleAttempts - 1, storage.OutboxSent, false},
		{"retry", http.StatusServiceUnavailable, settleAttempts - 1, storage.OutboxPending, false},
		{"failed", http.StatusBadRequest, settleAttempts - 1, storage.OutboxFailed, false},
		{"sent, every attempt lost", http.StatusAccepted, settleAttempts, storage.OutboxPending, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			databasetest.Each(t, func(t *testing.T, db *database.DB) {
				c := newClock()
				sg := newFakeSendGrid(t, always(tc.status))
				store := &deadlockingStore{Store: storage.New(db)}
				store.losses.Store(tc.losses)
				o := NewOutbox(store, sendGridSender(sg), Options{Now: c.Now, Logger: discardLogger()})
				if err := o.Enqueue(context.Background(), testMessage(1)); err != nil {
					t.Fatal(err)
				}
				if _, err := o.DeliverDue(context.Background()); err != nil {
					t.Fatalf("DeliverDue: %v", err)
				}
				if got, want := store.calls.Load(), min(tc.losses+1, settleAttempts); got != want {
					t.Errorf("settling update tried %d times, want %d", got, want)
				}
				row := onlyMessage(t, storage.New(db))
				if row.State != tc.want || (row.LeaseOwner != "") != tc.leased {
					t.Errorf("state %s, lease owner %q; want %s, leased %v", row.State, row.LeaseOwner, tc.want, tc.leased)
				}
				if tc.want == storage.OutboxPending && !tc.leased && !row.NextAttemptAt.After(c.Now()) {
					t.Errorf("retry not scheduled: next attempt %v, now %v", row.NextAttemptAt, c.Now())
				}
				if reqs := sg.Requests(); reqs != 1 {
					t.Errorf("server got %d requests, want 1", reqs)
				}
			})
		})
	}
}

// shutdownDuringClaim is the outbox table whose claim commits while the
// server shuts down: it ends the worker's context (stop) as the update
// runs, then answers as a driver does once its context has ended, with the
// cancellation instead of the claim's result.
type shutdownDuringClaim struct {
	*storage.Store
	stop func()
}

func (s *shutdownDuringClaim) ClaimOutboxMessage(ctx context.Context, id int64, attempts int, owner string, now, leaseUntil time.Time) (bool, error) {
	ok, err := s.Store.ClaimOutboxMessage(context.WithoutCancel(ctx), id, attempts, owner, now, leaseUntil)
	s.stop()
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	return ok, err
}

// TestShutdownDuringClaim: a shutdown that arrives while a claim runs does
// not leave the message leased with nothing sent (a restarted server would
// wait out the lease): the claimed message is sent and recorded.
func TestShutdownDuringClaim(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		c := newClock()
		sg := newFakeSendGrid(t, always(http.StatusAccepted))
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		o := NewOutbox(&shutdownDuringClaim{Store: storage.New(db), stop: stop}, sendGridSender(sg), Options{Now: c.Now, Logger: discardLogger()})
		if err := o.Enqueue(context.Background(), testMessage(1)); err != nil {
			t.Fatal(err)
		}
		if sent, err := o.DeliverDue(ctx); sent != 1 || err != nil {
			t.Fatalf("DeliverDue = %d, %v; want the claimed message sent", sent, err)
		}
		row := onlyMessage(t, storage.New(db))
		if row.State != storage.OutboxSent || row.LeaseOwner != "" {
			t.Errorf("state %s, lease owner %q; want sent, not leased", row.State, row.LeaseOwner)
		}
		if reqs := sg.Requests(); reqs != 1 {
			t.Errorf("server got %d requests, want 1", reqs)
		}
	})
}

// TestConcurrentWorkers runs two Outboxes, each on its own connection pool
// (two processes), delivering 50 messages from several goroutines at once.
// Every message must reach the server exactly once.
func TestConcurrentWorkers(t *testing.T) {
	for _, e := range databasetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			url := e.NewURL(t)
			db1 := databasetest.Open(t, url)
			db2 := databasetest.Open(t, url)
			ctx := context.Background()
			c := newClock()
			sg := newFakeSendGrid(t, always(http.StatusAccepted))
			const messages = 50
			opts := Options{Now: c.Now, Logger: discardLogger(), BatchSize: 7}
			o1 := NewOutbox(storage.New(db1), sendGridSender(sg), opts)
			o2 := NewOutbox(storage.New(db2), sendGridSender(sg), opts)
			for i := range messages {
				if err := o1.Enqueue(ctx, testMessage(i)); err != nil {
					t.Fatal(err)
				}
			}

			var sent atomic.Int64
			var wg sync.WaitGroup
			for w := range 6 {
				o := []*Outbox{o1, o2}[w%2]
				wg.Go(func() {
					for i := 0; i < 100 && sent.Load() < messages; i++ {
						n, err := o.DeliverDue(ctx)
						if err != nil {
							t.Error(err)
							return
						}
						sent.Add(int64(n))
					}
				})
			}
			wg.Wait()

			if got := sent.Load(); got != messages {
				t.Errorf("DeliverDue reported %d sent, want %d", got, messages)
			}
			reqs, delivered := sg.Requests(), sg.Delivered()
			if reqs != messages {
				t.Errorf("server got %d requests for %d messages", reqs, messages)
			}
			for i := range messages {
				if n := delivered[testMessage(i).To]; n != 1 {
					t.Errorf("%s delivered %d times", testMessage(i).To, n)
				}
			}
			all, err := storage.New(db1).OutboxMessages(ctx)
			pending := 0
			for _, m := range all {
				if m.State != storage.OutboxSent {
					pending++
				}
			}
			if err != nil || pending != 0 {
				t.Errorf("%d messages not marked sent (%v)", pending, err)
			}
			s1, _ := o1.Stats(ctx)
			s2, _ := o2.Stats(ctx)
			if s1.Sent+s2.Sent != messages {
				t.Errorf("Stats sent %d + %d, want %d", s1.Sent, s2.Sent, messages)
			}
		})
	}
}

func TestEnqueueInTransaction(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		c := newClock()
		sg := newFakeSendGrid(t, always(http.StatusAccepted))
		o := NewOutbox(storage.New(db), sendGridSender(sg), Options{Now: c.Now, Logger: discardLogger()})

		errAbort := errors.New("abort")
		err := storage.New(db).InTx(ctx, func(ctx context.Context) error {
			if err := o.Enqueue(ctx, testMessage(1)); err != nil {
				return err
			}
			if len(o.wake) != 0 {
				t.Error("the worker was woken before the transaction committed")
			}
			return errAbort
		})
		if !errors.Is(err, errAbort) {
			t.Fatalf("InTx = %v", err)
		}
		if len(o.wake) != 0 {
			t.Error("the worker was woken by a rolled-back transaction")
		}
		c.Advance(time.Hour)
		mustDeliver(t, o, 0)
		if ms, _ := storage.New(db).OutboxMessages(ctx); len(ms) != 0 {
			t.Errorf("%d messages stored by a rolled-back transaction", len(ms))
		}

		err = storage.New(db).InTx(ctx, func(ctx context.Context) error {
			return o.Enqueue(ctx, testMessage(2))
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(o.wake) != 1 {
			t.Error("the worker was not woken when the transaction committed")
		}
		mustDeliver(t, o, 1)
		if reqs, d := sg.Requests(), sg.Delivered(); reqs != 1 || d["user2@example.com"] != 1 {
			t.Errorf("server got %d requests, delivered %v; want only the committed message", reqs, d)
		}
	})
}

// TestRun drives the real worker loop: with a poll interval far longer than
// the test, messages go out only because Enqueue (or the commit of its
// transaction) wakes the worker.
func TestRun(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		got := make(chan string, 10)
		sender := senderFunc(func(_ context.Context, m Message) error {
			got <- m.To
			return nil
		})
		o := NewOutbox(storage.New(db), sender, Options{PollInterval: time.Hour, Logger: discardLogger()})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { o.Run(ctx); close(done) }()

		expect := func(to string) {
			t.Helper()
			select {
			case m := <-got:
				if m != to {
					t.Errorf("sent to %s, want %s", m, to)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("%s was not delivered", to)
			}
		}
		if err := o.Enqueue(context.Background(), testMessage(1)); err != nil {
			t.Fatal(err)
		}
		expect("user1@example.com")
		err := storage.New(db).InTx(context.Background(), func(ctx context.Context) error {
			return o.Enqueue(ctx, testMessage(2))
		})
		if err != nil {
			t.Fatal(err)
		}
		expect("user2@example.com")

		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after cancellation")
		}
	})
}

func TestPurgeSent(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		c := newClock()
		fail := false
		sender := senderFunc(func(context.Context, Message) error {
			if fail {
				return ErrPermanent
			}
			return nil
		})
		o := NewOutbox(storage.New(db), sender, Options{Now: c.Now, Logger: discardLogger()})
		enqueue := func(i int) {
			if err := o.Enqueue(ctx, testMessage(i)); err != nil {
				t.Fatal(err)
			}
		}
		enqueue(1) // sent, 8 days old at the end: purged
		mustDeliver(t, o, 1)
		fail = true
		enqueue(2) // failed, 8 days old: kept
		mustDeliver(t, o, 0)
		fail = false
		c.Advance(2 * 24 * time.Hour)
		enqueue(3) // sent, 6 days old: kept
		mustDeliver(t, o, 1)
		c.Advance(6 * 24 * time.Hour)

		n, err := o.PurgeSent(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("purged %d, want 1", n)
		}
		left, err := storage.New(db).OutboxMessages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var recipients []string
		for _, m := range left {
			recipients = append(recipients, m.Recipient)
		}
		if strings.Join(recipients, ",") != "user2@example.com,user3@example.com" {
			t.Errorf("left %v, want the failed message and the recent sent one", recipients)
		}
	})
}

func TestStats(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		c := newClock()
		o := NewOutbox(storage.New(db), senderFunc(func(context.Context, Message) error { return errors.New("down") }),
			Options{Now: c.Now, Logger: discardLogger()})
		st, err := o.Stats(ctx)
		if err != nil || st != (Stats{}) {
			t.Fatalf("empty outbox: %+v, %v", st, err)
		}
		for i := range 3 {
			if err := o.Enqueue(ctx, testMessage(i)); err != nil {
				t.Fatal(err)
			}
			c.Advance(time.Minute)
		}
		c.Advance(7 * time.Minute) // the first message is now 10 minutes old
		mustDeliver(t, o, 0)
		st, err = o.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending != 3 || st.OldestPending != 10*time.Minute || st.Retried != 3 || st.Sent != 0 || st.Failed != 0 {
			t.Errorf("Stats = %+v; want 3 pending, the oldest 10m, 3 retried", st)
		}
	})
}

func TestBackoff(t *testing.T) {
	const minWait, maxWait = 5 * time.Second, time.Hour
	tests := []struct {
		attempt int
		full    time.Duration
	}{
		{1, 5 * time.Second},
		{2, 10 * time.Second},
		{3, 20 * time.Second},
		{8, 640 * time.Second},
		{10, 2560 * time.Second},
		{11, time.Hour}, // 5120s capped
		{64, time.Hour},
		{1000, time.Hour},
	}
	for _, tt := range tests {
		for range 100 {
			if got := backoff(tt.attempt, minWait, maxWait); got < tt.full/2 || got > tt.full {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tt.attempt, got, tt.full/2, tt.full)
			}
		}
	}
	distinct := map[time.Duration]bool{}
	for range 20 {
		distinct[backoff(5, minWait, maxWait)] = true
	}
	if len(distinct) < 2 {
		t.Error("backoff has no jitter")
	}
}

// TestLogsNeverCarryContents runs a flow with temporary and permanent
// failures, a takeover and a delivery, and checks that nothing the outbox
// logged contains a message's subject or bodies.
func TestLogsNeverCarryContents(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		var buf bytes.Buffer
		var mu sync.Mutex
		logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c := newClock()
		sg := newFakeSendGrid(t, func(n int) int {
			switch n {
			case 1, 2:
				return http.StatusServiceUnavailable
			case 3:
				return http.StatusBadRequest
			default:
				return http.StatusAccepted
			}
		})
		o := NewOutbox(storage.New(db), sendGridSender(sg), Options{Now: c.Now, Logger: logger, Owner: "a"})
		secrets := Message{To: "carol@example.com", Subject: "subject-SECRET-4711", Text: "text-SECRET-31415926", HTML: "<p>html-SECRET-27182818</p>"}
		if err := o.Enqueue(ctx, secrets); err != nil {
			t.Fatal(err)
		}
		if err := o.Enqueue(ctx, Message{To: "dave@example.com", Subject: "subject-SECRET-2", Text: "text-SECRET-2"}); err != nil {
			t.Fatal(err)
		}
		for range 6 {
			if _, err := o.DeliverDue(ctx); err != nil {
				t.Fatal(err)
			}
			c.Advance(time.Hour)
		}
		// A takeover of an expired lease logs too.
		if err := o.Enqueue(ctx, Message{To: "erin@example.com", Subject: "subject-SECRET-3", Text: "text-SECRET-3"}); err != nil {
			t.Fatal(err)
		}
		// A worker claims it and dies; its lease expires.
		dead := NewOutbox(storage.New(db), nil, Options{Now: c.Now, Logger: discardLogger(), Owner: "dead"})
		due, err := storage.New(db).DueOutboxMessages(ctx, dead.now(), 10)
		if err != nil || len(due) != 1 || due[0].Recipient != "erin@example.com" {
			t.Fatalf("due = %v, %v; want erin's message alone", due, err)
		}
		if _, ok, err := dead.claim(ctx, due[0]); !ok || err != nil {
			t.Fatalf("the dead worker's claim = %v, %v", ok, err)
		}
		c.Advance(dead.opts.Lease)
		mustDeliver(t, o, 1)

		mu.Lock()
		logs := buf.String()
		mu.Unlock()
		for _, want := range []string{`"message_id"`, `"attempt"`, `"status":503`, `"status":400`, "took over", "mail sent"} {
			if !strings.Contains(logs, want) {
				t.Errorf("the logs lack %s; the test would prove nothing:\n%s", want, logs)
			}
		}
		if strings.Contains(logs, "SECRET") {
			t.Errorf("the logs carry message contents:\n%s", logs)
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
