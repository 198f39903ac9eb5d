package database

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestDeleteBatches: batches run while each deletes a full batch, stop at
// the first short one, and stop on an error or an ended context.
func TestDeleteBatches(t *testing.T) {
	left := 2*SweepBatch + 345
	var calls int
	n, err := DeleteBatches(context.Background(), func(_ context.Context, limit int) (int, error) {
		calls++
		d := min(limit, left)
		left -= d
		return d, nil
	})
	if err != nil || n != 2*SweepBatch+345 || left != 0 || calls != 3 {
		t.Errorf("DeleteBatches = %d, %v after %d batches, %d rows left; want all %d in 3 batches", n, err, calls, left, 2*SweepBatch+345)
	}

	boom := errors.New("boom")
	calls = 0
	n, err = DeleteBatches(context.Background(), func(_ context.Context, limit int) (int, error) {
		calls++
		if calls == 2 {
			return 0, boom
		}
		return limit, nil
	})
	if !errors.Is(err, boom) || n != SweepBatch || calls != 2 {
		t.Errorf("DeleteBatches with a failing second batch = %d, %v after %d batches; want %d, boom after 2", n, err, calls, SweepBatch)
	}

	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	_, err = DeleteBatches(ctx, func(_ context.Context, limit int) (int, error) {
		calls++
		cancel()
		return limit, nil
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("DeleteBatches with the context ended = %v after %d batches; want context.Canceled after 1", err, calls)
	}
}

// TestDeleteBatchesRests: after a batch, the next starts no sooner than
// the last took, so that a sweep holds the database at most half the time.
func TestDeleteBatchesRests(t *testing.T) {
	const took = 40 * time.Millisecond
	var ends, starts []time.Time
	left := 3 * SweepBatch
	if _, err := DeleteBatches(context.Background(), func(_ context.Context, limit int) (int, error) {
		starts = append(starts, time.Now())
		time.Sleep(took)
		d := min(limit, left)
		left -= d
		ends = append(ends, time.Now())
		return d, nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(starts); i++ {
		if rest := starts[i].Sub(ends[i-1]); rest < took {
			t.Errorf("rest before batch %d = %v; want at least the %v the batch before took", i+1, rest, took)
		}
	}
}

// TestNextBatch: a batch that held the database over twice sweepBatchTime
// halves the next, one under half of it doubles it, within their bounds.
func TestNextBatch(t *testing.T) {
	for _, tc := range []struct {
		limit int
		took  time.Duration
		want  int
	}{
		{SweepBatch, 3 * sweepBatchTime, SweepBatch / 2},
		{SweepBatch / 2, 3 * sweepBatchTime, SweepBatch / 4},
		{minSweepBatch, time.Second, minSweepBatch},
		{minSweepBatch + 1, time.Second, minSweepBatch},
		{SweepBatch / 4, sweepBatchTime / 4, SweepBatch / 2},
		{SweepBatch, 0, SweepBatch},
		{SweepBatch * 3 / 4, 0, SweepBatch},
		{SweepBatch / 2, sweepBatchTime, SweepBatch / 2},
		{SweepBatch / 2, 2 * sweepBatchTime, SweepBatch / 2},
	} {
		if got := nextBatch(tc.limit, tc.took); got != tc.want {
			t.Errorf("nextBatch(%d, %v) = %d, want %d", tc.limit, tc.took, got, tc.want)
		}
	}
}

// TestDeleteBatchesShrinks: batches slower than twice sweepBatchTime ask
// for half as many rows each time, and the sweep still ends only at a
// short batch.
func TestDeleteBatchesShrinks(t *testing.T) {
	var limits []int
	left := SweepBatch + SweepBatch/2 + SweepBatch/4 + 7
	n, err := DeleteBatches(context.Background(), func(_ context.Context, limit int) (int, error) {
		limits = append(limits, limit)
		time.Sleep(3 * sweepBatchTime)
		d := min(limit, left)
		left -= d
		return d, nil
	})
	want := []int{SweepBatch, SweepBatch / 2, SweepBatch / 4, SweepBatch / 8}
	if err != nil || left != 0 || n != SweepBatch+SweepBatch/2+SweepBatch/4+7 || !slices.Equal(limits, want) {
		t.Errorf("DeleteBatches = %d, %v with limits %v, %d left; want all with limits %v", n, err, limits, left, want)
	}
}
