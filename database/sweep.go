package database

import (
	"context"
	"time"
)

// SweepBatch is the most rows one statement of a sweep deletes.
const SweepBatch = 1000

// sweepPause is the rest between two batches of a sweep: room for the
// request path's writes between the sweep's, which matters most on SQLite,
// whose one writer lock every batch takes.
const sweepPause = 5 * time.Millisecond

// DeleteBatches deletes in bounded batches until none is left: batch
// deletes at most limit rows (usually the ids of a query with that limit,
// deleted by id under the same condition, so that a row that stopped
// matching in between stays) and reports how many. A sweep over a million
// expired rows is then a thousand short statements, each holding its
// locks (SQLite's writer lock, InnoDB's row and gap locks) for a moment,
// instead of one statement that holds them for all of it.
func DeleteBatches(ctx context.Context, batch func(ctx context.Context, limit int) (int, error)) (int, error) {
	total := 0
	for {
		n, err := batch(ctx, SweepBatch)
		total += n
		if err != nil || n < SweepBatch {
			return total, err
		}
		t := time.NewTimer(sweepPause)
		select {
		case <-ctx.Done():
			t.Stop()
			return total, ctx.Err()
		case <-t.C:
		}
	}
}
