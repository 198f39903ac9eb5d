package storage

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func throttleMap(t *testing.T, s *Store, keys ...string) map[string]*LoginThrottle {
	t.Helper()
	rows, err := s.LoginThrottles(context.Background(), keys...)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*LoginThrottle{}
	for _, r := range rows {
		m[r.Key] = r
	}
	return m
}

func TestLoginThrottleCounts(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
		const k = "user:1|192.0.2.1"
		if err := s.AddLoginFailure(ctx, k, now); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a failure added to no record: %v, want ErrNotFound", err)
		}
		if err := s.LockLogin(ctx, k, now); !errors.Is(err, ErrNotFound) {
			t.Fatalf("locking no record: %v, want ErrNotFound", err)
		}
		if err := s.StartLoginThrottle(ctx, k, now); err != nil {
			t.Fatal(err)
		}
		later := now.Add(time.Minute)
		for range 2 {
			if err := s.AddLoginFailure(ctx, k, later); err != nil {
				t.Fatal(err)
			}
		}
		r := throttleMap(t, s, k, "user:1")[k]
		if r == nil || r.Failures != 3 || !r.UpdatedAt.Equal(later) || !r.LockedUntil.IsZero() {
			t.Fatalf("after three failures: %+v", r)
		}
		until := later.Add(time.Hour)
		if err := s.LockLogin(ctx, k, until); err != nil {
			t.Fatal(err)
		}
		if r := throttleMap(t, s, k)[k]; !r.LockedUntil.Equal(until) || r.Failures != 3 {
			t.Fatalf("after the lock: %+v", r)
		}
		// Starting afresh (the failures were forgotten) clears count and
		// lock in one conditional update, once: a second restart finds the
		// record touched since. The lock stamped the record with the wall
		// clock (the column's update default), so afresh is days past it.
		fresh := time.Now().UTC().Add(72 * time.Hour).Truncate(time.Second)
		for i, want := range []bool{true, false} {
			if ok, err := s.RestartLoginThrottle(ctx, k, fresh, fresh.Add(-24*time.Hour)); err != nil || ok != want {
				t.Fatalf("restart %d: %v, %v; want %v", i+1, ok, err, want)
			}
		}
		if r := throttleMap(t, s, k)[k]; r.Failures != 1 || !r.LockedUntil.IsZero() || !r.UpdatedAt.Equal(fresh) {
			t.Fatalf("restarted: %+v", r)
		}
		if ok, err := s.RestartLoginThrottle(ctx, "no such key", fresh, fresh); err != nil || ok {
			t.Errorf("restarting no record: %v, %v; want false", ok, err)
		}
		// Starting a record that exists adds to it: two failures that both
		// saw no record count twice.
		if err := s.StartLoginThrottle(ctx, k, fresh); err != nil {
			t.Fatal(err)
		}
		if r := throttleMap(t, s, k)[k]; r.Failures != 2 {
			t.Fatalf("a start on an existing record: %+v, want 2 failures", r)
		}
	})
}

func TestDeleteLoginThrottles(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
		// user:1's records, and those of user:10, whose key user:1 is a
		// prefix of.
		keys := []string{"user:1", "user:1|192.0.2.1", "user:1|192.0.2.2", "user:10", "user:10|192.0.2.1", "login:ada|192.0.2.1"}
		for _, k := range keys {
			if err := s.StartLoginThrottle(ctx, k, now); err != nil {
				t.Fatal(err)
			}
		}
		present := func() []string {
			t.Helper()
			var out []string
			for k := range throttleMap(t, s, keys...) {
				out = append(out, k)
			}
			slices.Sort(out)
			return out
		}
		if err := s.DeleteLoginThrottles(ctx, "user:1|192.0.2.2", "login:ada|192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		if got, want := present(), []string{"user:1", "user:10", "user:10|192.0.2.1", "user:1|192.0.2.1"}; !slices.Equal(got, want) {
			t.Fatalf("after DeleteLoginThrottles: %q, want %q", got, want)
		}
		if err := s.DeleteLoginThrottlesOf(ctx, "user:1"); err != nil {
			t.Fatal(err)
		}
		if got, want := present(), []string{"user:10", "user:10|192.0.2.1"}; !slices.Equal(got, want) {
			t.Fatalf("after DeleteLoginThrottlesOf(user:1): %q, want %q", got, want)
		}
	})
}

// TestDeleteStaleLoginThrottles: a record goes once untouched since the
// cutoff and not locking any more; a recent one, or one still locking,
// stays.
func TestDeleteStaleLoginThrottles(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		// Locking a record stamps it with the wall clock (the column's
		// update default), so the sweep's clock runs two days ahead for a
		// locked record to be stale.
		now := time.Now().UTC().Add(48 * time.Hour).Truncate(time.Millisecond)
		cutoff := now.Add(-24 * time.Hour)
		for _, r := range []struct {
			key     string
			updated time.Time
			lock    time.Time
		}{
			{"stale", cutoff.Add(-time.Minute), time.Time{}},
			{"stale-lock-over", cutoff.Add(-time.Minute), now.Add(-time.Minute)},
			{"stale-but-locked", cutoff.Add(-time.Minute), now.Add(time.Hour)},
			{"recent", cutoff.Add(time.Minute), time.Time{}},
		} {
			if err := s.StartLoginThrottle(ctx, r.key, r.updated); err != nil {
				t.Fatal(err)
			}
			if !r.lock.IsZero() {
				if err := s.LockLogin(ctx, r.key, r.lock); err != nil {
					t.Fatal(err)
				}
			}
		}
		n, err := s.DeleteStaleLoginThrottles(ctx, cutoff, now)
		if err != nil || n != 2 {
			t.Fatalf("DeleteStaleLoginThrottles = %d, %v; want 2", n, err)
		}
		left := throttleMap(t, s, "stale", "stale-lock-over", "stale-but-locked", "recent")
		if len(left) != 2 || left["stale-but-locked"] == nil || left["recent"] == nil {
			t.Errorf("left %v", left)
		}
	})
}
