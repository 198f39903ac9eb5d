package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPictureDeletionQueue: a key queued twice is one row, in the
// transaction ctx carries; the claim is conditional on the attempt time
// read; a rescheduled deletion records its failure; a forgotten one is gone.
func TestPictureDeletionQueue(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		errAbort := errors.New("abort")
		if err := s.InTx(ctx, func(ctx context.Context) error {
			if err := s.QueuePictureDeletion(ctx, "rolled-back", now, now); err != nil {
				return err
			}
			return errAbort
		}); !errors.Is(err, errAbort) {
			t.Fatal(err)
		}
		if err := s.InTx(ctx, func(ctx context.Context) error {
			if err := s.QueuePictureDeletion(ctx, "k1", now, now); err != nil {
				return err
			}
			return s.QueuePictureDeletion(ctx, "k1", now.Add(time.Hour), now)
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.QueuePictureDeletion(ctx, "k2", now.Add(time.Minute), now); err != nil {
			t.Fatal(err)
		}
		if n, err := s.CountPictureDeletions(ctx); err != nil || n != 2 {
			t.Fatalf("count = %d, %v; want 2", n, err)
		}
		if _, err := s.PictureDeletionByKey(ctx, "rolled-back"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("rolled-back key: %v, want ErrNotFound", err)
		}
		d, err := s.PictureDeletionByKey(ctx, "k1")
		if err != nil || !d.NextAttemptAt.Equal(now) || d.Attempts != 0 || d.LastError != "" {
			t.Fatalf("k1 = %+v, %v; want the first queueing kept", d, err)
		}

		due, err := s.DuePictureDeletions(ctx, now, 10)
		if err != nil || len(due) != 1 || due[0].Key != "k1" {
			t.Fatalf("due = %+v, %v; want k1 alone", due, err)
		}
		if due, err := s.DuePictureDeletions(ctx, now.Add(time.Minute), 1); err != nil || len(due) != 1 || due[0].Key != "k1" {
			t.Fatalf("due with limit 1 = %+v, %v; want k1, the longest due", due, err)
		}

		until := now.Add(time.Minute)
		if ok, err := s.ClaimPictureDeletion(ctx, d.ID, d.NextAttemptAt, until); !ok || err != nil {
			t.Fatalf("claim = %v, %v", ok, err)
		}
		if ok, err := s.ClaimPictureDeletion(ctx, d.ID, d.NextAttemptAt, until.Add(time.Second)); ok || err != nil {
			t.Fatalf("second claim from the same read = %v, %v; want false", ok, err)
		}

		next := now.Add(time.Hour)
		if err := s.ReschedulePictureDeletion(ctx, d.ID, 1, next, "store down"); err != nil {
			t.Fatal(err)
		}
		d, err = s.PictureDeletionByKey(ctx, "k1")
		if err != nil || d.Attempts != 1 || !d.NextAttemptAt.Equal(next) || d.LastError != "store down" {
			t.Fatalf("rescheduled = %+v, %v", d, err)
		}

		if err := s.DeletePictureDeletion(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeletePictureDeletion(ctx, d.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleting again: %v, want ErrNotFound", err)
		}
		if err := s.ReschedulePictureDeletion(ctx, d.ID, 2, next, "x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("rescheduling a forgotten deletion: %v, want ErrNotFound", err)
		}
		if n, err := s.CountPictureDeletions(ctx); err != nil || n != 1 {
			t.Fatalf("count = %d, %v; want 1", n, err)
		}
	})
}
