package picture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"time"

	"idp/storage"
)

// DeletionOptions tune a DeletionQueue. Zero values take the defaults named
// beside them.
type DeletionOptions struct {
	// PollInterval is how often the worker looks for due deletions
	// (default 10s). The request that queues a deletion tries it at once
	// itself (DeleteNow, DeleteOrQueue), so the worker only retries.
	PollInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait before the next attempt
	// after a failure: it doubles from MinBackoff (default 5s) per
	// attempt up to MaxBackoff (default 15m), with jitter. A deletion is
	// never given up: an object left behind would be a picture of an
	// erased account.
	MinBackoff, MaxBackoff time.Duration
	// Claim is how long an attempt reserves its row (default 1m), so that
	// two processes draining one database rarely delete the same object
	// at once (which would still be harmless: Delete is idempotent).
	Claim time.Duration
	// BatchSize is how many due deletions one pass takes (default 20).
	BatchSize int
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// OnDeleted and OnFailed, when set, are told of each object deleted
	// and each failed attempt (for metrics).
	OnDeleted, OnFailed func()
}

func (o DeletionOptions) withDefaults() DeletionOptions {
	if o.PollInterval <= 0 {
		o.PollInterval = 10 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 5 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 15 * time.Minute
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.Claim <= 0 {
		o.Claim = time.Minute
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.OnDeleted == nil {
		o.OnDeleted = func() {}
	}
	if o.OnFailed == nil {
		o.OnFailed = func() {}
	}
	return o
}

// DeletionStorage is the queue's table; *storage.Store implements it.
type DeletionStorage interface {
	QueuePictureDeletion(ctx context.Context, key string, next, now time.Time) error
	PictureDeletionByKey(ctx context.Context, key string) (*storage.PictureDeletion, error)
	DuePictureDeletions(ctx context.Context, now time.Time, limit int) ([]*storage.PictureDeletion, error)
	ClaimPictureDeletion(ctx context.Context, id int64, read, until time.Time) (bool, error)
	ReschedulePictureDeletion(ctx context.Context, id int64, attempts int, next time.Time, lastError string) error
	DeletePictureDeletion(ctx context.Context, id int64) error
	CountPictureDeletions(ctx context.Context) (int, error)
}

// DeletionQueue deletes picture objects that no row names any more, at
// least once each, like the mail outbox delivers: a key is written to the
// queue in the transaction that unlinks the picture, so the deletion
// survives a storage outage and a crash, and leaves the queue only when
// the store has confirmed it.
type DeletionQueue struct {
	db    DeletionStorage
	store Store
	opts  DeletionOptions
	log   *slog.Logger
}

// NewDeletionQueue returns a queue that deletes from store the keys written
// to db, once Run is started (or at once with DeleteNow).
func NewDeletionQueue(db DeletionStorage, store Store, opts DeletionOptions) *DeletionQueue {
	opts = opts.withDefaults()
	return &DeletionQueue{db: db, store: store, opts: opts,
		log: opts.Logger.With("component", "picture deletions")}
}

func (q *DeletionQueue) now() time.Time { return q.opts.Now().UTC().Truncate(time.Microsecond) }

// Enqueue records that key must be deleted, on the transaction ctx carries.
// A key queued already stays queued once. The caller tries the deletion
// itself after the commit (DeleteNow), so the worker's first attempt is due
// only a Claim later: two attempts at once would only race.
func (q *DeletionQueue) Enqueue(ctx context.Context, key string) error {
	if !ValidKey(key) {
		return fmt.Errorf("%w: enqueue deletion of %q", ErrBadKey, key)
	}
	now := q.now()
	if err := q.db.QueuePictureDeletion(ctx, key, now.Add(q.opts.Claim), now); err != nil {
		return fmt.Errorf("picture: enqueue deletion: %w", err)
	}
	return nil
}

// DeleteNow tries the deletion of a queued key at once, as the request that
// queued it returns; a failure leaves it queued for the worker and is
// returned only to be logged.
func (q *DeletionQueue) DeleteNow(ctx context.Context, key string) error {
	row, err := q.db.PictureDeletionByKey(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // done by someone else
	} else if err != nil {
		return fmt.Errorf("picture: read deletion: %w", err)
	}
	_, err = q.attempt(ctx, row)
	return err
}

// DeleteOrQueue deletes key from the store, and when the store fails,
// queues the deletion for the worker: for an object no row names that was
// never queued (a replaced picture, a failed signup's upload).
func (q *DeletionQueue) DeleteOrQueue(ctx context.Context, key string) error {
	err := q.store.Delete(ctx, key)
	if err == nil {
		return nil
	}
	q.opts.OnFailed()
	if qerr := q.Enqueue(context.WithoutCancel(ctx), key); qerr != nil {
		return errors.Join(err, qerr)
	}
	q.log.WarnContext(ctx, "picture deletion failed; queued for retry", "key", key, "err", err)
	return nil
}

// DeleteDue runs one pass over the due deletions and returns how many
// objects it deleted, and whether the pass was full (more may be due).
func (q *DeletionQueue) DeleteDue(ctx context.Context) (deleted int, full bool, err error) {
	rows, err := q.db.DuePictureDeletions(ctx, q.now(), q.opts.BatchSize)
	if err != nil {
		return 0, false, fmt.Errorf("picture: read due deletions: %w", err)
	}
	var errs []error
	for _, row := range rows {
		done, err := q.attempt(ctx, row)
		if err != nil {
			errs = append(errs, err)
		} else if done {
			deleted++
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) > 0 {
		err = fmt.Errorf("picture: %d of %d deletions failed, first: %w", len(errs), len(rows), errs[0])
	}
	return deleted, len(rows) == q.opts.BatchSize, err
}

// attempt claims row (a conditional update on the attempt time read, so
// that of two workers one goes ahead), deletes the object and then the row,
// and reports whether it deleted it; a failure sets the next attempt after
// a backoff.
func (q *DeletionQueue) attempt(ctx context.Context, row *storage.PictureDeletion) (bool, error) {
	now := q.now()
	// The new time must differ from the old: MySQL counts the rows an
	// update changed, not those it matched.
	claimed := now.Add(q.opts.Claim)
	if !claimed.After(row.NextAttemptAt) {
		claimed = row.NextAttemptAt.Add(time.Microsecond)
	}
	ok, err := q.db.ClaimPictureDeletion(ctx, row.ID, row.NextAttemptAt, claimed)
	if errors.Is(err, storage.ErrRetryable) {
		// MySQL rolls back one of two workers' claims on neighbouring rows
		// as a deadlock: the other worker holds this row, or it stays due
		// for the next pass. Neither is a failure to report.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("picture: claim deletion: %w", err)
	}
	if !ok {
		return false, nil // another worker has it
	}
	if derr := q.store.Delete(ctx, row.Key); derr != nil {
		q.opts.OnFailed()
		next := now.Add(backoff(row.Attempts+1, q.opts.MinBackoff, q.opts.MaxBackoff))
		msg := derr.Error()
		if len(msg) > 255 {
			msg = msg[:255]
		}
		if err := q.db.ReschedulePictureDeletion(context.WithoutCancel(ctx), row.ID, row.Attempts+1, next, msg); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return false, errors.Join(derr, fmt.Errorf("picture: reschedule deletion: %w", err))
		}
		return false, derr
	}
	if err := q.db.DeletePictureDeletion(context.WithoutCancel(ctx), row.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		// The object is gone; the row is retried and deletes nothing.
		return false, fmt.Errorf("picture: forget deletion: %w", err)
	}
	q.opts.OnDeleted()
	return true, nil
}

// Pending counts the queued deletions (for metrics and tests).
func (q *DeletionQueue) Pending(ctx context.Context) (int, error) {
	return q.db.CountPictureDeletions(ctx)
}

// Run deletes due objects until ctx ends: whatever is
// due, then it waits PollInterval.
// Failures are logged and retried after their backoff. Any number of
// processes may run it on one database.
func (q *DeletionQueue) Run(ctx context.Context) {
	timer := time.NewTimer(q.opts.PollInterval)
	defer timer.Stop()
	for {
		_, full, err := q.DeleteDue(ctx)
		if err != nil && ctx.Err() == nil {
			q.log.WarnContext(ctx, "picture deletion pass", "err", err)
		}
		if ctx.Err() != nil {
			return
		}
		if full && err == nil {
			continue
		}
		timer.Reset(q.opts.PollInterval)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// backoff is the wait before attempt number attempt (1 is the first
// retry): doubling from minWait, capped at maxWait, with jitter in its
// upper half.
func backoff(attempt int, minWait, maxWait time.Duration) time.Duration {
	d := minWait
	for i := 1; i < attempt && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	half := d / 2
	return d - half + mathrand.N(half+1)
}
