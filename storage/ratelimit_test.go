package storage

import (
	"context"
	"strconv"
	"testing"
	"time"

	"idp/database"
)

// TestAddToRateLimitWindow: the upsert returns the running count of each
// window, on every engine's branch of the statement.
func TestAddToRateLimitWindow(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		exp := time.Date(2030, 1, 1, 0, 1, 0, 0, time.UTC)
		for i, want := range []int64{3, 6, 9} {
			n, err := s.AddToRateLimitWindow(ctx, "a|k|1", 3, exp)
			if err != nil || n != want {
				t.Fatalf("add %d: %d, %v; want %d", i, n, err, want)
			}
		}
		if n, err := s.AddToRateLimitWindow(ctx, "b|k|1", 1, exp); err != nil || n != 1 {
			t.Fatalf("another window: %d, %v; want 1", n, err)
		}
		if n, err := s.AddToRateLimitWindow(ctx, "a|k|1", 1, exp); err != nil || n != 10 {
			t.Fatalf("back to the first: %d, %v; want 10", n, err)
		}
	})
}

// TestDeleteRateLimitWindowsBefore deletes the expired windows, more than
// one sweep batch of them, and keeps the others.
func TestDeleteRateLimitWindowsBefore(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		expired := database.SweepBatch + 3
		for i := range expired {
			if _, err := s.AddToRateLimitWindow(ctx, "old|"+strconv.Itoa(i), 1, now.Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []string{"live|1", "live|2"} {
			if _, err := s.AddToRateLimitWindow(ctx, id, 1, now); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.DeleteRateLimitWindowsBefore(ctx, now)
		if err != nil || n != expired {
			t.Fatalf("deleted %d, %v; want %d", n, err, expired)
		}
		if left, err := s.db.RateLimitWindow.Query().Count(ctx); err != nil || left != 2 {
			t.Fatalf("%d windows left, %v; want the 2 live ones", left, err)
		}
		// A live window keeps its count.
		if c, err := s.AddToRateLimitWindow(ctx, "live|1", 1, now); err != nil || c != 2 {
			t.Fatalf("live window count %d, %v; want 2", c, err)
		}
	})
}
