package database

import (
	"context"
	"time"
)

// SweepBatch is the most rows one statement of a sweep deletes, and the
// first batch's size.
const SweepBatch = 1000

// minSweepBatch is the fewest rows a batch shrinks to.
const minSweepBatch = 50

// sweepBatchTime is how long a batch should hold the database: the request
// path waits behind a batch (its locks, and on InnoDB the page latches of
// its deletes and of the purge after them) for about that long at worst.
const sweepBatchTime = 3 * time.Millisecond

// sweepPause is the shortest rest between two batches of a sweep: room for
// the request path's writes between the sweep's, which matters most on
// SQLite, whose one writer lock every batch takes.
const sweepPause = 5 * time.Millisecond

// DeleteBatches deletes in bounded batches until none is left: batch
// deletes at most limit rows (usually the ids of a query with that limit,
// deleted by id under the same condition, so that a row that stopped
// matching in between stays) and reports how many; fewer than limit ends
// the sweep. A sweep over a million expired rows is then many short
// statements, each holding its locks (SQLite's writer lock, InnoDB's row
// and gap locks) for a moment, instead of one statement that holds them
// for all of it.
//
// The batches are sized to take about sweepBatchTime: one that took over
// twice that halves the next (down to minSweepBatch), one under half of
// it doubles the next (up to SweepBatch). On InnoDB a batch of a thousand
// took 70-150 ms, and userinfo's p99 during a pass tripled: requests
// queued behind each batch for as long as it ran. A batch also takes a
// core from the requests while it runs, so on a small machine a request
// that overlaps it runs up to that much slower: the tail latency follows
// the batch's length, not the sweep's share of the time, hence short
// batches at the price of a longer pass (docs/performance.md has the
// figures). After each batch it rests for as long as the batch took (at
// least sweepPause), so that a sweep has the database for at most half of
// its time.
func DeleteBatches(ctx context.Context, batch func(ctx context.Context, limit int) (int, error)) (int, error) {
	total, limit := 0, SweepBatch
	for {
		start := time.Now()
		n, err := batch(ctx, limit)
		total += n
		if err != nil || n < limit {
			return total, err
		}
		took := time.Since(start)
		limit = nextBatch(limit, took)
		t := time.NewTimer(max(sweepPause, took))
		select {
		case <-ctx.Done():
			t.Stop()
			return total, ctx.Err()
		case <-t.C:
		}
	}
}

// nextBatch is the size of the batch after one of limit rows that took
// took.
func nextBatch(limit int, took time.Duration) int {
	switch {
	case took > 2*sweepBatchTime:
		return max(minSweepBatch, limit/2)
	case took < sweepBatchTime/2:
		return min(SweepBatch, limit*2)
	}
	return limit
}
