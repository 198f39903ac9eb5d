package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"idp/storage"
)

// Options tune an Outbox. Zero values take the defaults named beside them.
type Options struct {
	// PollInterval is how often the worker looks for due messages when
	// nothing woke it (default 2s). Enqueue wakes the local worker at once;
	// polling finds messages enqueued by other processes and retries that
	// have come due.
	PollInterval time.Duration
	// Lease is how long a claimed message stays reserved for the worker
	// that claimed it (default 1m). A worker that dies holding a lease
	// delays that message by at most this long. Each send is given half
	// the lease, so a slow send does not outlive its claim.
	Lease time.Duration
	// MinBackoff and MaxBackoff bound the wait before the next attempt
	// after a temporary failure: it doubles from MinBackoff (default 5s)
	// per attempt, up to MaxBackoff (default 1h), with jitter so that a
	// burst of failures does not retry in lockstep.
	MinBackoff, MaxBackoff time.Duration
	// MaxAge is how long after enqueueing the outbox keeps retrying a
	// message before giving up on it (default 72h).
	MaxAge time.Duration
	// BatchSize is how many due messages one pass considers (default 20).
	BatchSize int
	// Retention is how long sent messages are kept before the worker
	// deletes them (default 7 days).
	Retention time.Duration
	// Now is the clock (default time.Now); tests pass a fake one.
	Now func() time.Time
	// Logger receives the outbox's logs (default slog.Default()).
	Logger *slog.Logger
	// Owner names this process in the lease_owner column (default
	// hostname, pid and a random suffix). Processes sharing a database
	// need distinct owners.
	Owner string
}

const (
	maxOwnerLen  = 64  // the lease_owner column
	maxErrorLen  = 255 // the last_error column
	purgeEvery   = time.Hour
	settleWithin = 30 * time.Second
)

func (o Options) withDefaults() Options {
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.Lease <= 0 {
		o.Lease = time.Minute
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 5 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Hour
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 72 * time.Hour
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 20
	}
	if o.Retention <= 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Owner == "" {
		o.Owner = defaultOwner()
	}
	o.Owner = truncate(o.Owner, maxOwnerLen)
	return o
}

// defaultOwner is unique per process: the host and pid tell an operator
// which process holds a lease, the random part tells apart two processes
// that reuse a pid (containers often all run as pid 1).
func defaultOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	suffix := "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
	return truncate(host, maxOwnerLen-len(suffix)) + suffix
}

// Storage is the outbox table as an Outbox uses it; *storage.Store
// implements it. The claim and the settling updates are conditional and
// report whether they changed the row: that is how workers on one table
// share it.
type Storage interface {
	CreateOutboxMessage(ctx context.Context, m *storage.OutboxMessage, committed func()) (int64, error)
	DueOutboxMessages(ctx context.Context, now time.Time, limit int) ([]*storage.OutboxMessage, error)
	ClaimOutboxMessage(ctx context.Context, id int64, attempts int, owner string, now, leaseUntil time.Time) (bool, error)
	MarkOutboxMessageSent(ctx context.Context, id int64, now time.Time) (bool, error)
	RetryOutboxMessage(ctx context.Context, id int64, owner string, attempt int, next time.Time, lastError string) (bool, error)
	FailOutboxMessage(ctx context.Context, id int64, owner string, attempt int, now time.Time, lastError string) (bool, error)
	DeleteSentOutboxMessages(ctx context.Context, before time.Time) (int, error)
	PendingOutboxMessages(ctx context.Context) (n int, oldest time.Time, err error)
}

// Outbox stores messages in the database and delivers them through a Sender,
// at least once each: a message leaves the outbox only when the Sender has
// accepted it (or it failed for good), so a crash at any point leads to a
// resend, never to a lost message.
type Outbox struct {
	db     Storage
	sender Sender
	opts   Options
	log    *slog.Logger

	// wake tells the local worker that a message was committed. It has
	// room for one signal: one pending wake-up covers any number of
	// messages.
	wake chan struct{}

	sent, failed, retried atomic.Int64
}

// NewOutbox returns an outbox that stores messages through db and delivers
// them with sender once Run is started.
func NewOutbox(db Storage, sender Sender, opts Options) *Outbox {
	opts = opts.withDefaults()
	return &Outbox{
		db:     db,
		sender: sender,
		opts:   opts,
		log:    opts.Logger.With("component", "mail", "owner", opts.Owner),
		wake:   make(chan struct{}, 1),
	}
}

// now is the clock in UTC at microsecond precision: UTC because SQLite
// compares the stored times as text, microseconds because MySQL's
// datetime(6) keeps no more and would round what it gets. Every time stored
// is truncated alike, so that a time read back compares equal on both.
func (o *Outbox) now() time.Time { return o.opts.Now().UTC().Truncate(time.Microsecond) }

// Enqueue stores m for delivery. It runs on the transaction ctx carries
// (the storage joins it), so a message and the state change it reports commit or
// roll back together; the local worker is woken when that transaction
// commits (at once without a transaction), so delivery does not wait for the
// next poll.
func (o *Outbox) Enqueue(ctx context.Context, m Message) error {
	if err := m.validate(); err != nil {
		return err
	}
	now := o.now()
	// The worker is woken once the message is committed: waking it before
	// the commit would have it look, find nothing yet, and sleep a whole
	// poll interval.
	id, err := o.db.CreateOutboxMessage(ctx, &storage.OutboxMessage{
		Recipient:     m.To,
		UserID:        m.UserID,
		Subject:       m.Subject,
		Text:          m.Text,
		HTML:          m.HTML,
		CreatedAt:     now,
		NextAttemptAt: now,
	}, o.notify)
	if err != nil {
		return fmt.Errorf("mail: enqueue: %w", err)
	}
	o.log.DebugContext(ctx, "mail enqueued", "message_id", id)
	return nil
}

func (o *Outbox) notify() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Run delivers messages until ctx ends. It delivers
// whatever is due, then waits for Enqueue to wake it or PollInterval to pass;
// once an hour it deletes sent messages older than Retention. Errors are
// logged and retried on the next pass. Any number of processes may run Run on
// one database.
func (o *Outbox) Run(ctx context.Context) {
	o.log.InfoContext(ctx, "mail outbox worker started")
	defer o.log.InfoContext(ctx, "mail outbox worker stopped")
	// Since Go 1.23 Reset and Stop leave no stale tick in the channel, so
	// the timer can be reused without draining it.
	timer := time.NewTimer(o.opts.PollInterval)
	defer timer.Stop()
	var lastPurge time.Time
	for {
		if now := o.now(); lastPurge.IsZero() || now.Sub(lastPurge) >= purgeEvery {
			if _, err := o.PurgeSent(ctx); err != nil {
				if ctx.Err() == nil {
					o.log.WarnContext(ctx, "mail outbox: purge failed", "error", err)
				}
			} else {
				lastPurge = now
			}
		}

		_, full, err := o.deliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			o.log.WarnContext(ctx, "mail outbox: delivery pass failed", "error", err)
		}
		if ctx.Err() != nil {
			return
		}
		if full && err == nil {
			continue // more may be due right now
		}

		timer.Reset(o.opts.PollInterval)
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		case <-timer.C:
		}
	}
}

// DeliverDue runs one pass: it claims the messages that are due, up to
// BatchSize, and sends each. It returns how many were sent.
func (o *Outbox) DeliverDue(ctx context.Context) (int, error) {
	sent, _, err := o.deliverDue(ctx)
	return sent, err
}

// deliverDue is DeliverDue that also tells whether the pass found a full
// batch, in which case more messages may be due.
func (o *Outbox) deliverDue(ctx context.Context) (sent int, full bool, err error) {
	now := o.now()
	// A plain read: which rows are worth trying to claim. The claim itself
	// is the conditional UPDATE in claim, so two workers reading the same
	// rows here is harmless.
	due, err := o.db.DueOutboxMessages(ctx, now, o.opts.BatchSize)
	if err != nil {
		return 0, false, fmt.Errorf("mail: find due messages: %w", err)
	}
	for _, m := range due {
		if err := ctx.Err(); err != nil {
			return sent, false, err
		}
		attempt, ok, err := o.claim(ctx, m)
		if err != nil {
			return sent, false, err
		}
		if !ok {
			continue // another worker got it first
		}
		if o.deliver(ctx, m, attempt) {
			sent++
		}
	}
	return sent, len(due) == o.opts.BatchSize, nil
}

// claim reserves m for this worker for one Lease. It is a single conditional
// UPDATE: it changes the row only if the row is still as read (same attempts,
// still pending, due, unleased or lease expired), so of several workers
// claiming the same row exactly one sees an affected row. It reports the
// attempt number the claim gave the message.
//
// The claim runs to its end even when ctx ends meanwhile (shutdown), as the
// send and its record do: the database may commit the update while the
// driver reports only the cancellation, and the message would then stay
// leased for a Lease with nothing sent. The caller checks ctx before it.
func (o *Outbox) claim(ctx context.Context, m *storage.OutboxMessage) (attempt int, ok bool, err error) {
	now := o.now()
	claimCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleWithin)
	defer cancel()
	claimed, err := o.db.ClaimOutboxMessage(claimCtx, m.ID, m.Attempts, o.opts.Owner, now, now.Add(o.opts.Lease).Truncate(time.Microsecond))
	switch {
	case errors.Is(err, storage.ErrRetryable):
		// Lost a lock race with another worker: leave the message to it
		// or to the next pass.
		o.log.DebugContext(ctx, "mail outbox: claim contended", "message_id", m.ID, "error", err)
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("mail: claim message %d: %w", m.ID, err)
	}
	if !claimed {
		return 0, false, nil
	}
	if m.LeaseOwner != "" {
		// Its worker died or stalled after claiming it: the message
		// may or may not have gone out already.
		o.log.InfoContext(ctx, "mail outbox: took over an expired lease",
			"message_id", m.ID, "attempt", m.Attempts+1, "previous_owner", m.LeaseOwner)
	}
	return m.Attempts + 1, true, nil
}

// deliver sends a claimed message and records the outcome. It reports
// whether the message was sent.
//
// The message in hand is finished even when ctx is cancelled (shutdown):
// abandoning a send half-way could mail it twice, and abandoning the record
// of its outcome leaves the message leased until the lease expires. Both are
// bounded by timeouts instead.
func (o *Outbox) deliver(ctx context.Context, m *storage.OutboxMessage, attempt int) bool {
	log := o.log.With("message_id", m.ID, "attempt", attempt)
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.opts.Lease/2)
	defer cancel()
	err := o.sender.Send(sendCtx, Message{To: m.Recipient, Subject: m.Subject, Text: m.Text, HTML: m.HTML})

	settleCtx, cancelSettle := context.WithTimeout(context.WithoutCancel(ctx), settleWithin)
	defer cancelSettle()
	now := o.now()
	if err == nil {
		o.markSent(settleCtx, log, m.ID, now)
		return true
	}

	attrs := errorAttrs(err)
	age := now.Sub(m.CreatedAt)
	switch {
	case errors.Is(err, ErrPermanent):
		log.ErrorContext(ctx, "mail outbox: message rejected, giving up", attrs...)
		o.markFailed(settleCtx, log, m.ID, attempt, now, err)
	case age >= o.opts.MaxAge:
		log.ErrorContext(ctx, "mail outbox: message too old, giving up",
			append(attrs, "age", age.Round(time.Second).String())...)
		o.markFailed(settleCtx, log, m.ID, attempt, now, err)
	default:
		wait := backoff(attempt, o.opts.MinBackoff, o.opts.MaxBackoff)
		log.WarnContext(ctx, "mail outbox: send failed, will retry",
			append(attrs, "retry_in", wait.String())...)
		o.markRetry(settleCtx, log, m.ID, attempt, now.Add(wait).Truncate(time.Microsecond), err)
	}
	return false
}

// markSent records a sent message and blanks its bodies, which may hold a
// one-time code that nobody needs any more. It does not check the lease: the
// message was sent, whoever holds it now.
func (o *Outbox) markSent(ctx context.Context, log *slog.Logger, id int64, now time.Time) {
	recorded, err := settle(ctx, func() (bool, error) { return o.db.MarkOutboxMessageSent(ctx, id, now) })
	switch {
	case err != nil:
		// The lease will expire and the message go out again: at least
		// once, as promised.
		log.ErrorContext(ctx, "mail outbox: sent but could not record it; it will be sent again", "error", err)
	case !recorded:
		log.WarnContext(ctx, "mail outbox: sent a message another worker had already settled")
	default:
		log.InfoContext(ctx, "mail sent")
	}
	o.sent.Add(1)
}

// markRetry releases the lease and schedules the next attempt, if this
// worker's claim is still the latest (attempts unchanged); otherwise another
// worker has taken the message over and its outcome stands.
func (o *Outbox) markRetry(ctx context.Context, log *slog.Logger, id int64, attempt int, next time.Time, cause error) {
	ok, err := settle(ctx, func() (bool, error) {
		return o.db.RetryOutboxMessage(ctx, id, o.opts.Owner, attempt, next, truncate(cause.Error(), maxErrorLen))
	})
	o.logSettle(ctx, log, ok, err)
	o.retried.Add(1)
}

// markFailed gives up on a message, if this worker's claim is still the
// latest.
func (o *Outbox) markFailed(ctx context.Context, log *slog.Logger, id int64, attempt int, now time.Time, cause error) {
	ok, err := settle(ctx, func() (bool, error) {
		return o.db.FailOutboxMessage(ctx, id, o.opts.Owner, attempt, now, truncate(cause.Error(), maxErrorLen))
	})
	o.logSettle(ctx, log, ok, err)
	o.failed.Add(1)
}

// settleAttempts bounds how often settle runs one update.
const settleAttempts = 4

// settle runs a settling update, and again when the database chose it as a
// deadlock's victim. On MySQL another worker's claim of the same row can
// lock the (state, next_attempt_at) index entry before the row while the
// settle holds the row and needs that entry, which its new state or time
// moves. A settle given up on leaves the message to its lease, and a sent
// message would then go out twice.
func settle(ctx context.Context, update func() (bool, error)) (bool, error) {
	var ok bool
	err := storage.Retry(ctx, settleAttempts, func() (err error) {
		ok, err = update()
		return err
	})
	return ok, err
}

func (o *Outbox) logSettle(ctx context.Context, log *slog.Logger, settled bool, err error) {
	switch {
	case err != nil:
		log.ErrorContext(ctx, "mail outbox: could not record the failed attempt; the lease will expire", "error", err)
	case !settled:
		log.WarnContext(ctx, "mail outbox: lease lost before the failed attempt was recorded")
	}
}

// errorAttrs describes a send error for the log: the status code when the
// sender got one, and the error's text, which senders keep free of message
// contents.
func errorAttrs(err error) []any {
	attrs := []any{"error", truncate(err.Error(), maxErrorLen)}
	if se, ok := errors.AsType[*StatusError](err); ok {
		attrs = append(attrs, "status", se.StatusCode)
	}
	return attrs
}

// backoff is the wait after the attempt-th failed attempt: MinBackoff doubled
// per earlier attempt, capped at MaxBackoff, then "equal jitter": a random
// point in the upper half, so waits still grow from attempt to attempt while
// workers that failed together spread out.
func backoff(attempt int, minWait, maxWait time.Duration) time.Duration {
	d := minWait
	for i := 1; i < attempt; i++ {
		if d > maxWait/2 {
			d = maxWait
			break
		}
		d *= 2
	}
	d = min(d, maxWait)
	half := d / 2
	return d - half + mathrand.N(half+1)
}

// PurgeSent deletes sent messages older than Retention and returns how many.
// Run calls it once an hour. Failed messages are kept for inspection.
func (o *Outbox) PurgeSent(ctx context.Context) (int, error) {
	n, err := o.db.DeleteSentOutboxMessages(ctx, o.now().Add(-o.opts.Retention))
	if err != nil {
		return 0, fmt.Errorf("mail: purge sent messages: %w", err)
	}
	if n > 0 {
		o.log.InfoContext(ctx, "mail outbox: purged sent messages", "count", n)
	}
	return n, nil
}

// Stats describe the outbox for metrics.
type Stats struct {
	// Pending is the number of messages not yet sent nor given up on, in
	// the whole database (all processes).
	Pending int
	// OldestPending is the age of the oldest pending message, zero when
	// none is pending: a growing value means mail is not going out.
	OldestPending time.Duration
	// Sent, Failed and Retried count this Outbox's outcomes since it was
	// created: messages sent, given up on, and attempts that failed and
	// were rescheduled.
	Sent, Failed, Retried int64
}

// Stats reports the outbox's state.
func (o *Outbox) Stats(ctx context.Context) (Stats, error) {
	s := Stats{Sent: o.sent.Load(), Failed: o.failed.Load(), Retried: o.retried.Load()}
	n, oldest, err := o.db.PendingOutboxMessages(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("mail: stats: %w", err)
	}
	s.Pending = n
	if !oldest.IsZero() {
		s.OldestPending = max(0, o.now().Sub(oldest))
	}
	return s, nil
}
