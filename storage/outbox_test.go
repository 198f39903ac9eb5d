package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"idp/ent"
	"idp/ent/outboxmessage"
)

var outboxNow = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

func enqueueTestMessage(t *testing.T, s *Store, ctx context.Context, to string, at time.Time, committed func()) int64 {
	t.Helper()
	id, err := s.CreateOutboxMessage(ctx, &OutboxMessage{
		Recipient: to, Subject: "s", Text: "t", HTML: "h", CreatedAt: at, NextAttemptAt: at,
	}, committed)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func outboxMessage(t *testing.T, s *Store, id int64) *OutboxMessage {
	t.Helper()
	ms, err := s.OutboxMessages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("no message %d", id)
	return nil
}

// TestClaimOutboxMessage checks the conditional UPDATE by itself, with the
// row as a worker read it (the snapshot) and the row as it is when the
// claim runs: only a row still unclaimed, pending and due may be claimed.
func TestClaimOutboxMessage(t *testing.T) {
	type row = ent.OutboxMessageUpdateOne
	tests := []struct {
		name   string
		change func(now time.Time, u *row) *row // what happened after the snapshot
		want   bool
	}{
		{"unchanged", func(now time.Time, u *row) *row { return u }, true},
		{"leased by another", func(now time.Time, u *row) *row {
			return u.SetLeaseOwner("other").SetLeaseUntil(now.Add(time.Second))
		}, false},
		{"lease expired", func(now time.Time, u *row) *row {
			return u.SetLeaseOwner("other").SetLeaseUntil(now)
		}, true},
		{"claimed by another", func(now time.Time, u *row) *row { return u.AddAttempts(1) }, false},
		{"not due", func(now time.Time, u *row) *row { return u.SetNextAttemptAt(now.Add(time.Microsecond)) }, false},
		{"sent", func(now time.Time, u *row) *row {
			return u.SetState(outboxmessage.StateSent).SetSentAt(now)
		}, false},
		{"failed", func(now time.Time, u *row) *row {
			return u.SetState(outboxmessage.StateFailed).SetFailedAt(now)
		}, false},
	}
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := enqueueTestMessage(t, s, ctx, "user"+string(rune('a'+i))+"@example.com", outboxNow, nil)
				snap := outboxMessage(t, s, id)
				if err := tt.change(outboxNow, s.db.OutboxMessage.UpdateOneID(id)).Exec(ctx); err != nil {
					t.Fatal(err)
				}
				until := outboxNow.Add(time.Minute)
				ok, err := s.ClaimOutboxMessage(ctx, snap.ID, snap.Attempts, "me", outboxNow, until)
				if err != nil {
					t.Fatal(err)
				}
				if ok != tt.want {
					t.Fatalf("claim = %v, want %v", ok, tt.want)
				}
				after := outboxMessage(t, s, id)
				if ok {
					if after.Attempts != 1 || after.LeaseOwner != "me" || after.LeaseUntil == nil || !after.LeaseUntil.Equal(until) {
						t.Errorf("claimed row: attempts %d, owner %q, until %v", after.Attempts, after.LeaseOwner, after.LeaseUntil)
					}
				} else if after.LeaseOwner == "me" {
					t.Error("a failed claim changed the row")
				}
			})
		}
	})
}

// TestDueOutboxMessages: only pending, due, unleased (or lease expired)
// messages, the longest due first, at most limit.
func TestDueOutboxMessages(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		late := enqueueTestMessage(t, s, ctx, "late@example.com", outboxNow.Add(-time.Minute), nil)
		early := enqueueTestMessage(t, s, ctx, "early@example.com", outboxNow.Add(-time.Hour), nil)
		enqueueTestMessage(t, s, ctx, "future@example.com", outboxNow.Add(time.Second), nil)
		leased := enqueueTestMessage(t, s, ctx, "leased@example.com", outboxNow.Add(-time.Hour), nil)
		if ok, err := s.ClaimOutboxMessage(ctx, leased, 0, "other", outboxNow, outboxNow.Add(time.Minute)); !ok || err != nil {
			t.Fatalf("claim: %v, %v", ok, err)
		}
		sent := enqueueTestMessage(t, s, ctx, "sent@example.com", outboxNow.Add(-time.Hour), nil)
		if ok, err := s.MarkOutboxMessageSent(ctx, sent, outboxNow); !ok || err != nil {
			t.Fatalf("mark sent: %v, %v", ok, err)
		}

		due, err := s.DueOutboxMessages(ctx, outboxNow, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) != 2 || due[0].ID != early || due[1].ID != late {
			t.Fatalf("due = %+v, want early then late", due)
		}
		if due, err := s.DueOutboxMessages(ctx, outboxNow, 1); err != nil || len(due) != 1 || due[0].ID != early {
			t.Fatalf("due with limit 1 = %+v, %v", due, err)
		}
		// The lease expires: the leased message is due again.
		if due, err := s.DueOutboxMessages(ctx, outboxNow.Add(time.Minute), 10); err != nil || len(due) != 4 {
			t.Fatalf("after the lease: %d due, %v; want 4", len(due), err)
		}
	})
}

// TestSettleOutboxMessage: a retry or a failure is recorded only by the
// owner of the latest claim; marking sent blanks the bodies whoever holds
// the message.
func TestSettleOutboxMessage(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		id := enqueueTestMessage(t, s, ctx, "a@example.com", outboxNow, nil)
		until := outboxNow.Add(time.Minute)
		if ok, err := s.ClaimOutboxMessage(ctx, id, 0, "me", outboxNow, until); !ok || err != nil {
			t.Fatalf("claim: %v, %v", ok, err)
		}
		if ok, err := s.RetryOutboxMessage(ctx, id, "other", 1, until, "500"); ok || err != nil {
			t.Fatalf("retry by another owner = %v, %v", ok, err)
		}
		if ok, err := s.FailOutboxMessage(ctx, id, "me", 2, outboxNow, "400"); ok || err != nil {
			t.Fatalf("fail with a stale attempt = %v, %v", ok, err)
		}
		next := outboxNow.Add(time.Hour)
		if ok, err := s.RetryOutboxMessage(ctx, id, "me", 1, next, "500"); !ok || err != nil {
			t.Fatalf("retry = %v, %v", ok, err)
		}
		m := outboxMessage(t, s, id)
		if m.State != OutboxPending || m.LeaseOwner != "" || m.LeaseUntil != nil || !m.NextAttemptAt.Equal(next) || m.LastError != "500" {
			t.Fatalf("after the retry: %+v", m)
		}

		if ok, err := s.ClaimOutboxMessage(ctx, id, 1, "me", next, next.Add(time.Minute)); !ok || err != nil {
			t.Fatalf("second claim: %v, %v", ok, err)
		}
		if ok, err := s.MarkOutboxMessageSent(ctx, id, next); !ok || err != nil {
			t.Fatalf("mark sent = %v, %v", ok, err)
		}
		m = outboxMessage(t, s, id)
		if m.State != OutboxSent || m.SentAt == nil || !m.SentAt.Equal(next) || m.Text != "" || m.HTML != "" ||
			m.LeaseOwner != "" || m.LeaseUntil != nil || m.LastError != "" || m.Attempts != 2 {
			t.Fatalf("after sending: %+v", m)
		}
		if ok, err := s.MarkOutboxMessageSent(ctx, id, next); ok || err != nil {
			t.Fatalf("marking a sent message again = %v, %v", ok, err)
		}

		failed := enqueueTestMessage(t, s, ctx, "b@example.com", outboxNow, nil)
		if ok, err := s.ClaimOutboxMessage(ctx, failed, 0, "me", outboxNow, until); !ok || err != nil {
			t.Fatalf("claim: %v, %v", ok, err)
		}
		if ok, err := s.FailOutboxMessage(ctx, failed, "me", 1, outboxNow, "400"); !ok || err != nil {
			t.Fatalf("fail = %v, %v", ok, err)
		}
		if m := outboxMessage(t, s, failed); m.State != OutboxFailed || m.FailedAt == nil || m.LastError != "400" || m.LeaseOwner != "" {
			t.Fatalf("after failing: %+v", m)
		}
	})
}

// TestCreateOutboxMessageInTx: the message commits with the transaction,
// and committed is called only then.
func TestCreateOutboxMessageInTx(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		calls := 0
		errAbort := errors.New("abort")
		err := s.InTx(ctx, func(ctx context.Context) error {
			enqueueTestMessage(t, s, ctx, "a@example.com", outboxNow, func() { calls++ })
			return errAbort
		})
		if !errors.Is(err, errAbort) || calls != 0 {
			t.Fatalf("rolled back: %v, %d calls", err, calls)
		}
		if ms, _ := s.OutboxMessages(ctx); len(ms) != 0 {
			t.Fatalf("a rolled-back message was stored: %+v", ms)
		}
		if err := s.InTx(ctx, func(ctx context.Context) error {
			enqueueTestMessage(t, s, ctx, "b@example.com", outboxNow, func() { calls++ })
			if calls != 0 {
				t.Error("committed was called before the commit")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if calls != 1 {
			t.Fatalf("committed called %d times after the commit, want 1", calls)
		}
		enqueueTestMessage(t, s, ctx, "c@example.com", outboxNow, func() { calls++ })
		if calls != 2 {
			t.Fatal("committed was not called at once without a transaction")
		}
	})
}

// TestSentPurgeAndPending: the purge deletes only sent messages older than
// the cut-off; the pending count and the oldest pending message ignore
// sent and failed ones.
func TestSentPurgeAndPending(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if n, oldest, err := s.PendingOutboxMessages(ctx); n != 0 || !oldest.IsZero() || err != nil {
			t.Fatalf("empty: %d, %v, %v", n, oldest, err)
		}
		oldSent := enqueueTestMessage(t, s, ctx, "a@example.com", outboxNow.Add(-48*time.Hour), nil)
		newSent := enqueueTestMessage(t, s, ctx, "b@example.com", outboxNow.Add(-time.Hour), nil)
		oldFailed := enqueueTestMessage(t, s, ctx, "c@example.com", outboxNow.Add(-72*time.Hour), nil)
		for _, id := range []int64{oldSent, newSent} {
			if _, err := s.MarkOutboxMessageSent(ctx, id, outboxNow); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.ClaimOutboxMessage(ctx, oldFailed, 0, "me", outboxNow, outboxNow.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FailOutboxMessage(ctx, oldFailed, "me", 1, outboxNow, "400"); err != nil {
			t.Fatal(err)
		}
		pending := enqueueTestMessage(t, s, ctx, "d@example.com", outboxNow.Add(-30*time.Minute), nil)
		enqueueTestMessage(t, s, ctx, "e@example.com", outboxNow.Add(-10*time.Minute), nil)

		if n, oldest, err := s.PendingOutboxMessages(ctx); n != 2 || !oldest.Equal(outboxMessage(t, s, pending).CreatedAt) || err != nil {
			t.Fatalf("pending: %d, %v, %v; want 2, the oldest %v", n, oldest, err, outboxNow.Add(-30*time.Minute))
		}
		n, err := s.DeleteSentOutboxMessages(ctx, outboxNow.Add(-24*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("purge = %d, %v; want 1", n, err)
		}
		ms, _ := s.OutboxMessages(ctx)
		for _, m := range ms {
			if m.ID == oldSent {
				t.Error("the old sent message was kept")
			}
		}
		if len(ms) != 4 {
			t.Errorf("%d messages left, want 4", len(ms))
		}
	})
}
