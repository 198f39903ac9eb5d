package database

import (
	"context"
	"time"
)

// SweepBatch is the most rows one statement of a sweep deletes.
const SweepBatch = 1000

// sweepPause is the shortest rest between two batches of a sweep: room for
// the request path's writes between the sweep's, which matters most on
// SQLite, whose one writer lock every batch takes.
const sweepPause = 5 * time.Millisecond

// DeleteBatches deletes in bounded batches until none is left: batch
// deletes at most limit rows (usually the ids of a query with that limit,
// deleted by id under the same condition, so that a row that stopped
// matching in between stays) and reports how many. A sweep over a million
// expired rows is then a thousand short statements, each holding its
// locks (SQLite's writer lock, InnoDB's row and gap locks) for a moment,
// instead of one statement that holds them for all of it.
//
// After each batch it rests for as long as the batch took (at least
// sweepPause), so that a sweep has the database for at most half of its
// time. A fixed pause gave it nearly all of it where batches are slow
// (InnoDB with a small buffer pool: 150 ms a batch against a 5 ms pause),
// and the request path's p99 tripled while a million-row pass ran.
func DeleteBatches(ctx context.Context, batch func(ctx context.Context, limit int) (int, error)) (int, error) {
	total := 0
	for {
		start := time.Now()
		n, err := batch(ctx, SweepBatch)
		total += n
		if err != nil || n < SweepBatch {
			return total, err
		}
		t := time.NewTimer(max(sweepPause, time.Since(start)))
		select {
		case <-ctx.Done():
			t.Stop()
			return total, ctx.Err()
		case <-t.C:
		}
	}
}
